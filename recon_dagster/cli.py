"""`recon-dagster`: reconcile | sync | payouts | changes | history | close | demo | stripe-server.

Exit codes for `reconcile`: 0 success, 1 discrepancy_found, 2 error (including bad input).
For `sync`: 0 nothing failed, 1 some ids failed (each with its reason), 2 error.
For `payouts`: 0 every payout reconciled (or still awaiting its deposit), 1 any problem, 2 error.
For `close`: 0 tied out, 1 not tied out (or a lock refused), 2 error.
With `--json`, stdout holds exactly one JSON object, whatever happens; logs go to stderr.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from recon_dagster.core.result import CLASSES, ReconciliationResult
from recon_dagster.frozen_imports import import_frozen
from recon_dagster.money import format_major, to_major
from recon_dagster.settings import ConfigError, parse_percent
from recon_dagster.settings.accounts import DEFAULT_ACCOUNT

EXIT = {"success": 0, "discrepancy_found": 1, "error": 2}
DESCRIPTION = (
    "`recon-dagster`: reconcile | sync | payouts | changes | history | close | demo | "
    "stripe-server."
)


def _print_json(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")


def _unavailable() -> tuple[type[Exception], ...]:
    """What a command reports as an error (exit 2) rather than a traceback: bad settings, and a
    Stripe, store or budget that could not be used (a full disk, a restarted server)."""
    from recon_dagster.sources.stripe_budget import BudgetUnavailableError
    from recon_dagster.sources.stripe_client import StripeUnavailableError
    from recon_dagster.stores.store_database import ReportStoreError

    return (ConfigError, StripeUnavailableError, ReportStoreError, BudgetUnavailableError)


def _error(args: argparse.Namespace, message: str, **extra) -> int:
    print(f"error: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        _print_json({"status": "error", "error": message, **extra})
    return 2


def render(result: ReconciliationResult) -> str:
    """A human summary: totals per currency, counts per class, recommendations."""
    span = result.date.isoformat() + (
        "" if result.end_date == result.date else f" to {result.end_date.isoformat()}"
    )
    lines = [f"Reconciliation {span} ({result.timezone}): {result.status}"]
    if result.error:
        lines.append(f"  error: {result.error}")
    for t in result.totals:
        lines.append(
            f"  {t.currency}: Stripe {format_major(t.stripe_total, t.currency)} | database "
            f"{format_major(t.database_total, t.currency)} | discrepancy "
            f"{format_major(t.discrepancy, t.currency)} "
            f"({t.discrepancy_percentage:.2f}%, gross {t.gross_discrepancy_percentage:.2f}%)"
        )
    counts = {k: n for k, n in result.counts().items() if n}
    if counts:
        lines.append("  " + ", ".join(f"{k}: {n}" for k, n in counts.items()))
    lines += [f"  - {r}" for r in result.recommendations]
    return "\n".join(lines)


def cmd_reconcile(args: argparse.Namespace) -> int:
    from recon_dagster.service import as_date, create_billing_reconciliation_service

    try:
        tolerance = (
            parse_percent("--tolerance", args.tolerance) if args.tolerance is not None else None
        )
        start = as_date(args.start, "--start")
        end = as_date(args.end, "--end") if args.end else None
        service = create_billing_reconciliation_service(source="cli")
        multi = service.settings.accounts.multi
        accounts = [args.account] if args.account else service.accounts()
        results = {
            account: service.reconcile(
                start,
                end,
                tolerance_percentage=tolerance,
                include_refunds=args.include_refunds,
                account=account,
            )
            for account in accounts
        }
    except _unavailable() as exc:
        return _error(args, str(exc), date=args.start, end_date=args.end or args.start)
    if not multi:  # one account: the report as it always was
        result = results[DEFAULT_ACCOUNT]
        if args.json:
            _print_json(result.to_json_dict())
        else:
            print(render(result))
        return EXIT[result.status]
    if args.json:
        if args.account:
            _print_json({"account": args.account, **results[args.account].to_json_dict()})
        else:
            _print_json(accounts_summary(results))
    else:
        for account, result in results.items():
            print(f"Account {account}:\n{render(result)}")
        if not args.account:
            print(render_accounts(accounts_summary(results)))
    return max((EXIT[r.status] for r in results.values()), default=0)


def accounts_summary(results: dict[str, ReconciliationResult]) -> dict:
    """Every account's report (`accounts`, each with its `account`) and, per currency, the
    totals over all of them (`totals`, exact major units; `status` the worst account's)."""
    sums: dict[str, dict[str, int]] = {}
    for result in results.values():
        for t in result.totals:
            into = sums.setdefault(t.currency, dict.fromkeys(_SUMMED, 0))
            for name in _SUMMED:
                into[name] += getattr(t, name)
    worst = max(results.values(), key=lambda r: EXIT[r.status], default=None)
    return {
        "status": worst.status if worst is not None else "success",
        "accounts": [{"account": a, **r.to_json_dict()} for a, r in results.items()],
        "totals": [
            {
                "currency": currency,
                **{name: str(to_major(value, currency)) for name, value in s.items()},
                "accounts": sum(
                    1 for r in results.values() if any(t.currency == currency for t in r.totals)
                ),
            }
            for currency, s in sorted(sums.items())
        ],
    }


def render_accounts(summary: dict) -> str:
    """A table: one line per account, then the totals per currency."""
    lines = ["Accounts:"]
    for a in summary["accounts"]:
        lines.append(
            f"  {a['account']:<24} {a['status']:<17} {a['currency'] or '-':<4} "
            f"stripe {a['stripe_total']:>12} database {a['database_total']:>12} "
            f"({a['discrepancy_percentage']:.3f}%)"
        )
    for t in summary["totals"]:
        lines.append(
            f"  {'total (' + str(t['accounts']) + ' accounts)':<24} {'':<17} {t['currency']:<4} "
            f"stripe {t['stripe_total']:>12} database {t['database_total']:>12}"
        )
    return "\n".join(lines)


_SUMMED = ("stripe_total", "database_total", "discrepancy", "gross_discrepancy")


def cmd_sync(args: argparse.Namespace) -> int:
    from recon_dagster.service import SyncError, as_date, create_billing_reconciliation_service

    try:
        start = as_date(args.start, "--start")
        end = as_date(args.end, "--end") if args.end else start
        service = create_billing_reconciliation_service(source="cli")
        if service.settings.accounts.multi and not args.account:
            raise ConfigError("--account", "name the account whose payments to sync")
        result = service.sync_days(
            start,
            end,
            ids=args.ids,
            dry_run=args.dry_run,
            account=args.account or DEFAULT_ACCOUNT,
        )
    except (*_unavailable(), SyncError) as exc:
        return _error(args, str(exc), synced=0, failed=[])
    body = {**result.to_json_dict(), "date": start.isoformat(), "end_date": end.isoformat()}
    if args.json:
        _print_json(body)
    else:
        verb = "would sync" if args.dry_run else "synced"
        count = len(body["would_sync"]) if args.dry_run else body["synced"]
        print(
            f"{verb} {count}, failed {len(body['failed'])}, already present {len(body['skipped'])}"
        )
        for f in body["failed"]:
            print(f"  failed {f['payment_id']}: {f['reason']}")
    return 1 if result.failed else 0


def render_payouts(data: dict) -> str:
    """A human summary of `PayoutResult.to_json_dict()`: one line per payout, then the loose
    deposits."""
    span = data["first"] + ("" if data["last"] == data["first"] else f" to {data['last']}")
    lines = [f"Payouts arriving {span}: {data['status']}"]
    if data.get("error"):
        lines.append(f"  error: {data['error']}")
    if not data.get("bank_checked", True):
        lines.append("  bank: not checked (RECON_BANK_TABLE is not set)")
    for p in data["payouts"]:
        net = (
            f"itemized {p['itemized_net']}"
            if p["itemized_net"] is not None
            else "manual (bank only)"
        )
        bank = f"bank {p['bank_deposit_id']}" if p["bank_deposit_id"] else "no deposit"
        problems = ", ".join(p["problems"]) or "ok"
        lines.append(
            f"  {p['arrival_date']} {p['id']} {p['amount']} {p['currency']} {p['status']}: {net}, "
            f"{bank}: {problems}"
        )
    for d in data["deposits_without_payout"]:
        lines.append(
            f"  deposit without payout: {d['id']} {d['amount']} {d['currency']} on {d['date']}"
        )
    return "\n".join(lines)


def cmd_payouts(args: argparse.Namespace) -> int:
    from recon_dagster.service import as_date, create_billing_reconciliation_service

    try:
        start = as_date(args.start, "--start")
        end = as_date(args.end, "--end") if args.end else None
        service = create_billing_reconciliation_service(source="cli")
        multi = service.settings.accounts.multi
        accounts = [args.account] if args.account else service.accounts()
        results = {
            account: service.reconcile_payouts(start, end, account=account) for account in accounts
        }
    except _unavailable() as exc:
        return _error(args, str(exc), payouts=[], deposits_without_payout=[], counts={})
    codes = {a: {"reconciled": 0, "problems": 1}.get(r.status, 2) for a, r in results.items()}
    if not multi:  # one account: the payouts as they always were
        data = results[DEFAULT_ACCOUNT].to_json_dict()
        if args.json:
            _print_json(data)
        else:
            print(render_payouts(data))
        return codes[DEFAULT_ACCOUNT]
    if args.json and args.account:
        _print_json({"account": args.account, **results[args.account].to_json_dict()})
    elif args.json:
        worst = max(results, key=lambda a: codes[a], default=None)
        _print_json(
            {
                "status": results[worst].status if worst else "reconciled",
                "accounts": [{"account": a, **r.to_json_dict()} for a, r in results.items()],
            }
        )
    else:
        for account, result in results.items():
            print(f"Account {account}:\n{render_payouts(result.to_json_dict())}")
    return max(codes.values(), default=0)


def _finding_text(side: dict | None) -> str:
    """One side of a version change: 'amount_mismatches 25.00/20.00 USD' (Stripe/database), or
    'absent'."""
    if side is None:
        return "absent"
    amounts = f"{side['stripe_amount'] or '-'}/{side['database_amount'] or '-'}"
    return f"{side['kind']} {amounts} {side['currency']}".rstrip()


def cmd_changes(args: argparse.Namespace) -> int:
    from recon_dagster.service import create_billing_reconciliation_service

    try:
        found = create_billing_reconciliation_service(source="cli").changes_since(args.since)
    except _unavailable() as exc:
        return _error(args, str(exc), days=[], events_read=0)
    if args.json:
        _print_json(found)
        return 0
    print(
        f"{found['events_read']} Stripe event(s) read; {len(found['days'])} stored day(s) changed "
        "since their last report"
    )
    for day in found["days"]:
        print(
            f"  {day['date']}: {len(day['events'])} event(s) ({', '.join(day['types'])}) on "
            f"{', '.join(day['charges'])}; last report {day['last_report_at']}"
        )
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    """Without --start: each day's current report. With it: every version of those days, so an
    auditor sees what a day said before each re-run and which charges changed."""
    from recon_dagster.service import as_date
    from recon_dagster.settings import Settings
    from recon_dagster.stores.report_store import ReportStore, ReportStoreError

    try:
        if args.end and not args.start:
            raise ConfigError("--end", "needs --start")
        start = as_date(args.start, "--start") if args.start else None
        end = as_date(args.end, "--end") if args.end else start
        if start is not None and end is not None and end < start:
            raise ConfigError("--end", f"{end} is before --start {start}")
        settings = Settings.from_env()
        # Without --account: every account's reports (the one `default` for a single account).
        account = settings.accounts.check(args.account) if args.account else None
        store = ReportStore(settings.report_store_url, account=account)
        versions = store.versions(start, end) if start is not None else None
        rows = store.history() if start is None else []
    except (ConfigError, ReportStoreError) as exc:
        return _error(args, str(exc))
    if versions is not None:
        if args.json:
            _print_json({"versions": versions})
            return 0
        for v in versions[: args.limit]:
            print(
                f"{v['date']} v{v['version']:<3} {v['generated_at']}  {v['trigger'] or '-':<11} "
                f"{v['status']:<17} "
                f"{v['currency'] or '-':<4} {v['discrepancy_percentage']:>8.3f}%  changed "
                f"{len(v['changed'])}"
            )
            for c in v["changed"]:
                print(
                    f"    {c['payment_id'] or '(no id)'}: {_finding_text(c['before'])} -> "
                    f"{_finding_text(c['after'])}"
                )
        return 0
    if args.json:
        _print_json({"reports": rows})
        return 0
    for r in rows[: args.limit]:
        counts = ", ".join(f"{k}={r['counts'].get(k, 0)}" for k in CLASSES if r["counts"].get(k))
        print(
            f"{r['date']}  {r['status']:<17} {r.get('currency') or '-':<4} "
            f"{r['discrepancy_percentage']:>8.3f}%  {counts}"
        )
    return 0


def render_close(data: dict) -> str:
    """A human summary of `MonthClose.to_json_dict()`: the roll-forward per currency, then what
    explains the rest."""
    lock = ", locked" if data["locked"] else ""
    lines = [f"Month close {data['month']} ({data['timezone']}): {data['status']}{lock}"]
    for c in data["currencies"]:
        cur = c["currency"]
        lines.append(
            f"  {cur}: opening {c['opening']} + activity "
            f"{sum(Decimal(v) for v in c['activity'].values())} + payouts {c['payouts']} = "
            f"closing {c['closing']} | Stripe {c['stripe_balance']} | difference {c['difference']}"
        )
        for name, amount in c["activity"].items():
            lines.append(f"      {name}: {amount}")
        for item in c["reconciling_items"]:
            lines.append(
                f"    {item['kind']} {item['id']}: {item['amount']} {cur} ({item['date']})"
            )
    for q in data["quarantined"]:
        lines.append(f"  quarantined {q['id']}: {q['reason']}")
    if data["unmapped_categories"]:
        lines.append(f"  unmapped categories: {', '.join(data['unmapped_categories'])}")
    journal = data["journal"]
    balanced = "balanced" if journal["balanced"] else "NOT balanced"
    lines.append(f"  journal: {journal['lines']} lines, {balanced}")
    return "\n".join(lines)


def _login() -> str:
    """The login name, for the lock history; a container without one records `unknown`."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def cmd_close(args: argparse.Namespace) -> int:
    from recon_dagster.close import journal_csv, workbook
    from recon_dagster.close.gl_mapping import GLMappingError
    from recon_dagster.core.journal import UnmappedCategoryError
    from recon_dagster.service import RUNTIME_ERRORS, create_billing_reconciliation_service
    from recon_dagster.stores.close_store import PeriodLockedError
    from recon_dagster.stores.store_database import ReportStoreError

    try:
        for option, path in (("--journal", args.journal), ("--xlsx", args.xlsx)):
            # Checked before anything is stored or locked: a close never half-done for a typo.
            if path and not Path(path).expanduser().resolve().parent.is_dir():
                raise ConfigError(option, f"{path}: its folder does not exist")
        service = create_billing_reconciliation_service(source="cli")
        multi = service.settings.accounts.multi
        if multi and not args.account and (args.journal or args.xlsx):
            raise ConfigError("--account", "name the account whose journal or workbook to write")
        closed, refused = {}, {}
        for account in [args.account] if args.account else service.accounts():
            try:
                closed[account] = service.close_month(
                    args.month,
                    lock=args.lock,
                    unlock=args.unlock,
                    actor=args.actor or _login(),
                    reason=args.reason,
                    account=account,
                )
            except PeriodLockedError as exc:
                if not multi or args.account:
                    raise
                # Every account's month is its own: one refusal does not stop the others.
                refused[account] = str(exc)
        if args.journal or args.xlsx:
            [(result, _)] = closed.values()
            if args.journal:
                journal_csv.write(result.journal, args.journal)
            if args.xlsx:
                workbook.write(result, args.xlsx)
    except PeriodLockedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.json:
            _print_json({"month": args.month, "status": "lock_refused", "error": str(exc)})
        return 1
    except (
        ConfigError,
        GLMappingError,
        UnmappedCategoryError,
        ReportStoreError,
        OSError,
        *RUNTIME_ERRORS,
    ) as exc:
        return _error(args, str(exc), month=args.month)
    tied = not refused and all(result.tied_out for result, _ in closed.values())
    every = {
        account: {**result.to_json_dict(), "version": recorded["version"]}
        for account, (result, recorded) in closed.items()
    }
    for account, error in refused.items():
        print(f"error: {error}", file=sys.stderr)
        every[account] = {"month": args.month, "status": "lock_refused", "error": error}
    if not multi:  # one account: the close as it always was
        data = every[DEFAULT_ACCOUNT]
        if args.json:
            _print_json(data)
        else:
            print(render_close(data))
        return 0 if tied else 1
    if args.json and args.account:
        _print_json({"account": args.account, **every[args.account]})
    elif args.json:
        statuses = [d["status"] for d in every.values()]
        status = next((s for s in statuses if s != "tied_out"), "tied_out")
        _print_json(
            {
                "month": args.month,
                "status": status,
                "accounts": [{"account": a, **d} for a, d in every.items()],
            }
        )
    else:
        for account, data in every.items():
            shown = render_close(data) if account in closed else f"  {data['error']}"
            print(f"Account {account}:\n{shown}")
    return 0 if tied else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from recon_dagster.demo import run_demo

    return run_demo(
        days=args.days,
        ui=args.ui,
        port=args.port,
        verbose=args.verbose,
        late_changes=args.late_changes,
    )


def cmd_stripe_server(args: argparse.Namespace) -> int:
    from recon_dagster.testing.stripe_server import main as serve

    argv = ["--data", args.data, "--port", str(args.port), "--api-key", args.api_key]
    return serve(argv) or 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recon-dagster", description=DESCRIPTION)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("reconcile", help="reconcile whole days (inclusive) and store the report")
    r.add_argument("--start", required=True, help="first day, YYYY-MM-DD, in RECON_TIMEZONE")
    r.add_argument("--end", help="last day, inclusive (default: --start)")
    r.add_argument("--tolerance", help="percent above which the status is discrepancy_found")
    r.add_argument(
        "--include-refunds",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compare amounts net of refunds (default: BILLING_RECONCILIATION_INCLUDE_REFUNDS)",
    )
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.add_argument(
        "--account",
        help="one Stripe account (a connected account id or a RECON_STRIPE_ACCOUNTS name; "
        "default: every account, with a table per account and totals)",
    )
    r.set_defaults(func=cmd_reconcile)

    y = sub.add_parser(
        "sync", help="insert payments Stripe collected but the table lacks, then refresh the days"
    )
    y.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    y.add_argument("--end", help="last day, inclusive (default: --start)")
    y.add_argument(
        "--ids", nargs="+", help="these charge ids instead of the days' missing payments"
    )
    y.add_argument(
        "--dry-run", action="store_true", help="write nothing; report what would be done"
    )
    y.add_argument("--json", action="store_true", help="print one JSON object")
    y.add_argument("--account", help="the Stripe account whose payments to sync (many accounts)")
    y.set_defaults(func=cmd_sync)

    o = sub.add_parser(
        "payouts",
        help="reconcile the payouts arriving on these days: itemized, against the table and the "
        "bank",
    )
    o.add_argument("--start", required=True, help="first arrival date, YYYY-MM-DD")
    o.add_argument("--end", help="last arrival date, inclusive (default: --start)")
    o.add_argument("--json", action="store_true", help="print one JSON object")
    o.add_argument(
        "--account", help="one Stripe account's payouts (default: every account, one after another)"
    )
    o.set_defaults(func=cmd_payouts)

    c = sub.add_parser(
        "changes",
        help="which stored days Stripe has changed since their last report (runs nothing)",
    )
    c.add_argument(
        "--since",
        required=True,
        help="read Stripe's events from this day, YYYY-MM-DD (Stripe keeps 30 days)",
    )
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=cmd_changes)

    h = sub.add_parser(
        "history", help="stored reports, newest first; with --start, every version of those days"
    )
    h.add_argument("--start", help="list every version of the reports from this day, YYYY-MM-DD")
    h.add_argument("--end", help="last day, inclusive (default: --start)")
    h.add_argument("--limit", type=int, default=30, help="lines shown without --json")
    h.add_argument("--json", action="store_true")
    h.add_argument("--account", help="one Stripe account's reports (default: every account's)")
    h.set_defaults(func=cmd_history)

    m = sub.add_parser(
        "close",
        help="close a month: the Stripe balance rolled forward and tied out, with its reconciling "
        "items and journal entries",
    )
    m.add_argument("--month", required=True, help="YYYY-MM, in RECON_TIMEZONE")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.add_argument("--xlsx", metavar="PATH", help="write the workbook (Summary, Roll-forward, …)")
    m.add_argument("--journal", metavar="PATH", help="write the journal entries as CSV")
    lock = m.add_mutually_exclusive_group()
    lock.add_argument("--lock", action="store_true", help="lock the month once it ties out")
    lock.add_argument("--unlock", action="store_true", help="re-open a locked month (--reason)")
    m.add_argument("--reason", default="", help="why the month is re-opened")
    m.add_argument("--actor", help="who locks or unlocks (default: your login)")
    m.add_argument(
        "--account", help="one Stripe account's balance (default: every account, each on its own)"
    )
    m.set_defaults(func=cmd_close)

    d = sub.add_parser(
        "demo", help="build demo data, reconcile the last days through Dagster, print a summary"
    )
    d.add_argument("--days", type=int, default=7)
    d.add_argument(
        "--ui",
        action="store_true",
        help="then keep the demo Stripe server up and run `dagster dev`",
    )
    d.add_argument("--port", type=int, default=12111, help="port of the demo Stripe server")
    d.add_argument("--verbose", action="store_true", help="show Dagster's full log of each run")
    d.add_argument(
        "--late-changes",
        action="store_true",
        help="then let Stripe refund and lose a dispute on two past days, and show the sensor "
        "re-opening them",
    )
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser(
        "stripe-server", help="serve a charges file as a local Stripe-compatible API"
    )
    s.add_argument("--data", default="data/demo/stripe_charges.json")
    s.add_argument("--port", type=int, default=12111)
    s.add_argument(
        "--api-key",
        default="sk_test_recon_demo",
        help="the key clients must send (the demo's by default)",
    )
    s.set_defaults(func=cmd_stripe_server)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s: %(message)s")
    for noisy in ("stripe", "alembic"):  # one line per HTTP request / migration otherwise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = parser().parse_args(argv)
    if args.func is not cmd_stripe_server:
        # Every other command works through the service: its libraries (Stripe, Polars, DuckDB,
        # the database drivers) imported with the GC paused take ~25% less CPU.
        import_frozen("recon_dagster.service")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
