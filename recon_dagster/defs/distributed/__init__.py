"""Running the daily reconciliation's steps on Celery workers (dagster-celery)."""
