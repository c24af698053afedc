"""The seed's service calls (reconcile a range, run daily, sync) on the same core as the assets.

For scripts, notebooks and the CLI. A range is reconciled as one window, so a payment whose two
records fall either side of a midnight inside the range is matched.
"""

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from stripe import StripeClient

from recon_dagster.close import gl_mapping
from recon_dagster.core.grading import grade
from recon_dagster.core.month_close import MonthClose
from recon_dagster.core.payout_result import PayoutResult
from recon_dagster.core.result import ReconcileParams, ReconciliationResult
from recon_dagster.days import day_window, days_between, today
from recon_dagster.settings import ConfigError, Settings, parse_percent, variables
from recon_dagster.settings.accounts import DEFAULT_ACCOUNT, PLATFORM_ACCOUNT
from recon_dagster.sources import bank, payments_db, stripe_client, stripe_events, stripe_mirror
from recon_dagster.sources.bank import BankLines
from recon_dagster.sources.payments_db import PaymentsDataError, PaymentsReader
from recon_dagster.sources.stripe_accounts import connected_accounts
from recon_dagster.sources.stripe_api import StripeApi, connect_side
from recon_dagster.sources.stripe_budget import BudgetUnavailableError, budget_beside
from recon_dagster.sources.stripe_client import StripeDataError, StripeUnavailableError
from recon_dagster.sources.stripe_mirror_source import MirrorCharges, payout_source
from recon_dagster.sources.stripe_source import ChargeSource, PayoutSource
from recon_dagster.stores.close_store import CloseStore, PeriodLockedError
from recon_dagster.stores.payout_store import PayoutStore
from recon_dagster.stores.report_store import ReportStore
from recon_dagster.sync.repair import SyncResult, sync_payments
from recon_dagster.usecases.charges import reconcile_charges
from recon_dagster.usecases.month_close import Month, close_month, record_close
from recon_dagster.usecases.payouts import reconcile_payout_days

log = logging.getLogger("recon_dagster")

RUNTIME_ERRORS = (
    StripeUnavailableError,
    StripeDataError,
    PaymentsDataError,
    BudgetUnavailableError,
)


class SyncError(RuntimeError):
    """The sync could not start (its reconciliation failed); nothing was written."""


