"""Re-take the README's pictures of the Dagster UI: run the demo, serve it, photograph three pages.

    .venv/bin/python docs/take_screenshots.py            # writes docs/*.png

Needs Debian's `chromium` (apt-get install chromium) and Playwright, which drives it
(pip install -e ".[docs]"; Playwright's own browser download is not needed). The demo runs in a
temporary folder, so nothing in this checkout changes but the pictures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_env(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )


def wait_for(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in {timeout}s")


def shoot(page, url: str, out: Path, click: str | None = None) -> None:
    """Open `url`, optionally click a tab (the check's tabs are not in the URL), wait,
    photograph."""
    page.goto(url, wait_until="networkidle")
    if click:
        page.get_by_text(click, exact=True).first.click()
        page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1500)  # charts and tables render after their data arrives
    page.screenshot(path=str(out))
    print(f"wrote {out.relative_to(REPO)}")


def payout_day_with(env: dict[str, str], root: Path, problem: str) -> str:
    """The demo's arrival date whose stored payout report counts `problem` (the demo has one failed
    payout)."""
    from recon_dagster.settings import Settings
    from recon_dagster.stores.payout_store import PayoutStore
    from recon_dagster.stores.report_store import ReportStore

    store = PayoutStore(ReportStore(Settings.from_env(env, base_dir=root).report_store_url))
    for back in range(1, 15):
        day = date.today() - timedelta(days=back)
        result = store.latest(day)
        if result is not None and result.counts().get(problem):
            return day.isoformat()
    raise LookupError(f"no payout report of the demo counts {problem}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--browser", default=shutil.which("chromium") or "chromium")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1100)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="recon-shots-") as tmp:
        root = Path(tmp)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RECON_", "STRIPE_", "DAGSTER_"))
        }
        subprocess.run(
            [str(BIN / "recon-dagster"), "demo", "--port", "0"], cwd=root, env=env, check=True
        )
        env |= read_env(root / ".env")
        # The UI's one-time welcome dialog would cover the page: mark it seen, as its Skip button
        # does.
        (root / ".nux").mkdir(exist_ok=True)
        (root / ".nux" / "nux.yaml").write_text("seen: 1\n")
        # The demo's Stripe server stopped with the demo; the pages shown need only the instance.
        port = free_port()
        web = subprocess.Popen(
            [
                str(BIN / "dagster-webserver"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                str(REPO / "workspace.yaml"),
            ],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(f"{base}/server_info")
            time.sleep(5)  # the code location loads after the server answers
            critical_day = (
                date.today() - timedelta(days=4)
            ).isoformat()  # the demo's critical profile
            failed_payout_day = payout_day_with(env, root, "failed")
            from playwright.sync_api import sync_playwright

            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.browser, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": args.width, "height": args.height})
                shoot(
                    page,
                    f"{base}/assets/reconciliation_report?view=partitions&partition={critical_day}",
                    DOCS / "ui-reconciliation-report.png",
                )
                shoot(
                    page,
                    f"{base}/assets/reconciliation_report?view=checks&checkDetail=discrepancy_within_tolerance",
                    DOCS / "ui-check-per-day.png",
                    click="Execution history",
                )
                shoot(
                    page,
                    f"{base}/assets/payout_reconciliation?view=partitions&partition={failed_payout_day}",
                    DOCS / "ui-payout-reconciliation.png",
                )
                browser.close()
        finally:
            web.terminate()
            web.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
