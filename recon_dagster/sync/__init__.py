"""Repair: insert the payments Stripe collected but the table lacks (`repair.py`); its Dagster
job is in `defs/sync/`."""
