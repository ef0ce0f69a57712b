"""The store refuses what is not a search, lets one writer in at a time, and lets readers only read."""

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optsearch.engine.store import Store, StoreError, Trial

SEARCH = ["search", "--task", "digits", "--strategy", "random", "--budget", "100000", "--steps", "30", "--lrs", "0.1",
          "--batch", "2"]


def cli_process(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "optsearch.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def foreign_db(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE people (name TEXT)")
    return path


def test_what_is_not_a_store_is_one_clear_error(tmp_path):
    (tmp_path / "text.sqlite").write_text("hello, world\n" * 100)
    foreign_db(tmp_path / "foreign.sqlite")
    with pytest.raises(StoreError, match="text.sqlite is not an SQLite database"):
        Store(tmp_path / "text.sqlite")
    with pytest.raises(StoreError, match="is a directory, not an SQLite database"):
        Store(tmp_path)
    with pytest.raises(StoreError, match="foreign.sqlite is another program's SQLite database"):
        Store(tmp_path / "foreign.sqlite")
    with pytest.raises(StoreError, match="foreign.sqlite holds no optsearch search: no table trials"):
        Store(tmp_path / "foreign.sqlite", readonly=True)
    with pytest.raises(StoreError, match="no search database at"):
        Store(tmp_path / "missing.sqlite", readonly=True)


def test_a_second_writer_is_refused_naming_the_first_and_admitted_after_it_closes(tmp_path):
    db = tmp_path / "s.sqlite"
    with Store(db):
        with pytest.raises(StoreError, match=rf"s.sqlite is being written by pid {os.getpid()} \(.*\); wait"):
            Store(db)
        with Store(db, readonly=True) as reader:  # readers never take the lock
            assert reader.count_trials() == 0
    with Store(db):
        pass
    assert not Path(f"{db}.lock").exists()


def test_a_reader_sees_what_a_live_writer_committed_and_cannot_write(tmp_path):
    db = tmp_path / "s.sqlite"
    with Store(db) as writer, Store(db, readonly=True) as reader:
        writer.add_trial(Trial("g", ["g"], "fp", "ok", 0.5))
        assert [t.rule for t in reader.trials()] == ["g"]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.set_meta("x", 1)


@pytest.mark.parametrize("make", [lambda p: p.write_bytes(b""), foreign_db, lambda p: p.write_text("not sql\n" * 99)])
def test_a_refused_reader_leaves_the_file_as_it_was(tmp_path, make):
    path = tmp_path / "x.sqlite"
    make(path)
    before = path.read_bytes()
    with pytest.raises(StoreError):
        Store(path, readonly=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.sqlite"]


def test_two_searches_on_one_db_the_second_is_refused_and_a_killed_one_blocks_no_resume(tmp_path):
    db = tmp_path / "s.sqlite"
    first = cli_process(*SEARCH, "--db", str(db))
    try:
        lock = Path(f"{db}.lock")
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text()) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, first.communicate()
        seconds = [cli_process(*SEARCH, "--db", str(db), *extra) for extra in ([], ["--resume"])]
        for second in seconds:
            out, err = second.communicate(timeout=120)
            assert second.returncode == 2, err
            assert f"s.sqlite is being written by pid {first.pid} (" in err and "Traceback" not in err, err
    finally:
        first.kill()
        first.communicate()
    assert lock.exists()  # left by the killed search, but its lock died with it
    resumed = cli_process(*SEARCH[:6], "1", *SEARCH[7:], "--db", str(db), "--resume")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert not lock.exists()


def test_a_reader_leaves_no_empty_wal_files_and_never_removes_a_live_writers(tmp_path):
    db = tmp_path / "s.sqlite"
    with Store(db) as writer:
        writer.add_trial(Trial("g", ["g"], "fp", "ok", 0.5))
    with Store(db, readonly=True) as reader:
        assert reader.count_trials() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sqlite"]
    reader = Store(db, readonly=True)  # a reader first, then a writer: the reader's close must not touch its WAL
    with Store(db) as writer:
        assert reader.count_trials() == 1
        reader.close()
        writer.add_trial(Trial("m", ["m"], "fp2", "ok", 0.6))
    with Store(db, readonly=True) as again:
        assert again.count_trials() == 2
