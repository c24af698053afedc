"""The data and commands chaos cases share: a day of charges in Stripe, the application's
payments table on any of the four databases, and `recon-dagster` run as a process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from recon_dagster.testing.deployment import REPO, materialize_command
from recon_dagster.testing.stripe_objects import make_charge
from recon_dagster.testing.stripe_server import StripeServer
from recon_dagster_tests.chaos.secrets import STRIPE_KEY
from recon_dagster_tests.support.databases import dbapi, execute, kind_of
from recon_dagster_tests.support.scenario import at

DAY = date(2024, 6, 3)

_DDL = {
    "duckdb": "create table payments (stripe_charge_id varchar, amount bigint, currency varchar, "
    "status varchar, created_at timestamptz, amount_refunded bigint)",
    "postgres": "create table payments (stripe_charge_id text, amount bigint, currency text, "
    "status text, created_at timestamptz, amount_refunded bigint)",
    "mysql": "create table payments (stripe_charge_id varchar(64), amount bigint, currency "
    "char(3), status varchar(20), created_at timestamp(6) null, amount_refunded bigint)",
    "sqlite": "create table payments (stripe_charge_id text, amount integer, currency text, "
    "status text, created_at datetime, amount_refunded integer)",
}


def charges(day: date, count: int, prefix: str = "ch_c") -> list[dict]:
    """`count` succeeded USD charges through the day, amounts 100..; ids `<prefix>0000`.."""
    return [
        make_charge(
            f"{prefix}{i:04d}",
            100 + i,
            created=int(at(day, 1 + i * 20 // max(count, 1), i % 60).timestamp()),
        )
        for i in range(count)
    ]


def payment_rows(url: str, recorded: list[dict]) -> list[tuple]:
    """`recorded` charges as rows of the payments table at `url` (UTC wall time where naive)."""
    kind = kind_of(url)
    rows = []
    for c in recorded:
        created = datetime.fromtimestamp(c["created"] + 2, UTC)
        when = created.replace(tzinfo=None) if kind in ("mysql", "sqlite") else created
        rows.append(
            (c["id"], c["amount"], "USD", "succeeded", str(when) if kind == "sqlite" else when, 0)
        )
    return rows


def payments_table(url: str, recorded: list[dict]) -> None:
    """The default `payments` table at `url` holding `recorded` charges as rows."""
    execute(url, _DDL[kind_of(url)])
    record(url, recorded)


def record(url: str, charges: list[dict]) -> None:
    """`charges` added to the payments table at `url`, as the application records them."""
    rows = payment_rows(url, charges)
    if rows:
        execute(url, "insert into payments values ({0}, {0}, {0}, {0}, {0}, {0})", rows)


def ids_in(url: str) -> list[str]:
    with dbapi(url) as (conn, _):
        cur = conn.cursor()
        cur.execute("select stripe_charge_id from payments")
        return sorted(r[0] for r in cur.fetchall())


@dataclass
class Product:
    """`recon-dagster` and `dagster` commands as processes, with the settings of one world."""

    root: Path
    env: dict[str, str]

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "recon_dagster.cli", *args]

    def start(self, *args: str, log: str) -> subprocess.Popen:
        out = open(self.root / f"{log}.log", "wb")
        try:
            return subprocess.Popen(
                self.command(*args),
                cwd=self.root,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        finally:
            out.close()

    def run_json(self, *args: str, log: str, timeout: float = 180) -> tuple[int, dict]:
        proc = self.start(*args, "--json", log=log)
        code = proc.wait(timeout=timeout)
        return code, last_json(self.root / f"{log}.log")


def last_json(path: Path) -> dict:
    """The JSON object a `--json` command printed (its last line that is one)."""
    for line in reversed(path.read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError(f"no JSON in {path}:\n{path.read_text(errors='replace')[-3000:]}")


def product_env(root: Path, server: StripeServer, database_url: str, **more: str) -> dict[str, str]:
    """The process environment a deployment gives the product (none of the tester's RECON_*)."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RECON_", "STRIPE_", "DAGSTER_", "SLACK_", "PAGERDUTY_"))
    }
    return {
        **base,
        "STRIPE_API_KEY": STRIPE_KEY,
        "STRIPE_API_BASE": server.url,
        "RECON_DATABASE_URL": database_url,
        "RECON_PAYMENTS_REFUNDED_COLUMN": "amount_refunded",
        "RECON_REPORT_STORE_URL": f"duckdb:///{root / 'recon.duckdb'}",
        "RECON_TIMEZONE": "UTC",
        "RECON_START_DATE": "2024-01-01",
        **more,
    }


def with_dagster_home(root: Path, env: dict[str, str]) -> dict[str, str]:
    """`env` with a DAGSTER_HOME under `root` holding the repository's dagster.yaml (SQLite)."""
    home = root / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    return {**env, "DAGSTER_HOME": str(home)}


def materialize(
    root: Path, env: dict[str, str], day: str, *, log: str, wait: bool = True
) -> subprocess.Popen:
    """`dagster asset materialize` of one day's three assets, from a shell, as a process."""
    out = open(root / f"{log}.log", "wb")
    try:
        proc = subprocess.Popen(
            materialize_command(day),
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its step processes with it: `kill -9` of its group ends all
        )
    finally:
        out.close()
    if wait:
        proc.wait(timeout=300)
    return proc
