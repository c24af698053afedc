"""`recon-dagster demo`: a week of realistic discrepancies, reconciled through Dagster.

Builds `data/demo/` (Stripe charges served by the local Stripe-compatible server, and an
application database), materializes the last days' partitions into the Dagster instance that
`dagster dev` then shows, and prints what it found.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import polars as pl

from recon_dagster.core.grading import grade
from recon_dagster.core.payout_result import PayoutResult
from recon_dagster.core.result import ReconciliationResult
from recon_dagster.defs.shared import BALANCE_JOB, DAILY_JOB, PAYOUTS_JOB, ROLLFORWARD
from recon_dagster.money import format_major
from recon_dagster.settings import Settings, variables
from recon_dagster.sources.stripe_balance import fetch_balance
from recon_dagster.sources.stripe_client import make_client
from recon_dagster.stores.asset_slice import Slice
from recon_dagster.stores.asset_tables import AssetTables
from recon_dagster.stores.payout_store import PayoutStore
from recon_dagster.stores.report_store import ReportStore
from recon_dagster.testing.demo_data import DemoDataset, build_demo_dataset
from recon_dagster.testing.sensor_ticks import late_changes_tick
from recon_dagster.testing.stripe_server import StripeServer, make_dispute

DEMO_KEY = "sk_test_recon_demo"
ENV_MARKER = "# Written by `recon-dagster demo`"


def demo_environment(stripe_url: str, root: Path) -> dict[str, str]:
    return {
        "DAGSTER_HOME": os.environ.get("DAGSTER_HOME") or str(root),
        "STRIPE_API_KEY": DEMO_KEY,
        "STRIPE_API_BASE": stripe_url,
        "RECON_DATABASE_URL": "duckdb:///data/demo/app.duckdb",
        "RECON_PAYMENTS_REFUNDED_COLUMN": "amount_refunded",
        "RECON_BANK_TABLE": "bank_lines",
        "RECON_BANK_REFERENCE_COLUMN": "memo",
        "RECON_REPORT_STORE_URL": variables.text("RECON_REPORT_STORE_URL"),
        "RECON_DASHBOARD_URL": variables.value("RECON_DASHBOARD_URL") or "http://127.0.0.1:3000",
    }


def _write_env_file(root: Path, env: dict[str, str]) -> bool:
    """Write `.env` for `dagster dev`, unless the user has one of their own."""
    path = root / ".env"
    if path.exists() and not path.read_text().startswith(ENV_MARKER):
        return False
    lines = [
        ENV_MARKER + ": the demo's settings. Delete this file to use your own (see .env.example)."
    ]
    lines += [f"{k}={v}" for k, v in env.items()]
    path.write_text("\n".join(lines) + "\n")
    return True


# Dagster's defaults, and the repository's dagster.yaml: telemetry off, two runs at a time.
INSTANCE_YAML = "telemetry:\n  enabled: false\nconcurrency:\n  runs:\n    max_concurrent_runs: 2\n"


def _ensure_instance_yaml(home: Path) -> None:
    """Dagster warns, and prints a telemetry banner, on a DAGSTER_HOME without dagster.yaml."""
    path = home / "dagster.yaml"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "# Written by `recon-dagster demo`: the embedded default instance (SQLite under this "
            "folder).\n" + INSTANCE_YAML
        )


def _serve(dataset: DemoDataset, port: int) -> StripeServer:
    def server(port: int) -> StripeServer:
        return StripeServer(
            dataset.charges,
            port=port,
            api_key=DEMO_KEY,
            disputes=dataset.disputes,
            payouts=dataset.payouts.payouts,
            balance_transactions=dataset.payouts.transactions,
        ).start()

    try:
        return server(port)
    except OSError:  # the port is taken: any free one will do for this run
        return server(0)


def payouts_table(results: list[PayoutResult]) -> str:
    """One line per payout of the demo's days: amount, itemization, the bank, what is wrong."""
    head = (
        f"{'arrival':<11} {'payout':<20} {'status':<7} {'amount':>14} {'itemized':>14} "
        f"{'bank':<22} problems"
    )
    lines = [head, "-" * len(head)]
    for result in results:
        for p in result.payouts:
            itemized = (
                format_major(p.itemized_net, p.currency) if p.itemized_net is not None else "manual"
            )
            lines.append(
                f"{p.arrival_date.isoformat():<11} {p.id:<20} {p.status:<7} "
                f"{format_major(p.amount, p.currency):>14} "
                f"{itemized:>14} {p.bank_deposit_id or '-':<22} {', '.join(p.problems) or 'ok'}"
            )
        for d in result.deposits_without_payout:
            lines.append(
                f"{d.date.isoformat():<11} {'(no payout)':<20} {'':<7} "
                f"{format_major(d.amount, d.currency):>14} "
                f"{'':>14} {d.id:<22} deposit without payout: {d.reference or ''}"
            )
    return "\n".join(lines)


