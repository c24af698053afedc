"""Imports with the cyclic GC paused, then frozen: each case in a fresh interpreter, since a
freeze lasts as long as the process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def run(tmp_path: Path, code: str) -> list[str]:
    # A module that records, when imported, whether the collector was on.
    (tmp_path / "probe_module.py").write_text("import gc\nENABLED = gc.isenabled()\n")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_modules_are_imported_with_the_gc_off_and_what_they_built_is_frozen(tmp_path):
    out = run(
        tmp_path,
        "import gc, sys; sys.path.insert(0, '.'); "
        "from recon_dagster.frozen_imports import import_frozen; "
        "import_frozen('probe_module', 'json'); import probe_module; "
        "print(probe_module.ENABLED, 'json' in sys.modules, gc.get_freeze_count() > 0, "
        "gc.isenabled())",
    )
    assert out == ["False", "True", "True", "True"]


def test_a_gc_the_caller_had_turned_off_stays_off(tmp_path):
    out = run(
        tmp_path,
        "import gc, sys; sys.path.insert(0, '.'); gc.disable(); "
        "from recon_dagster.frozen_imports import import_frozen; "
        "import_frozen('probe_module'); print(gc.isenabled())",
    )
    assert out == ["False"]


def test_a_failing_import_raises_and_leaves_the_gc_on(tmp_path):
    out = run(
        tmp_path,
        "import gc\nfrom recon_dagster.frozen_imports import import_frozen\n"
        "try:\n    import_frozen('no_such_module_here')\n"
        "except ModuleNotFoundError as e:\n    print(e.name, gc.isenabled())\n",
    )
    assert out == ["no_such_module_here", "True"]


@pytest.mark.parametrize(
    ("command", "frozen"), [(["history", "--start", "2024-01-01"], True), (["--help"], False)]
)
def test_the_cli_imports_the_service_frozen_before_a_command_runs(tmp_path, command, frozen):
    """`recon-dagster history` (any command that works through the service) starts with the
    service's libraries in the permanent generation; `--help` imports none of them."""
    code = (
        "import gc, sys\nfrom recon_dagster import cli\n"
        "try:\n    cli.main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print('recon_dagster.service' in sys.modules, gc.get_freeze_count() > 100_000, "
        "gc.isenabled(), file=sys.stderr)\n"
    )
    store = f"duckdb:///{tmp_path / 'recon.duckdb'}"
    done = subprocess.run(
        [sys.executable, "-c", code, *command],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "RECON_REPORT_STORE_URL": store, "STRIPE_API_KEY": "sk_x"},
    )
    assert done.stderr.split()[-3:] == [str(frozen), str(frozen), "True"], done.stderr