def as_date(value: date | datetime | str, name: str) -> date:
    """Accept a date, a datetime (its date) or 'YYYY-MM-DD'."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ConfigError(name, f"{value!r} is not a date: expected YYYY-MM-DD") from None


@dataclass
class BillingReconciliationService:
    settings: Settings
    source: str = "api"
    _apis: dict[str, StripeApi] = field(default_factory=dict, init=False, repr=False)

    def stripe(self, account: str = DEFAULT_ACCOUNT) -> StripeApi:
        """The Stripe API for `account`, through one paced client (STRIPE_API_KEY, or the
        account's own key variable, is needed); under Connect, the platform's charges to a
        connected account are read with the platform's client."""
        if account not in self._apis:
            client = self._client(account)
            side = connect_side(
                self.settings.accounts,
                account,
                client,
                lambda: self.stripe(PLATFORM_ACCOUNT).client,
            )
            self._apis[account] = StripeApi(client, connect=side)
        return self._apis[account]

    def _client(self, account: str) -> StripeClient:
        s = self.settings
        key_variable = s.accounts.key_variable(account)
        return stripe_client.make_client(
            variables.secret(key_variable, s.env) if key_variable else s.stripe_api_key(),
            api_base=s.stripe_api_base,
            max_network_retries=s.stripe_max_network_retries,
            requests_per_second=s.stripe_requests_per_second,
            endpoint_requests_per_second=s.stripe_endpoint_requests_per_second,
            timeout=s.stripe_timeout_seconds,
            account=account,
            stripe_account=s.accounts.stripe_account(account),
            budget_url=self.budget_url(),
        )

    def budget_url(self) -> str | None:
        """Where the Stripe budgets are shared with every other process (`stripe_budget`)."""
        url = self.settings.stripe_budget_url
        if url == "off":
            return None
        return url or budget_beside(self.settings.report_store_url)

    def accounts(self) -> list[str]:
        """The accounts this deployment reconciles: under Connect the platform's own (`platform`)
        and the connected accounts `GET /v1/accounts` lists, limited to those
        RECON_STRIPE_ACCOUNTS names; the named ones; or the one `default`."""
        accounts = self.settings.accounts
        if not accounts.connect:
            return list(accounts.listed)
        if accounts.setting.names:
            return list(accounts.setting.names)
        return accounts.discovered(connected_accounts(self.stripe(PLATFORM_ACCOUNT).client))

    def sources(self, account: str = DEFAULT_ACCOUNT) -> tuple[ChargeSource, PayoutSource]:
        """Where `account`'s charges and payouts are read: the Stripe mirror when
        RECON_STRIPE_SOURCE names one (an unreachable mirror or an unknown layout stops here,
        nothing written), else the API. A mirror needs the API only for its spot check."""
        s = self.settings
        if s.stripe_source == "api":
            return self.stripe(account), self.stripe(account)
        if account != DEFAULT_ACCOUNT:
            raise ConfigError(
                "RECON_STRIPE_SOURCE",
                "is a Stripe mirror, which holds one account: with many accounts, read the API",
            )
        api = self.stripe() if s.is_set("STRIPE_API_KEY") else None
        mirror = stripe_mirror.detect(s.stripe_source, s.mirror_schema)
        lag = timedelta(minutes=s.mirror_min_lag_minutes)
        charges = MirrorCharges(mirror, lag, s.mirror_spot_check if api else 0, api)
        return charges, payout_source(charges)

    def store(self, account: str = DEFAULT_ACCOUNT) -> ReportStore:
        return ReportStore(self.settings.report_store_url, account=account)

    def reconcile(
        self,
        start_date: date | datetime | str,
        end_date: date | datetime | str | None = None,
        tolerance_percentage: float | Decimal | str | None = None,
        include_refunds: bool | None = None,
        *,
        store: bool = True,
        account: str = DEFAULT_ACCOUNT,
    ) -> ReconciliationResult:
        """Reconcile whole days `start_date`..`end_date` (inclusive) in RECON_TIMEZONE, of one
        Stripe account (`default`: the one of a single-account deployment).

        Bad configuration raises `ConfigError` before anything is written; a failure of Stripe or
        of the payments table is recorded and returned as a result with status `error`.
        """
        s = self.settings
        s.accounts.check(account)
        first = as_date(start_date, "start_date")
        last = as_date(end_date, "end_date") if end_date is not None else first
        if last < first:
            raise ConfigError("end_date", f"{last} is before start_date {first}")
        tolerance = (
            s.tolerance_percent
            if tolerance_percentage is None
            else parse_percent("tolerance_percentage", str(tolerance_percentage))
        )
        refunds = s.include_refunds if include_refunds is None else bool(include_refunds)
        table = s.payments
        if s.accounts.multi:  # that account's rows only
            table = replace(table, account=account)
        payments_db.validate(table)  # a missing table or column stops here, nothing written
        started = time.monotonic()
        log.info("Starting billing reconciliation for %s to %s (%s)", first, last, s.timezone)
        params = ReconcileParams(
            start=first,
            end=last,
            timezone=s.timezone,
            tolerance_percentage=float(tolerance),
            include_refunds=refunds,
            paid_statuses=table.paid_statuses,
            refunds_tracked=table.refunded_column is not None,
            match_on=s.match_on,
        )
        try:
            stripe, _ = self.sources(account)
            result = reconcile_charges(
                params,
                stripe=stripe,
                payments=PaymentsReader(table),
                margin=timedelta(hours=s.timing_margin_hours),
            )
        except RUNTIME_ERRORS as exc:
            log.error("Reconciliation failed: %s", exc)
            result = ReconciliationResult.failed(
                first,
                last,
                s.timezone,
                str(exc),
                tolerance=float(tolerance),
                include_refunds=refunds,
            )
        if store:
            self.store(account).save(result, source=self.source)
        log.info(
            "Reconciliation completed %s",
            {
                "status": result.status,
                "discrepancy": f"{result.discrepancy_percentage:.4f}%",
                "duration": f"{time.monotonic() - started:.2f}s",
            },
        )
        if result.status == "discrepancy_found":
            log.warning(
                "Billing discrepancy detected %s",
                {
                    "discrepancy": f"{result.gross_discrepancy_percentage:.4f}%",
                    "severity": self.severity(result),
                },
            )
        return result

    def severity(self, result: ReconciliationResult) -> str:
        return grade(result, self.settings.tolerance_percent, self.settings.critical_percent)

    def sync_missing_payments(
        self,
        ids: list[str],
        *,
        dry_run: bool = False,
        day: date | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> SyncResult:
        """The seed's call: insert these Stripe charges (of `account`) into the payments table
        where missing; with many accounts, each row is written with its account."""
        s = self.settings
        s.accounts.check(account)
        table = replace(s.payments, account=account) if s.accounts.multi else s.payments
        payments_db.validate(table)
        window = day_window(day, day, s.timezone) if day is not None else None
        return sync_payments(
            list(ids),
            client=self.stripe(account).client,
            table=table,
            store=self.store(account),
            dry_run=dry_run,
            day=day,
            match_on=self.settings.match_on,
            window=window,
        )

    def sync_days(
        self,
        start_date: date | str,
        end_date: date | str | None = None,
        *,
        ids: list[str] | None = None,
        dry_run: bool = False,
        account: str = DEFAULT_ACCOUNT,
    ) -> SyncResult:
        """Sync what is missing on these days (or the given ids) of `account`, then refresh each
        day's report."""
        first = as_date(start_date, "--start")
        last = as_date(end_date, "--end") if end_date is not None else first
        if ids is None:
            found = self.reconcile(first, last, store=False, account=account)
            if found.status == "error":
                raise SyncError(f"could not find the missing payments: {found.error}")
            ids = found.missing_in_database
        result = self.sync_missing_payments(ids, dry_run=dry_run, day=first, account=account)
        if result.synced:
            for day in days_between(first, last):
                self.reconcile(day, account=account)  # the stored report shows what is left
        return result

    def reconcile_payouts(
        self,
        start_date: date | datetime | str,
        end_date: date | datetime | str | None = None,
        *,
        store: bool = True,
        account: str = DEFAULT_ACCOUNT,
    ) -> PayoutResult:
        """Payouts of one Stripe account arriving `start_date`..`end_date` (inclusive):
        itemized, matched to the payments table and (with RECON_BANK_TABLE) to the bank. A
        failure is returned as status `error`."""
        s = self.settings
        s.accounts.check(account)
        first = as_date(start_date, "start_date")
        last = as_date(end_date, "end_date") if end_date is not None else first
        if last < first:
            raise ConfigError("end_date", f"{last} is before start_date {first}")
        table, bank_table = s.payments, s.bank
        if s.accounts.multi:  # that account's rows and bank lines only
            table = replace(table, account=account)
            bank_table = bank_table and replace(bank_table, account=account)
        payments_db.validate(table)
        if bank_table is not None:
            bank.validate(bank_table)
        as_of = today(s.timezone)
        _, stripe = self.sources(account)
        try:
            result = reconcile_payout_days(
                first,
                last,
                stripe=stripe,
                payments=PaymentsReader(table),
                bank=BankLines(bank_table, s.timezone) if bank_table is not None else None,
                match_days=s.bank_match_days,
                as_of=as_of,
            )
        except RUNTIME_ERRORS as exc:
            log.error("Payout reconciliation failed: %s", exc)
            result = PayoutResult.failed(first, last, as_of, str(exc), match_days=s.bank_match_days)
        if store:
            PayoutStore(self.store(account)).save(result, source=self.source)
        log.info("Payout reconciliation completed %s", {"status": result.status, **result.counts()})
        return result

    def close_month(
        self,
        month: str,
        *,
        lock: bool = False,
        unlock: bool = False,
        actor: str = "recon-dagster",
        reason: str = "",
        account: str = DEFAULT_ACCOUNT,
    ) -> tuple[MonthClose, dict]:
        """Close `month` (YYYY-MM): the balance rolled forward, tied to Stripe's, with its
        reconciling items and journal; every close is stored as a new version, except of a
        locked month, whose figures stay as locked. `lock` locks a tied-out month (refused
        otherwise: `PeriodLockedError`); `unlock` re-opens a locked one first, saying why.
        Returns the close and what was recorded (`{"version", "lock"}`). With many accounts, each
        account's balance is closed and locked on its own."""
        s = self.settings
        s.accounts.check(account)
        closes = CloseStore(self.store(account))
        target = Month.parse(month, s.timezone)
        if unlock:
            if not reason.strip():
                raise ConfigError("--reason", "say why the month is re-opened")
            closes.unlock(target.name, actor=actor, reason=reason.strip())
        result = close_month(
            target,
            client=self.stripe(account).client,
            store=self.store(account),
            timezone=s.timezone,
            start_date=s.start_date,
            # RECON_OPENING_BALANCES is the one account's; another's sums its whole history.
            opening_balances=s.opening_balances if account == DEFAULT_ACCOUNT else None,
            mapping=gl_mapping.load(s.gl_mapping),
            log=log.info,
        )
        recorded: dict = {"version": None, "lock": None}
        saved = record_close(closes, result, source=self.source)
        if saved is not None:
            close_id, recorded["version"] = saved
            if lock:
                if not result.tied_out:
                    whose = "" if account == DEFAULT_ACCOUNT else f" for account {account}"
                    raise PeriodLockedError(
                        f"{target.name} is not tied out{whose} ({result.status}): it cannot be "
                        "locked"
                    )
                figures = result.to_json_dict()
                closes.lock(target.name, actor=actor, figures=figures, close_id=close_id)
                result = replace(result, locked=True)
                recorded["lock"] = "locked"
        elif lock:
            whose = "" if account == DEFAULT_ACCOUNT else f" for account {account}"
            raise PeriodLockedError(f"{target.name} is already locked{whose}")
        return result, recorded

    def changes_since(self, since: date | datetime | str) -> dict:
        """Which stored days Stripe has changed since their last report, without running anything:
        `{"days": [{"date", "events", "types", "charges", "last_report_at"}], "events_read"}`."""
        s = self.settings
        first = as_date(since, "--since")
        start = datetime.combine(first, datetime.min.time(), tzinfo=ZoneInfo(s.timezone))
        client = self.stripe().client
        # The stored days are the charges' reports: only the events that change a charge count here.
        changes = stripe_events.read_changes(
            client,
            stripe_events.Cursor(int(start.timestamp())),
            limit=1_000_000,
            types=stripe_events.LATE_CHANGE_TYPES,
        )
        store, days = self.store(), []
        for day, day_changes in sorted(stripe_events.days_of(client, changes, s.timezone).items()):
            versions = store.versions(day)
            if not versions:
                continue  # never reconciled: nothing stored to be out of date
            last = datetime.fromisoformat(versions[0]["generated_at"])
            newer = [c for c in day_changes if c.created >= int(last.timestamp())]
            if newer:
                days.append(
                    {
                        "date": day.isoformat(),
                        "events": sorted(c.event_id for c in newer),
                        "types": sorted({c.type for c in newer}),
                        "charges": sorted({c.charge_id for c in newer if c.charge_id}),
                        "last_report_at": last.isoformat(),
                    }
                )
        return {"days": days, "events_read": len(changes)}

    def yesterday(self) -> date:
        return today(self.settings.timezone) - timedelta(days=1)

    def run_daily_reconciliation(self) -> ReconciliationResult:
        """The previous day in RECON_TIMEZONE, as the 02:00 schedule does."""
        return self.reconcile(self.yesterday())


def create_billing_reconciliation_service(
    settings: Settings | None = None, *, source: str = "api"
) -> BillingReconciliationService:
    """The seed's factory: settings from the environment unless given; validated now."""
    return BillingReconciliationService(settings=settings or Settings.from_env(), source=source)
