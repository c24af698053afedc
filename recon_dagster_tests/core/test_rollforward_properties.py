"""Properties of the roll-forward and the journal on random balance activity in several
currencies (USD, JPY with no decimals, KWD with three), over days that include both DST changes
of New York: one behaviour per test."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
from hypothesis import given, settings, strategies as st

from recon_dagster.close import gl_mapping
from recon_dagster.core import rollforward
from recon_dagster.core.balance_frames import BALANCE_TRANSACTIONS_SCHEMA, REPORTING_CATEGORIES
from recon_dagster.core.journal import journal, unbalanced

ZONE = "America/New_York"
DAYS = [date(2026, 3, 6) + timedelta(days=i) for i in range(4)] + [
    date(2026, 10, 30) + timedelta(days=i) for i in range(4)
]  # 2026-03-08 has 23 hours, 2026-11-01 has 25
CURRENCIES = ("USD", "JPY", "KWD")
MAPPING = gl_mapping.load()

transaction = st.tuples(
    st.sampled_from(range(len(DAYS))),
    st.integers(0, 24 * 3600 + 3599),  # seconds after local midnight (beyond a 23-hour day too)
    st.sampled_from(CURRENCIES),
    st.integers(-(10**9), 10**9),
    st.integers(0, 10**6),
    st.sampled_from(REPORTING_CATEGORIES[:21]),
)


def frame(rows: list[tuple]) -> pl.DataFrame:
    """The transactions, each created `seconds` after its day's local midnight (clipped to the
    day, so a 23-hour day's last seconds stay on it)."""
    out = []
    for n, (day, seconds, currency, amount, fee, category) in enumerate(rows):
        local = datetime.combine(DAYS[day], datetime.min.time(), tzinfo=ZoneInfo(ZONE))
        end = datetime.combine(DAYS[day] + timedelta(days=1), local.time(), tzinfo=ZoneInfo(ZONE))
        # Subtracting two times of one zone ignores the DST change: measure the day in UTC.
        length = int((end.astimezone(UTC) - local.astimezone(UTC)).total_seconds())
        created = local.astimezone(UTC) + timedelta(seconds=seconds % length)
        out.append(
            (f"txn_{n}", created, created, currency, amount, fee, amount - fee, "type", category)
            + (None, None, None, None)
        )
    return pl.DataFrame(out, schema=BALANCE_TRANSACTIONS_SCHEMA, orient="row")


openings = st.dictionaries(st.sampled_from(CURRENCIES), st.integers(-(10**9), 10**9))


@settings(max_examples=60, deadline=None)
@given(st.lists(transaction, max_size=40), openings)
def test_each_day_opens_where_the_day_before_closed(rows, opening):
    days = DAYS[:4]
    activity = rollforward.activity(frame([r for r in rows if r[0] < 4]), ZONE)

    rolled = rollforward.roll_forward(activity.by_category, opening, days)

    assert rollforward.chain_breaks(rolled).is_empty()
    assert rolled.height == 4 * len(set(opening) | set(activity.by_category["currency"]))


@settings(max_examples=60, deadline=None)
@given(st.lists(transaction, max_size=40), openings)
def test_the_closing_balance_is_the_opening_plus_every_net_exactly(rows, opening):
    days = DAYS[4:]
    kept = [r for r in rows if r[0] >= 4]
    activity = rollforward.activity(frame(kept), ZONE)

    rolled = rollforward.roll_forward(activity.by_category, opening, days)

    expected: dict[str, int] = defaultdict(int, opening)
    for _, _, currency, amount, fee, _ in kept:
        expected[currency] += amount - fee
    last = rolled.filter(pl.col("day") == days[-1])
    assert {c: int(v) for c, v in last.select("currency", "closing").iter_rows()} == dict(expected)


@settings(max_examples=60, deadline=None)
@given(st.lists(transaction, max_size=40))
def test_every_transaction_lands_on_its_local_day_across_dst(rows):
    without_fees = [(d, s, c, a, 0, k) for d, s, c, a, _, k in rows]

    activity = rollforward.activity(frame(without_fees), ZONE)

    counted: dict[date, int] = defaultdict(int)
    for day, *_ in rows:
        counted[DAYS[day]] += 1
    per_day = activity.by_category.group_by("day").agg(pl.col("transactions").sum())
    assert {d: n for d, n in per_day.iter_rows()} == dict(counted)


@settings(max_examples=60, deadline=None)
@given(st.lists(transaction, max_size=40))
def test_the_journal_always_balances_per_day_and_currency(rows):
    activity = rollforward.activity(frame(rows), ZONE)

    lines = journal(activity.by_category, MAPPING)

    assert unbalanced(lines).is_empty()


@settings(max_examples=60, deadline=None)
@given(st.lists(transaction, max_size=40))
def test_the_stripe_account_moves_by_exactly_the_days_net(rows):
    activity = rollforward.activity(frame(rows), ZONE)

    lines = journal(activity.by_category, MAPPING)

    stripe = lines.filter(pl.col("account") == MAPPING.stripe_account)
    moved = stripe.group_by("currency").agg((pl.col("debit") - pl.col("credit")).sum())
    net: dict[str, int] = defaultdict(int)
    for _, _, currency, amount, fee, _ in rows:
        net[currency] += amount - fee
    assert {c: int(v) for c, v in moved.iter_rows() if v} == {c: v for c, v in net.items() if v}


def test_a_chain_break_names_the_day_and_a_currency_new_to_it_follows_zero():
    rolled = pl.DataFrame(
        {
            "day": [date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 2), date(2026, 11, 4)],
            "currency": ["USD", "USD", "JPY", "USD"],
            "opening": [0, 150, 300, 999],
            "closing": [100, 160, 300, 999],
        }
    )

    breaks = rollforward.chain_breaks(rolled)

    # 11-02 USD opens 50 away from 11-01; JPY is new on 11-02 (follows 0); 11-04 follows no day.
    assert breaks.rows() == [
        (date(2026, 11, 2), "JPY", 300, 0),
        (date(2026, 11, 2), "USD", 150, 100),
    ]
