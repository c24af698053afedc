"""Recognisable secret values for the chaos suite, and the scan that proves none leaked.

Every case runs the product with these values; the last test looks for each value's distinctive
middle part (a masked key such as `sk_test_****w3e9` keeps none of it) in every file the suite
left behind, every alert body and every PostgreSQL row it wrote.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SECRETS_TEST = "test_zz_"  # the scan's test name prefix: it is sorted last

STRIPE_KEY = "sk_test_51CHAOSstripeKEYzz9q7w3e9"
SLACK_PATH = "/services/T0CHAOS/B0CHAOS/CHAOSslackHOOKsecret"
ROUTING_KEY = "CHAOSpdROUTINGkey000000000000000"
PG_PASSWORD = "CHAOSpgPASSWORDx7"

NEEDLES = ("CHAOSstripeKEY", "CHAOSslackHOOK", "CHAOSpdROUTING", "CHAOSpgPASSWORD")


def with_password(url: str) -> str:
    """A PostgreSQL URL carrying the chaos password (trust auth ignores it; logs must too)."""
    return url.replace("postgres@", f"postgres:{PG_PASSWORD}@", 1)


def hits_in_bytes(data: bytes) -> list[str]:
    return [n for n in NEEDLES if n.encode() in data]


def scan_files(roots: Iterable[Path]) -> tuple[int, list[str]]:
    """(files read, `path: needle` for every hit) under `roots`, binary files included."""
    read, hits = 0, []
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            try:
                data = path.read_bytes()
            except OSError:
                continue
            read += 1
            hits += [f"{path}: {n}" for n in hits_in_bytes(data)]
    return read, hits