def summary_table(results: list[ReconciliationResult], settings: Settings) -> str:
    head = (
        f"{'day':<11} {'status':<18} {'check':<9} {'Stripe':>16} {'database':>16} "
        f"{'disc. %':>8} {'gross %':>8}  findings"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        verdict = (
            grade(r, settings.tolerance_percent, settings.critical_percent)
            if r.status != "error"
            else "error"
        )
        cur = r.currency or "USD"
        found = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in r.counts().items() if n) or "-"
        lines.append(
            f"{r.date.isoformat():<11} {r.status:<18} {verdict.upper():<9} "
            f"{format_major(r.stripe_total, cur):>16} "
            f"{format_major(r.database_total, cur):>16} {r.discrepancy_percentage:>8.2f} "
            f"{r.gross_discrepancy_percentage:>8.2f}  {found}"
        )
    return "\n".join(lines)


def rollforward_table(settings: Settings, days: list[date], server: StripeServer) -> str:
    """The week's Stripe balance per day and currency, and whether its last closing is what
    Stripe's `GET /v1/balance` says now (nothing has moved the balance since)."""
    from recon_dagster.definitions import asset_tables_url

    tables = AssetTables(asset_tables_url(settings, settings.report_store_url))
    rolled = tables.read(ROLLFORWARD.path[-1], Slice("day", days[0], days[-1] + timedelta(1)))
    head = (
        f"{'day':<11} {'cur':<4} {'opening':>14} {'activity':>14} {'payouts':>14} {'closing':>14}"
    )
    lines = [head, "-" * len(head)]
    for day, cur, opening, activity, payouts, closing in rolled.sort("day", "currency").iter_rows():
        amounts = [
            format_major(a, cur).rsplit(" ", 1)[0] for a in (opening, activity, payouts, closing)
        ]
        lines.append(f"{day.isoformat():<11} {cur:<4} " + " ".join(f"{a:>14}" for a in amounts))
    client = make_client(DEMO_KEY, api_base=server.url)
    stripe_now = {c: b.total for c, b in fetch_balance(client).items()}
    last = rolled.filter(pl.col("day") == days[-1])
    for cur, closing in last.select("currency", "closing").iter_rows():
        stripe = stripe_now.get(cur, 0)
        verdict = (
            "ties out" if closing == stripe else f"differs by {format_major(closing - stripe, cur)}"
        )
        lines.append(
            f"{cur}: closing {format_major(closing, cur)} on {days[-1]}, Stripe's balance now "
            f"{format_major(stripe, cur)}: {verdict}"
        )
    return "\n".join(lines)


