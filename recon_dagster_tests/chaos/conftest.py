"""The chaos suite: real processes and servers, faults injected from outside the code under test.

Run apart from the README's test command (every test here is marked `chaos`, which the default
run deselects) and serially, since several cases take a whole server down:

    .venv/bin/python -m pytest -m chaos -n0 recon_dagster_tests/chaos

Every case records what it injected and what users would find afterwards in the ledger; the run
ends with the table the README shows. The secrets case runs last and scans what all the others
left behind. With `RECON_REQUIRE_CHAOS=1` (as in CI) a case that cannot inject its fault here
(not root, no `mount`) fails instead of skipping.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from recon_dagster_tests.chaos.ledger import LEDGER_NAME, Ledger, table
from recon_dagster_tests.chaos.secrets import SECRETS_TEST

_ROOT_KEY = pytest.StashKey[Path]()


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.chaos)
    # The secrets scan reads what every other case wrote: it goes last.
    items.sort(key=lambda item: item.name.startswith(SECRETS_TEST))


@pytest.fixture(scope="session")
def chaos_root(tmp_path_factory, pytestconfig) -> Path:
    """Where every case keeps its processes' logs, instances and stores, for the secrets scan."""
    root = tmp_path_factory.mktemp("chaos")
    pytestconfig.stash[_ROOT_KEY] = root
    return root


@pytest.fixture(scope="session")
def ledger(chaos_root) -> Ledger:
    return Ledger(chaos_root / LEDGER_NAME)


def require_or_skip(reason: str) -> None:
    """Skip a case whose fault this machine cannot inject; fail it under RECON_REQUIRE_CHAOS=1."""
    if os.environ.get("RECON_REQUIRE_CHAOS", "").strip() == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def case_dir(chaos_root, request) -> Iterator[Path]:
    path = chaos_root / request.node.name.replace("[", "_").replace("]", "")
    path.mkdir()
    yield path


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    root = config.stash.get(_ROOT_KEY, None)
    if root is None or not (root / LEDGER_NAME).exists():
        return
    rows = Ledger(root / LEDGER_NAME).rows()
    terminalreporter.write_sep("=", "chaos: what was survived")
    terminalreporter.write_line(table(rows))
    out = os.environ.get("RECON_CHAOS_TABLE")
    if out:
        Path(out).write_text(json.dumps(rows, indent=1))


@pytest.fixture(scope="session")
def private_postgres():
    """The suite's own PostgreSQL cluster (see servers.py)."""
    from recon_dagster_tests.chaos.servers import PrivatePostgres, can_make_clusters

    why = can_make_clusters()
    if why:
        require_or_skip(why)
    cluster = PrivatePostgres().create()
    yield cluster
    cluster.drop()
