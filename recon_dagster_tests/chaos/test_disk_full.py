"""Case 3: the disk under the DuckDB report store fills up (a small tmpfs): the run fails with an
error naming the store's path, the previous report stays whole, and once space returns the next
run succeeds."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from recon_dagster.stores.report_store import ReportStore
from recon_dagster.testing.stripe_server import StripeServer
from recon_dagster_tests.chaos.conftest import require_or_skip
from recon_dagster_tests.chaos.ledger import Entry
from recon_dagster_tests.chaos.scenes import DAY, Product, charges, payments_table, product_env
from recon_dagster_tests.chaos.secrets import STRIPE_KEY
from recon_dagster_tests.chaos.servers import tmpfs
from recon_dagster_tests.chaos.store_checks import day_in_store

COUNT, RECORDED = 3000, 1000


def _fill(path: Path) -> None:
    """Write zeros into `path` until its (small) filesystem refuses with ENOSPC."""
    fs = os.statvfs(path.parent)
    assert fs.f_blocks * fs.f_frsize <= 64 * 2**20, f"{path.parent} is not the small tmpfs"
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={path}", "bs=64k", "count=1024"], capture_output=True
    )
    assert os.statvfs(path.parent).f_bavail == 0


def test_a_full_disk_names_the_store_keeps_the_last_report_and_recovers(case_dir, ledger):
    try:
        mounted = tmpfs(case_dir / "store", "24m")
        mount = mounted.__enter__()
    except subprocess.CalledProcessError as exc:
        require_or_skip(f"cannot mount a tmpfs here: {exc.stderr!r}")
        return
    entry = Entry("3. disk full")
    try:
        day = charges(DAY, COUNT)
        database = f"duckdb:///{case_dir / 'app.duckdb'}"
        payments_table(database, day[:RECORDED])
        store_path = mount / "recon.duckdb"
        with StripeServer(day, api_key=STRIPE_KEY) as server:
            product = Product(
                case_dir,
                product_env(
                    case_dir, server, database, RECON_REPORT_STORE_URL=f"duckdb:///{store_path}"
                ),
            )
            store = ReportStore(product.env["RECON_REPORT_STORE_URL"])
            code, out = product.run_json("reconcile", "--start", DAY.isoformat(), log="before")
            entry.runs += 1
            assert out["status"] == "discrepancy_found", out
            before = day_in_store(store, DAY)

            for n in range(2):  # twice: the second run meets a store the first left as it was
                _fill(mount / f"filler{n}")
                entry.faults += 1
                code, out = product.run_json(
                    "reconcile", "--start", DAY.isoformat(), log=f"full{n}"
                )
                entry.runs += 1
                named = str(mount) in (out.get("error") or "")
                entry.wrong_status += int(code != 2 or out["status"] != "error" or not named)
                for filler in mount.glob("filler*"):
                    filler.unlink()
                during = day_in_store(store, DAY)
                entry.lost += int(during.versions != before.versions)
                entry.wrong_status += during.partial + during.orphans

            code, out = product.run_json("reconcile", "--start", DAY.isoformat(), log="after")
            entry.runs += 1
            after = day_in_store(store, DAY)
            entry.wrong_status += int(code != 1 or out["status"] != "discrepancy_found")
            entry.lost += int(after.versions != [*before.versions, before.versions[-1] + 1])
            entry.doubled += after.partial
            assert len(store.latest(DAY).missing_in_database) == COUNT - RECORDED
    finally:
        mounted.__exit__(None, None, None)
    ledger.write(entry)
    full = (case_dir / "full0.log").read_text()
    assert (entry.lost, entry.doubled, entry.wrong_status) == (0, 0, 0), full[-3000:]
