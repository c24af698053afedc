"""A platform's connected accounts, from `GET /v1/accounts` (Stripe Connect)."""

import stripe

from recon_dagster.sources.stripe_client import StripeDataError, list_all

_CONTEXT = "listing connected accounts (GET /v1/accounts)"


def connected_accounts(client: stripe.StripeClient) -> list[str]:
    """The ids of every connected account of the platform whose key `client` holds, oldest
    first; an account without an `acct_` id fails the listing, naming its position."""
    ids = []
    for position, account in enumerate(list_all(client, "/v1/accounts", {}, _CONTEXT)):
        account_id = account.get("id") if isinstance(account, dict) else None
        if not isinstance(account_id, str) or not account_id.startswith("acct_"):
            raise StripeDataError(
                f"Stripe listed an account without an acct_ id (position {position}) while "
                f"{_CONTEXT}.",
                "id",
            )
        ids.append(account_id)
    return list(reversed(ids))  # Stripe lists newest first
