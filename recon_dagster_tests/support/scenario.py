"""A small world for end-to-end tests: a Stripe server, an application database, settings.

Each test builds its own charges and payment rows; nothing here decides what the data says.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from recon_dagster.definitions import build_resources
from recon_dagster.defs.charges.assets import build_charges_assets
from recon_dagster.defs.charges.checks import build_charges_check
from recon_dagster.defs.shared import account_day_partitions
from recon_dagster.duckdb_connect import connect_waiting
from recon_dagster.settings import Settings
from recon_dagster.testing.deployment import materialize_command
from recon_dagster.testing.stripe_server import StripeServer, make_charge

API_KEY = "sk_test_scenario_key_1234"
ASSETS = ("stripe_charges", "db_payments", "reconciliation_report")

PAYMENTS_DDL = """
create table payments (
    stripe_charge_id varchar, amount bigint, currency varchar, status varchar,
    created_at timestamptz, amount_refunded bigint
)
"""


def at(day: date, hh: int = 12, mm: int = 0, ss: int = 0, tz: str = "UTC") -> datetime:
    return datetime.combine(day, time(hh, mm, ss), tzinfo=ZoneInfo(tz)).astimezone(UTC)


@dataclass
class Scenario:
    root: Path
    server: StripeServer
    tz: str = "UTC"
    start_date: date = date(2024, 1, 1)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def db_path(self) -> Path:
        return self.root / "app.duckdb"

    def sale(
        self,
        cid: str,
        amount: int,
        when: datetime,
        *,
        currency: str = "usd",
        record: bool = True,
        recorded_amount: int | None = None,
        status: str = "succeeded",
        db_status: str = "succeeded",
        refunded: int = 0,
        db_refunded: int | None = None,
    ) -> None:
        """A charge in Stripe and, unless `record=False`, its row in the payments table."""
        self.server.add_charges(
            [
                make_charge(
                    cid,
                    amount,
                    currency,
                    created=int(when.timestamp()),
                    status=status,
                    amount_refunded=refunded,
                )
            ]
        )
        if record:
            self.row(
                cid,
                amount if recorded_amount is None else recorded_amount,
                when + timedelta(seconds=2),
                currency=currency.upper(),
                status=db_status,
                refunded=refunded if db_refunded is None else db_refunded,
            )

    def row(
        self,
        cid: str,
        amount: int,
        when: datetime,
        *,
        currency: str = "USD",
        status: str = "succeeded",
        refunded: int = 0,
    ) -> None:
        # Attached, as the report store does (see `connect_waiting`): a few ms, not ~20, a row.
        with connect_waiting(self.db_path, shared=True) as con:
            con.execute(
                "insert into payments values (?, ?, ?, ?, ?, ?)",
                [cid, amount, currency, status, when, refunded],
            )

    def environment(self, **overrides: str) -> dict[str, str]:
        return {
            "STRIPE_API_KEY": API_KEY,
            "STRIPE_API_BASE": self.server.url,
            "STRIPE_MAX_NETWORK_RETRIES": "2",
            "RECON_DATABASE_URL": f"duckdb:///{self.db_path}",
            "RECON_PAYMENTS_REFUNDED_COLUMN": "amount_refunded",
            "RECON_REPORT_STORE_URL": f"duckdb:///{self.root / 'recon.duckdb'}",
            "RECON_TIMEZONE": self.tz,
            "RECON_START_DATE": self.start_date.isoformat(),
            **self.env,
            **overrides,
        }

    def use(self, monkeypatch, **overrides: str) -> Settings:
        """Put this world's settings in the process environment, as a deployment would."""
        for name, value in self.environment(**overrides).items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(self.root)
        return Settings.from_env()

    def dagster_objects(self, monkeypatch, **overrides: str) -> tuple[list, dict]:
        """(assets and check, resources) as definitions.py builds them from the environment."""
        settings = self.use(monkeypatch, **overrides)
        partitions = account_day_partitions(settings)
        assets = build_charges_assets(partitions, settings.timezone)
        return [*assets, build_charges_check(partitions)], build_resources(settings)

    def materialize(
        self,
        monkeypatch,
        first: str,
        last: str | None = None,
        *,
        instance: dg.DagsterInstance,
        tags: dict[str, str] | None = None,
        **overrides: str,
    ):
        objects, resources = self.dagster_objects(monkeypatch, **overrides)
        tags = dict(tags or {})
        if last is not None:
            tags |= {
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last,
            }
        return dg.materialize(
            objects,
            resources=resources,
            instance=instance,
            raise_on_error=False,
            tags=tags,
            partition_key=None if last is not None else first,
        )

    def launch(self, day: str) -> subprocess.Popen:
        """`dagster asset materialize` of one day in a process of its own, on the instance that
        $DAGSTER_HOME names: a run as a user starts it from a shell."""
        return subprocess.Popen(
            materialize_command(day, ASSETS),
            cwd=self.root,
            env={**os.environ, **self.environment()},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )


def new_scenario(root: Path, server: StripeServer, **kwargs) -> Scenario:
    with connect_waiting(root / "app.duckdb", shared=True) as con:
        con.execute(PAYMENTS_DDL)
    return Scenario(root=root, server=server, **kwargs)
