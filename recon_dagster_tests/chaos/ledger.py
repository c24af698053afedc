"""What each chaos case injected and what users found afterwards, one JSON line per test, and the
table of them (case | faults injected | runs | lost | doubled | wrong status | seconds)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

LEDGER_NAME = "ledger.jsonl"
COLUMNS = ("faults", "runs", "lost", "doubled", "wrong_status")


@dataclass
class Entry:
    """One test's tally. `lost`: data or alerts that should exist and do not; `doubled`: rows,
    versions, incidents or messages that exist twice; `wrong_status`: a run, command or day that
    says something other than what happened (success on partial data, a failure with no reason)."""

    case: str
    faults: int = 0
    runs: int = 0
    lost: int = 0
    doubled: int = 0
    wrong_status: int = 0
    note: str = ""  # what users would see that the columns do not say
    started: float = field(default_factory=time.monotonic)


class Ledger:
    def __init__(self, path: Path):
        self.path = path

    def write(self, entry: Entry) -> None:
        row = {k: v for k, v in asdict(entry).items() if k != "started"}
        row["seconds"] = round(time.monotonic() - entry.started, 1)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def rows(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def table(rows: list[dict]) -> str:
    """The rows summed per case, in case order, as a Markdown table."""
    cases: dict[str, dict] = {}
    notes = sorted({f"{r['case']}: {r['note']}" for r in rows if r.get("note")})
    for row in rows:
        total = cases.setdefault(row["case"], dict.fromkeys((*COLUMNS, "seconds"), 0))
        for name in (*COLUMNS, "seconds"):
            total[name] += row[name]
    lines = [
        "| case | faults injected | runs | lost | doubled | wrong status | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case in sorted(cases, key=lambda c: (c.split(".")[0].zfill(3), c)):
        t = cases[case]
        lines.append(
            f"| {case} | {t['faults']} | {t['runs']} | {t['lost']} | {t['doubled']} | "
            f"{t['wrong_status']} | {t['seconds']:.0f} |"
        )
    return "\n".join(lines + ([""] + [f"- {n}" for n in notes] if notes else []))