# Without --verbose, Dagster's console logger speaks only of the unrecoverable; each step's own
# line, and a failure's cause, are printed by the demo itself.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def show_late_changes(
    defs: dg.Definitions,
    dataset: DemoDataset,
    server: StripeServer,
    days: list[date],
    settings: Settings,
    verbose: bool,
) -> None:
    """Stripe changes two reconciled days afterwards (a refund, a lost dispute); the sensor reads
    its events and re-opens exactly those days; their reports gain a version."""
    with dg.DagsterInstance.get() as instance:
        _, cursor = late_changes_tick(defs, instance, None)
        refunded_day, disputed_day = days[1], days[-3]
        refunded = _a_paid_charge(dataset, refunded_day, settings.timezone)
        server.update_charge(
            refunded["id"], amount_refunded=refunded["amount_captured"], refunded=True
        )
        disputed = _a_paid_charge(dataset, disputed_day, settings.timezone)
        server.open_dispute(
            make_dispute(
                "dp_demo_late",
                disputed["id"],
                disputed["amount_captured"],
                disputed["currency"],
                status="lost",
                reason="fraudulent",
                created=int(datetime.now().timestamp()),
            )
        )
        print(
            f"[late changes] Stripe refunded {refunded['id']} (made on {refunded_day}) and lost a "
            "dispute on "
            f"{disputed['id']} (made on {disputed_day}), after both days were reconciled."
        )
        requests, _ = late_changes_tick(defs, instance, cursor)
        reopened = [r.partition_key for r in requests if r.partition_key]
        print(
            f"[late changes] stripe_late_changes re-opens {len(requests)} day(s): "
            f"{', '.join(reopened)}"
        )
        job = defs.resolve_job_def(DAILY_JOB)
        for request in requests:
            job.execute_in_process(
                instance=instance,
                partition_key=request.partition_key,
                tags=request.tags,
                raise_on_error=False,
                run_config={} if verbose else QUIET_RUN_CONFIG,
            )
    store = ReportStore(settings.report_store_url)
    for day in reopened:
        for version in store.versions(date.fromisoformat(day)):
            changed = (
                ", ".join(
                    f"{c['payment_id']} ({(c['before'] or {}).get('kind', '-')} -> "
                    f"{(c['after'] or {}).get('kind', '-')})"
                    for c in version["changed"]
                )
                or "-"
            )
            print(
                f"  {version['date']} v{version['version']} {version['trigger'] or '-':<12} "
                f"{version['status']:<18} changed: {changed}"
            )


def _a_paid_charge(dataset: DemoDataset, day: date, timezone: str) -> dict:
    start = int(datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo(timezone)).timestamp())
    return next(
        c
        for c in dataset.charges
        if start <= c["created"] < start + 86_400
        and c["status"] == "succeeded"
        and c["amount_captured"]
        and not c["amount_refunded"]
        and not c.get("disputed")
    )


def failure_cause(run: dg.ExecuteInProcessResult) -> str:
    """The first failed step's error in one line: our message, not Dagster's wrapper around it."""
    for event in run.all_events:
        error = getattr(event.event_specific_data, "error", None) if event.is_failure else None
        while (
            error is not None
            and error.cause is not None
            and (error.cls_name or "").startswith("Dagster")
        ):
            error = error.cause
        if error is not None:
            return f"{event.step_key or 'run'}: {' '.join(error.message.split())[:500]}"
    return "the run failed (run with --verbose for Dagster's log)"


def run_demo(
    days: int = 7,
    ui: bool = False,
    port: int = 12111,
    root: Path | None = None,
    verbose: bool = False,
    late_changes: bool = False,
) -> int:
    root = (root or Path.cwd()).resolve()
    os.chdir(root)
    with warnings.catch_warnings():
        # Dagster's notes that backfill policies and partitioned checks are beta/preview.
        if not verbose:
            warnings.simplefilter("ignore", dg.BetaWarning)
            warnings.simplefilter("ignore", dg.PreviewWarning)
        return _run_demo(days, ui, port, root, verbose, late_changes)


