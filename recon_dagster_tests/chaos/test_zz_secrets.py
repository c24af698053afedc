"""Case 8: the whole chaos suite ran with recognisable secret values (a Stripe key, a Slack
webhook, a PagerDuty routing key, a PostgreSQL password). This test, sorted last, scans every log,
instance database (event log included), store, asset table and alert body the suite left under
its folder, and every row of the suite's PostgreSQL cluster: zero hits."""

from __future__ import annotations

from recon_dagster_tests.chaos.ledger import LEDGER_NAME, Entry, Ledger
from recon_dagster_tests.chaos.secrets import NEEDLES, hits_in_bytes, scan_files


def test_zz_secrets_no_secret_is_in_anything_the_suite_left(chaos_root, private_postgres, ledger):
    entry = Entry("8. secrets scan")
    cases = Ledger(chaos_root / LEDGER_NAME).rows()
    read, hits = scan_files([chaos_root])
    dump = private_postgres.dump()
    hits += [f"PostgreSQL cluster {private_postgres.name}: {n}" for n in hits_in_bytes(dump)]
    entry.faults = len(NEEDLES)  # the secret values planted
    entry.runs = sum(r["runs"] for r in cases)  # every run whose traces were scanned
    entry.lost = len(hits)  # a secret found counts as leaked
    ledger.write(entry)
    print(f"secrets scan: {read} files and {len(dump)} bytes of PostgreSQL read for {NEEDLES}")
    assert read > 20, "the scan found almost nothing to read"
    assert hits == []
