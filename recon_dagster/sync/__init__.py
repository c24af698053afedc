"""Repair: insert the payments Stripe collected but the table lacks (`repair.py`), as a job with a
refresh sensor (`job.py`)."""