def _run_demo(
    days: int, ui: bool, port: int, root: Path, verbose: bool, late_changes: bool = False
) -> int:
    from recon_dagster.definitions import build_defs

    tz = variables.value("RECON_TIMEZONE")
    today = datetime.now(ZoneInfo(tz)).date()
    day_list: list[date] = [today - timedelta(days=n) for n in range(days, 0, -1)]
    dataset = build_demo_dataset(day_list, tz)
    dataset.write(root / "data" / "demo")
    print(
        f"[1/4] Demo data: {len(dataset.charges)} Stripe charges, {len(dataset.disputes)} "
        f"disputes, {len(dataset.payouts.payouts)} payouts, {len(dataset.payments)} payment rows, "
        f"{len(dataset.payouts.bank_lines)} bank lines, {day_list[0]} to {day_list[-1]} ({tz}) in "
        "data/demo/",
        flush=True,
    )

    server = _serve(dataset, port)
    try:
        print(f"[2/4] Stripe API: the demo's local server at {server.url}", flush=True)
        env = demo_environment(server.url, root)
        os.environ.update(env)
        _ensure_instance_yaml(Path(env["DAGSTER_HOME"]))
        settings = Settings.from_env()
        defs = build_defs(settings)
        # Charges for every day; payouts for the days they arrive on (a day's sales pay out the next
        # day).
        # The balance is rolled forward over the whole week in one run, as a backfill does.
        week = {
            "dagster/asset_partition_range_start": day_list[0].isoformat(),
            "dagster/asset_partition_range_end": day_list[-1].isoformat(),
        }
        runs: list[tuple[dg.JobDefinition, str | None, dict[str, str]]] = [
            (defs.resolve_job_def(DAILY_JOB), day.isoformat(), {}) for day in day_list
        ]
        runs += [(defs.resolve_job_def(PAYOUTS_JOB), day.isoformat(), {}) for day in day_list[1:]]
        runs.append((defs.resolve_job_def(BALANCE_JOB), None, week))
        failures: list[str] = []
        with dg.DagsterInstance.get() as instance:
            for n, (job, partition, tags) in enumerate(runs, 1):
                run = job.execute_in_process(
                    instance=instance,
                    partition_key=partition,
                    raise_on_error=False,
                    tags={"recon/source": "demo", **tags},
                    run_config={} if verbose else QUIET_RUN_CONFIG,
                )
                if not run.success:
                    what = partition or f"{day_list[0]} to {day_list[-1]}"
                    failures.append(f"{job.name} {what}: {failure_cause(run)}")
                # A terminal redraws the line; a log gets the last.
                if n == len(runs) or sys.stdout.isatty():
                    print(
                        f"\r[3/4] Materializing through Dagster: {n}/{len(runs)} runs done "
                        f"(charges, payouts, then the balance)"
                        f"{f', {len(failures)} failed' if failures else ''}",
                        end="",
                        flush=True,
                    )
        print(flush=True)
        for failure in failures:
            print(f"      FAILED {failure}", flush=True)
        store = ReportStore(settings.report_store_url)
        results = [r for r in (store.latest(d) for d in day_list) if r is not None]
        print("[4/4] Summary")
        print()
        print(summary_table(results, settings))
        print()
        payouts = PayoutStore(store)
        print(
            payouts_table([r for r in (payouts.latest(d) for d in day_list[1:]) if r is not None])
        )
        print()
        print(rollforward_table(settings, day_list, server))
        print()
        wrote = _write_env_file(root, env)
        print(
            f"{len(runs) - len(failures)} of {len(runs)} Dagster runs succeeded; instance in "
            f"{env['DAGSTER_HOME']}"
        )
        print(
            "Open the UI:  dagster dev   then http://127.0.0.1:3000  (assets, a check result per "
            "day, the schedule)"
        )
        if not wrote:
            print(
                "  (.env is yours, so it was left alone: export the variables above first, see "
                "README)"
            )
        print(
            "To materialize more days from the UI, keep the demo Stripe API up: recon-dagster "
            f"stripe-server --port {port}"
        )
        print("Or do both at once:           recon-dagster demo --ui")
        if late_changes:
            print()
            show_late_changes(defs, dataset, server, day_list, settings, verbose)
        if ui:
            subprocess.run(
                [str(Path(sys.executable).with_name("dagster")), "dev"],
                cwd=root,
                env={**os.environ, **env},
                check=False,
            )
        return 2 if failures else 0
    finally:
        server.stop()
