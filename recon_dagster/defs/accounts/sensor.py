"""`stripe_accounts_sensor`: every account to reconcile becomes a partition of
`stripe_accounts`, so its days can be materialized, scheduled and backfilled."""

import dagster as dg

from recon_dagster.defs.resources import StripeResource
from recon_dagster.defs.shared import ACCOUNTS, EXPECTED_ERRORS
from recon_dagster.settings.accounts import Accounts
from recon_dagster.sources.stripe_accounts import connected_accounts

SENSOR = "stripe_accounts_sensor"


def build_accounts_sensor(accounts: Accounts, interval_seconds: int) -> dg.SensorDefinition:
    """Adds the accounts RECON_STRIPE_ACCOUNTS names, or under Connect the platform's own account
    and every connected account `GET /v1/accounts` lists (limited to those named, if any). An
    account that goes away keeps its partition: its reports stay."""

    @dg.sensor(
        name=SENSOR,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Adds each Stripe account to reconcile as a partition of stripe_accounts "
        "(Connect: from GET /v1/accounts).",
    )
    def stripe_accounts_sensor(context: dg.SensorEvaluationContext, stripe: StripeResource):
        if accounts.connect:
            try:
                listed = connected_accounts(stripe.client())
            except EXPECTED_ERRORS as exc:
                # The sensor's tick shows the reason; the next tick tries again.
                raise dg.Failure(
                    description=f"Could not list the connected accounts: {exc}"
                ) from None
            names = accounts.discovered(listed)
        else:
            names = list(accounts.listed)
        known = set(context.instance.get_dynamic_partitions(ACCOUNTS.name or ""))
        new = [name for name in names if name not in known]
        if not new:
            return dg.SkipReason(f"No new Stripe accounts ({len(names)} known).")
        context.log.info(f"Adding {len(new)} Stripe account(s): {', '.join(new[:20])}")
        return dg.SensorResult(dynamic_partitions_requests=[ACCOUNTS.build_add_request(new)])

    return stripe_accounts_sensor
