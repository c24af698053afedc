"""The report store's versioned migrations, on DuckDB and PostgreSQL: the schema history of every
table the store keeps (the charges' reports, line items, currency totals, the sync audit, the
payout reports) in one place, applied in order by `ReportStore.migrate`."""

from __future__ import annotations

# The charges' tables, as the store names them (report_store.py reads these names).
REPORTS, LINE_ITEMS, CURRENCY_TOTALS, SYNC_AUDIT = (
    "reconciliation_reports",
    "reconciliation_line_items",
    "reconciliation_currency_totals",
    "sync_audit",
)
# The month close's tables (close_store.py).
MONTH_CLOSES, PERIOD_LOCKS, ADJUSTMENTS = (
    "month_closes",
    "period_locks",
    "prior_period_adjustments",
)
_R, _L, _C, _S = REPORTS, LINE_ITEMS, CURRENCY_TOTALS, SYNC_AUDIT  # short, for the statements below
_DOUBLE = "{double}"

# (version, statements). Append new versions; never edit an applied one. `{s}` is the schema
# prefix, `{json}` / `{double}` the dialect's JSON and double types. Statements that differ per
# database are a {dialect name: statements} mapping.
MIGRATIONS: list[tuple[int, list[str] | dict[str, list[str]]]] = [
    (
        1,
        [
            f"""CREATE TABLE {{s}}{_R} (
            id TEXT PRIMARY KEY, date DATE NOT NULL, end_date DATE NOT NULL, timezone TEXT NOT NULL,
            currency TEXT, stripe_total DECIMAL(38,4) NOT NULL,
            database_total DECIMAL(38,4) NOT NULL,
            discrepancy DECIMAL(38,4) NOT NULL, stripe_total_minor BIGINT NOT NULL,
            database_total_minor BIGINT NOT NULL, discrepancy_minor BIGINT NOT NULL,
            discrepancy_percentage {_DOUBLE} NOT NULL, gross_discrepancy DECIMAL(38,4) NOT NULL,
            gross_discrepancy_minor BIGINT NOT NULL,
            gross_discrepancy_percentage {_DOUBLE} NOT NULL,
            tolerance_percentage {_DOUBLE} NOT NULL, include_refunds BOOLEAN NOT NULL,
            stripe_count BIGINT NOT NULL, database_count BIGINT NOT NULL, status TEXT NOT NULL,
            error TEXT, details {{json}} NOT NULL, source TEXT NOT NULL, run_id TEXT,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(), UNIQUE (date, end_date))""",
            f"""CREATE TABLE {{s}}{_L} (
            report_id TEXT NOT NULL, position INTEGER NOT NULL, date DATE NOT NULL,
            end_date DATE NOT NULL, kind TEXT NOT NULL, payment_id TEXT NOT NULL,
            currency TEXT NOT NULL, stripe_amount BIGINT, database_amount BIGINT,
            difference BIGINT NOT NULL, stripe_amount_major DECIMAL(38,4),
            database_amount_major DECIMAL(38,4), difference_major DECIMAL(38,4),
            stripe_status TEXT, database_status TEXT, detail TEXT,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (report_id, position))""",
            f"CREATE INDEX IF NOT EXISTS {_L}_day_idx ON {{s}}{_L} (date, end_date)",
            f"CREATE INDEX IF NOT EXISTS {_L}_payment_idx ON {{s}}{_L} (payment_id)",
            f"""CREATE TABLE {{s}}{_C} (
            report_id TEXT NOT NULL, date DATE NOT NULL, end_date DATE NOT NULL,
            currency TEXT NOT NULL,
            stripe_total_minor BIGINT NOT NULL, database_total_minor BIGINT NOT NULL,
            discrepancy_minor BIGINT NOT NULL, gross_discrepancy_minor BIGINT NOT NULL,
            stripe_total DECIMAL(38,4) NOT NULL, database_total DECIMAL(38,4) NOT NULL,
            discrepancy DECIMAL(38,4) NOT NULL, gross_discrepancy DECIMAL(38,4) NOT NULL,
            stripe_count BIGINT NOT NULL, database_count BIGINT NOT NULL,
            discrepancy_percentage {_DOUBLE} NOT NULL,
            gross_discrepancy_percentage {_DOUBLE} NOT NULL,
            PRIMARY KEY (report_id, currency))""",
            f"""CREATE TABLE {{s}}{_S} (
            id TEXT PRIMARY KEY, seq INTEGER NOT NULL, "at" TIMESTAMPTZ NOT NULL DEFAULT now(),
            run_id TEXT, payment_id TEXT NOT NULL, action TEXT NOT NULL, result TEXT NOT NULL,
            reason TEXT, dry_run BOOLEAN NOT NULL DEFAULT false, date DATE)""",
            f"CREATE INDEX IF NOT EXISTS {_S}_payment_idx ON {{s}}{_S} (payment_id)",
        ],
    ),
    # PaymentIntent ids, disputes and invalid rows (issue 11).
    (
        2,
        [
            f"ALTER TABLE {{s}}{_L} ADD COLUMN database_id TEXT",
            f"ALTER TABLE {{s}}{_L} ADD COLUMN dispute_id TEXT",
            f"ALTER TABLE {{s}}{_L} ADD COLUMN dispute_status TEXT",
            f"ALTER TABLE {{s}}{_L} ADD COLUMN source TEXT",
            f"ALTER TABLE {{s}}{_L} ADD COLUMN invalid_column TEXT",
            f"ALTER TABLE {{s}}{_C} ADD COLUMN disputes_lost_minor BIGINT NOT NULL DEFAULT 0",
            f"ALTER TABLE {{s}}{_C} ADD COLUMN disputes_open_minor BIGINT NOT NULL DEFAULT 0",
        ],
    ),
    # Payout reconciliation (issue 13): see stores/payout_store.py.
    (
        3,
        [
            """CREATE TABLE {s}payout_reports (
            id TEXT PRIMARY KEY, date DATE NOT NULL, end_date DATE NOT NULL, as_of DATE NOT NULL,
            status TEXT NOT NULL, severity TEXT NOT NULL, payouts BIGINT NOT NULL,
            problems BIGINT NOT NULL,
            deposits_without_payout BIGINT NOT NULL, bank_checked BOOLEAN NOT NULL, error TEXT,
            details {json} NOT NULL, source TEXT NOT NULL, run_id TEXT,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(), UNIQUE (date, end_date))""",
            """CREATE TABLE {s}payout_line_items (
            report_id TEXT NOT NULL, position INTEGER NOT NULL, date DATE NOT NULL,
            end_date DATE NOT NULL,
            kind TEXT NOT NULL, id TEXT NOT NULL, amount BIGINT NOT NULL,
            amount_major DECIMAL(38,4) NOT NULL,
            currency TEXT NOT NULL, arrival_date DATE, status TEXT, automatic BOOLEAN,
            itemized_net BIGINT,
            difference BIGINT, charges BIGINT, refunds BIGINT, disputes BIGINT, fees BIGINT,
            adjustments BIGINT,
            transaction_count BIGINT, bank_deposit_id TEXT, problems TEXT,
            charges_missing_in_database TEXT,
            charges_amount_mismatch TEXT, reference TEXT, PRIMARY KEY (report_id, position))""",
            "CREATE INDEX IF NOT EXISTS payout_line_items_day_idx ON {s}payout_line_items (date, "
            "end_date)",
            "CREATE INDEX IF NOT EXISTS payout_line_items_id_idx ON {s}payout_line_items (id)",
        ],
    ),
    # Every version of a report (issue 15): `version` and `trigger`, UNIQUE (date, end_date,
    # version). Rows saved before this have version 1 and, unless the service saved them (cli/api),
    # trigger NULL: whether a schedule, a backfill or a person ran them was not recorded, and
    # guessing `manual` would tell auditors something nobody knows.
    (
        4,
        {
            "postgresql": [
                "ALTER TABLE {s}reconciliation_reports ADD COLUMN version INTEGER NOT NULL DEFAULT "
                "1",
                # save() always says which
                "ALTER TABLE {s}reconciliation_reports ALTER COLUMN version DROP DEFAULT",
                "ALTER TABLE {s}reconciliation_reports ADD COLUMN trigger TEXT",
                "UPDATE {s}reconciliation_reports SET trigger = source WHERE source IN ('cli', "
                "'api')",
                # PostgreSQL's name for migration 1's UNIQUE (date, end_date).
                "ALTER TABLE {s}reconciliation_reports DROP CONSTRAINT "
                "reconciliation_reports_date_end_date_key",
                "ALTER TABLE {s}reconciliation_reports ADD CONSTRAINT "
                "reconciliation_reports_date_end_date_version_key "
                "UNIQUE (date, end_date, version)",
            ],
            # DuckDB cannot drop a UNIQUE constraint (DROP CONSTRAINT: "No support for that ALTER
            # TABLE option yet" as of 2.0), so the table is rebuilt: same columns in the same order,
            # version and trigger appended as PostgreSQL's ADD COLUMN does. It all runs in
            # migrate()'s transaction: a failure leaves the old table as it was.
            "duckdb": [
                """CREATE TABLE {s}reconciliation_reports_v4 (
                id TEXT PRIMARY KEY, date DATE NOT NULL, end_date DATE NOT NULL,
                timezone TEXT NOT NULL,
                currency TEXT, stripe_total DECIMAL(38,4) NOT NULL,
                database_total DECIMAL(38,4) NOT NULL,
                discrepancy DECIMAL(38,4) NOT NULL, stripe_total_minor BIGINT NOT NULL,
                database_total_minor BIGINT NOT NULL, discrepancy_minor BIGINT NOT NULL,
                discrepancy_percentage {double} NOT NULL, gross_discrepancy DECIMAL(38,4) NOT NULL,
                gross_discrepancy_minor BIGINT NOT NULL,
                gross_discrepancy_percentage {double} NOT NULL,
                tolerance_percentage {double} NOT NULL, include_refunds BOOLEAN NOT NULL,
                stripe_count BIGINT NOT NULL, database_count BIGINT NOT NULL, status TEXT NOT NULL,
                error TEXT, details {json} NOT NULL, source TEXT NOT NULL, run_id TEXT,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(), version INTEGER NOT NULL,
                trigger TEXT,
                UNIQUE (date, end_date, version))""",
                "INSERT INTO {s}reconciliation_reports_v4 SELECT *, 1, CASE WHEN source IN ('cli', "
                "'api') THEN source END FROM {s}reconciliation_reports",
                "DROP TABLE {s}reconciliation_reports",
                "ALTER TABLE {s}reconciliation_reports_v4 RENAME TO reconciliation_reports",
            ],
        },
    ),
    # The month close (issue 21): every close of a month, versioned, the locks of periods, and the
    # late changes to locked months booked in the open one.
    (
        5,
        [
            f"""CREATE TABLE {{s}}{MONTH_CLOSES} (
            id TEXT PRIMARY KEY, month TEXT NOT NULL, version INTEGER NOT NULL,
            status TEXT NOT NULL, figures {{json}} NOT NULL, source TEXT NOT NULL, run_id TEXT,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(), UNIQUE (month, version))""",
            f"""CREATE TABLE {{s}}{PERIOD_LOCKS} (
            id TEXT PRIMARY KEY, month TEXT NOT NULL, seq INTEGER NOT NULL,
            action TEXT NOT NULL, actor TEXT NOT NULL, reason TEXT, close_id TEXT,
            figures {{json}}, recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            UNIQUE (month, seq))""",
            # A late change to a locked month, booked in the open month (the run key of the
            # day's re-run makes booking it twice impossible).
            f"""CREATE TABLE {{s}}{ADJUSTMENTS} (
            id TEXT PRIMARY KEY, run_key TEXT NOT NULL UNIQUE, locked_month TEXT NOT NULL,
            day DATE NOT NULL, booked_month TEXT NOT NULL, events TEXT, event_types TEXT,
            recorded_at TIMESTAMPTZ NOT NULL DEFAULT now())""",
        ],
    ),
    # Many Stripe accounts (issue 22): each report, close, lock and adjustment is one account's,
    # `default` for a deployment of one account (everything saved before this one): the charges'
    # UNIQUE (account, date, end_date, version), the payouts' UNIQUE (account, date, end_date),
    # the closes' UNIQUE (account, month, version), the locks' UNIQUE (account, month, seq).
    (
        6,
        {
            "postgresql": [
                "ALTER TABLE {s}reconciliation_reports ADD COLUMN account TEXT NOT NULL DEFAULT "
                "'default'",
                "ALTER TABLE {s}reconciliation_reports DROP CONSTRAINT "
                "reconciliation_reports_date_end_date_version_key",
                "ALTER TABLE {s}reconciliation_reports ADD CONSTRAINT "
                "reconciliation_reports_account_date_end_date_version_key "
                "UNIQUE (account, date, end_date, version)",
                "ALTER TABLE {s}payout_reports ADD COLUMN account TEXT NOT NULL DEFAULT 'default'",
                "ALTER TABLE {s}payout_reports DROP CONSTRAINT payout_reports_date_end_date_key",
                "ALTER TABLE {s}payout_reports ADD CONSTRAINT "
                "payout_reports_account_date_end_date_key UNIQUE (account, date, end_date)",
                f"ALTER TABLE {{s}}{MONTH_CLOSES} ADD COLUMN account TEXT NOT NULL DEFAULT "
                "'default'",
                f"ALTER TABLE {{s}}{MONTH_CLOSES} DROP CONSTRAINT month_closes_month_version_key",
                f"ALTER TABLE {{s}}{MONTH_CLOSES} ADD CONSTRAINT "
                "month_closes_account_month_version_key UNIQUE (account, month, version)",
                f"ALTER TABLE {{s}}{PERIOD_LOCKS} ADD COLUMN account TEXT NOT NULL DEFAULT "
                "'default'",
                f"ALTER TABLE {{s}}{PERIOD_LOCKS} DROP CONSTRAINT period_locks_month_seq_key",
                f"ALTER TABLE {{s}}{PERIOD_LOCKS} ADD CONSTRAINT "
                "period_locks_account_month_seq_key UNIQUE (account, month, seq)",
                f"ALTER TABLE {{s}}{ADJUSTMENTS} ADD COLUMN account TEXT NOT NULL DEFAULT "
                "'default'",
            ],
            # DuckDB cannot drop a UNIQUE constraint (see migration 4): the table is rebuilt with
            # the column appended, in migrate()'s transaction.
            "duckdb": [
                """CREATE TABLE {s}reconciliation_reports_v6 (
                id TEXT PRIMARY KEY, date DATE NOT NULL, end_date DATE NOT NULL,
                timezone TEXT NOT NULL,
                currency TEXT, stripe_total DECIMAL(38,4) NOT NULL,
                database_total DECIMAL(38,4) NOT NULL,
                discrepancy DECIMAL(38,4) NOT NULL, stripe_total_minor BIGINT NOT NULL,
                database_total_minor BIGINT NOT NULL, discrepancy_minor BIGINT NOT NULL,
                discrepancy_percentage {double} NOT NULL, gross_discrepancy DECIMAL(38,4) NOT NULL,
                gross_discrepancy_minor BIGINT NOT NULL,
                gross_discrepancy_percentage {double} NOT NULL,
                tolerance_percentage {double} NOT NULL, include_refunds BOOLEAN NOT NULL,
                stripe_count BIGINT NOT NULL, database_count BIGINT NOT NULL, status TEXT NOT NULL,
                error TEXT, details {json} NOT NULL, source TEXT NOT NULL, run_id TEXT,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(), version INTEGER NOT NULL,
                trigger TEXT, account TEXT NOT NULL DEFAULT 'default',
                UNIQUE (account, date, end_date, version))""",
                "INSERT INTO {s}reconciliation_reports_v6 SELECT *, 'default' "
                "FROM {s}reconciliation_reports",
                "DROP TABLE {s}reconciliation_reports",
                "ALTER TABLE {s}reconciliation_reports_v6 RENAME TO reconciliation_reports",
                """CREATE TABLE {s}payout_reports_v6 (
                id TEXT PRIMARY KEY, date DATE NOT NULL, end_date DATE NOT NULL,
                as_of DATE NOT NULL,
                status TEXT NOT NULL, severity TEXT NOT NULL, payouts BIGINT NOT NULL,
                problems BIGINT NOT NULL,
                deposits_without_payout BIGINT NOT NULL, bank_checked BOOLEAN NOT NULL,
                error TEXT, details {json} NOT NULL, source TEXT NOT NULL, run_id TEXT,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                account TEXT NOT NULL DEFAULT 'default', UNIQUE (account, date, end_date))""",
                "INSERT INTO {s}payout_reports_v6 SELECT *, 'default' FROM {s}payout_reports",
                "DROP TABLE {s}payout_reports",
                "ALTER TABLE {s}payout_reports_v6 RENAME TO payout_reports",
                f"""CREATE TABLE {{s}}{MONTH_CLOSES}_v6 (
                id TEXT PRIMARY KEY, month TEXT NOT NULL, version INTEGER NOT NULL,
                status TEXT NOT NULL, figures {{json}} NOT NULL, source TEXT NOT NULL, run_id TEXT,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                account TEXT NOT NULL DEFAULT 'default', UNIQUE (account, month, version))""",
                f"""CREATE TABLE {{s}}{PERIOD_LOCKS}_v6 (
                id TEXT PRIMARY KEY, month TEXT NOT NULL, seq INTEGER NOT NULL,
                action TEXT NOT NULL, actor TEXT NOT NULL, reason TEXT, close_id TEXT,
                figures {{json}}, recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                account TEXT NOT NULL DEFAULT 'default', UNIQUE (account, month, seq))""",
                f"""CREATE TABLE {{s}}{ADJUSTMENTS}_v6 (
                id TEXT PRIMARY KEY, run_key TEXT NOT NULL UNIQUE, locked_month TEXT NOT NULL,
                day DATE NOT NULL, booked_month TEXT NOT NULL, events TEXT, event_types TEXT,
                recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                account TEXT NOT NULL DEFAULT 'default')""",
                *(
                    statement
                    for table in (MONTH_CLOSES, PERIOD_LOCKS, ADJUSTMENTS)
                    for statement in (
                        f"INSERT INTO {{s}}{table}_v6 SELECT *, 'default' FROM {{s}}{table}",
                        f"DROP TABLE {{s}}{table}",
                        f"ALTER TABLE {{s}}{table}_v6 RENAME TO {table}",
                    )
                ),
            ],
        },
    ),
]
