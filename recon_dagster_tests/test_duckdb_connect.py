"""Connections to DuckDB files: a file attached to the process's in-memory database is held only
while a connection uses it, as a file opened on its own is."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from recon_dagster.duckdb_connect import connect_waiting

READ_FROM_ANOTHER_PROCESS = (
    "import duckdb, sys\n"
    "try:\n"
    "    c = duckdb.connect(sys.argv[1])\n"
    "except duckdb.IOException as exc:\n"
    "    print('locked' if 'lock' in str(exc).lower() else exc)\n"
    "else:\n"
    "    print(c.execute('SELECT count(*) FROM t').fetchone()[0])\n"
)


def another_process_reads(path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", READ_FROM_ANOTHER_PROCESS, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_shared_connection_holds_the_file_only_until_it_is_closed(tmp_path):
    path = tmp_path / "store.duckdb"
    with connect_waiting(path, shared=True) as conn:
        conn.execute("CREATE TABLE t AS SELECT 1 AS x")
        assert another_process_reads(path) == "locked"
    assert another_process_reads(path) == "1"


def test_nested_shared_connections_share_the_file_until_the_last_is_closed(tmp_path):
    path = tmp_path / "store.duckdb"
    with connect_waiting(path, shared=True) as outer:
        outer.execute("CREATE TABLE t (x INTEGER)")
        with connect_waiting(path, shared=True) as inner:
            inner.execute("INSERT INTO t VALUES (1), (2)")
        assert outer.execute("SELECT count(*) FROM t").fetchone() == (2,)
        assert another_process_reads(path) == "locked"
    assert another_process_reads(path) == "2"


def test_opening_a_file_the_other_way_waits_for_the_shared_use_to_end(tmp_path):
    path = tmp_path / "store.duckdb"
    held = threading.Event()

    def hold() -> None:
        with connect_waiting(path, shared=True) as conn:
            conn.execute("CREATE TABLE t AS SELECT 1 AS x")
            held.set()
            time.sleep(0.5)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(timeout=30)
    with pytest.raises(duckdb.IOException, match="another way"):
        with connect_waiting(path, lock_timeout=0.1):
            pass
    with connect_waiting(path, lock_timeout=30) as own:
        assert own.execute("SELECT x FROM t").fetchone() == (1,)
    holder.join()
