"""The Stripe budget shared by processes: slots taken in one database are spaced by the
interval whoever takes them, on SQLite (one machine) and PostgreSQL (many)."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest

from recon_dagster.sources.stripe_budget import (
    BudgetUnavailableError,
    _SqliteBudget,
    shared_budget,
)
from recon_dagster.sources.stripe_pacing import Pacer

INTERVAL = 0.05


def take_slots(url: str, bucket: str, count: int, out) -> None:
    budget = shared_budget(url)
    out.put([budget.take(bucket, INTERVAL) for _ in range(count)])


def slots_of_processes(url: str, bucket: str, processes: int, each: int) -> list[float]:
    ctx = multiprocessing.get_context("spawn")  # fresh processes, as separate runs are
    out = ctx.Queue()
    workers = [
        ctx.Process(target=take_slots, args=(url, bucket, each, out)) for _ in range(processes)
    ]
    for w in workers:
        w.start()
    slots = sorted(s for _ in workers for s in out.get(timeout=60))
    for w in workers:
        w.join(timeout=30)
    return slots


@pytest.fixture(params=["sqlite", "postgres"])
def budget_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'budget.sqlite'}"
    url = request.getfixturevalue("postgres_url")
    return url


def test_four_processes_take_slots_an_interval_apart(budget_url):
    bucket = f"test|{time.time_ns()}"  # its own bucket: a rerun never meets old slots
    slots = slots_of_processes(budget_url, bucket, processes=4, each=10)
    assert len(slots) == 40
    gaps = [b - a for a, b in zip(slots, slots[1:], strict=False)]
    assert min(gaps) == pytest.approx(INTERVAL, abs=1e-6)


def test_two_buckets_do_not_wait_for_each_other(tmp_path):
    budget = shared_budget(f"sqlite:///{tmp_path / 'budget.sqlite'}")
    first = budget.take("acct_A|GET /v1/charges", 1.0)
    other = budget.take("acct_B|GET /v1/charges", 1.0)
    again = budget.take("acct_A|GET /v1/charges", 1.0)
    assert abs(other - first) < 0.5 and again - first == pytest.approx(1.0)


def test_a_pacer_with_a_shared_budget_spaces_requests_across_pacers(tmp_path):
    budget = shared_budget(f"sqlite:///{tmp_path / 'budget.sqlite'}")
    # Two pacers, as two processes would have: 20/s for the endpoint together, not each.
    pacers = [Pacer(100.0, 20.0, shared=budget, bucket="test|acct_X") for _ in range(2)]
    started = time.monotonic()
    for i in range(20):
        pacers[i % 2].wait("GET", "http://127.0.0.1/v1/charges")
    elapsed = time.monotonic() - started
    assert elapsed >= 19 / (20 * 0.95) - 0.05  # one shared schedule: 19 intervals at least


def test_an_unreachable_budget_database_is_named_without_its_password():
    with pytest.raises(BudgetUnavailableError) as raised:
        shared_budget("postgresql://recon:hunter2secret@127.0.0.1:1/budget")
    assert "RECON_STRIPE_BUDGET_URL" in str(raised.value)
    assert "hunter2secret" not in str(raised.value)


def test_many_openers_of_a_new_budget_file_at_once_all_get_it(tmp_path):
    """Two syncs starting together open the same new SQLite budget at once: switching it to WAL
    can say "database is locked" without SQLite's busy timeout; every opener must wait it out."""
    for attempt in range(20):
        path = tmp_path / f"budget{attempt}.sqlite"
        start = Barrier(8)

        def open_and_take(_: int, path=path, start=start) -> float:
            start.wait()
            return _SqliteBudget(path).take("b", INTERVAL)

        with ThreadPoolExecutor(8) as pool:
            slots = sorted(pool.map(open_and_take, range(8)))
        assert len(slots) == 8
