"""Re-take the README's picture of a month close's Summary sheet, as LibreOffice shows it.

    .venv/bin/python docs/take_close_picture.py          # writes docs/close-summary.png

Needs LibreOffice Calc and poppler (apt-get install --no-install-recommends libreoffice-calc
poppler-utils). A month of activity in USD, EUR and JPY (`testing/month_activity.py`) is served
by the local Stripe server and closed through the CLI; LibreOffice prints the workbook to PDF
(the Summary sheet is its first page) and `pdftoppm` draws that page. Runs in a temporary
folder: nothing in this checkout changes but the picture.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from recon_dagster.testing.month_activity import a_month
from recon_dagster.testing.stripe_server import StripeServer

DOCS = Path(__file__).resolve().parent
KEY = "sk_test_close_picture"


def main() -> int:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    pdftoppm = shutil.which("pdftoppm")
    if soffice is None or pdftoppm is None:
        print("needs: apt-get install libreoffice-calc poppler-utils", file=sys.stderr)
        return 2
    months = [a_month(date(2026, 11, 1), "UTC", c) for c in ("usd", "eur", "jpy")]

    def pick(name: str) -> list[dict]:
        return [o for m in months for o in getattr(m, name)]

    server = StripeServer(
        pick("charges"),
        api_key=KEY,
        disputes=pick("disputes"),
        payouts=pick("payouts"),
        balance_transactions=pick("transactions"),
    ).start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            env = {
                **os.environ,
                "STRIPE_API_KEY": KEY,
                "STRIPE_API_BASE": server.url,
                "RECON_REPORT_STORE_URL": f"duckdb:///{folder}/recon.duckdb",
            }
            book = Path(folder) / "close.xlsx"
            subprocess.run(
                [sys.executable, "-m", "recon_dagster.cli", "close", "--month", "2026-11"]
                + ["--xlsx", str(book)],
                env=env,
                check=False,
            )
            subprocess.run(
                [soffice, "--headless", "--convert-to", "pdf", "--outdir", folder, str(book)],
                check=True,
                capture_output=True,
            )
            page = Path(folder) / "summary"
            subprocess.run(
                [pdftoppm, "-png", "-r", "110", "-f", "1", "-l", "1", "-singlefile"]
                + ["-W", "1040", "-H", "560", str(book.with_suffix(".pdf")), str(page)],
                check=True,
            )
            shutil.copy(page.with_suffix(".png"), DOCS / "close-summary.png")
    finally:
        server.stop()
    print(f"wrote {DOCS / 'close-summary.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
