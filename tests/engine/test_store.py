"""The store refuses what is not a search, lets one writer in at a time, and lets readers only read."""

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optsearch.dsl import fingerprint, parse
from optsearch.engine.store import Sample, Store, StoredEvaluation, StoreError, Trial
from optsearch.tasks.results import Evaluation

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


def test_a_store_keyed_by_older_fingerprints_is_rekeyed_when_opened_for_writing_and_keeps_every_row(tmp_path):
    """Fingerprint version 2 gave plain `rd` plain `cd`'s probe (the same schedule): a version-1 store's `rd` rows
    move to their new keys, unless their twin already holds it; a reader changes nothing."""
    db = tmp_path / "old.sqlite"
    cd, rd, lone = parse("cd * g"), parse("rd * g"), parse("rd * m")
    score = {"task": "digits", "raw": 0.4, "status": "ok", "best": 0.5, "floor": 0.1, "normalized": 0.75,
             "best_lr": 0.1}
    ev = Evaluation(str(lone), "digits", 0.4, "ok")
    with Store(db) as store:
        store.add_trial(Trial(str(cd), list(cd.tokens), cd.fingerprint, "ok", 0.5))
        store.add_trial(Trial(str(rd), list(rd.tokens), "v1-rd-g", "ok", 0.5))
        store.add_trial(Trial(str(lone), list(lone.tokens), "v1-rd-m", "ok", 0.4, scores=[score]))
        store.add_samples([Sample(0, str(lone), list(lone.tokens), "v1-rd-m", 0.4, "new"),
                           Sample(0, str(rd), list(rd.tokens), "v1-rd-g", 0.5, "new")])
        store.add_evaluation(StoredEvaluation("v1-rd-m", str(lone), "proxy", "digits", 1, "k", ev))
    with sqlite3.connect(db) as raw:
        raw.execute("PRAGMA user_version = 0")
    with Store(db, readonly=True) as reader:
        assert {t.fingerprint for t in reader.trials()} == {cd.fingerprint, "v1-rd-g", "v1-rd-m"}
    assert rd.fingerprint == cd.fingerprint != lone.fingerprint
    with Store(db) as store:
        assert {t.rule: t.fingerprint for t in store.trials()} == {
            "cd * g": cd.fingerprint, "rd * g": "v1-rd-g", "rd * m": lone.fingerprint}
        assert [s["normalized"] for t in store.trials() if t.rule == "rd * m" for s in t.scores] == [0.75]
        assert store.sample_counts() == {lone.fingerprint: 1, cd.fingerprint: 1}
        assert [e.fingerprint for e in store.evaluations()] == [lone.fingerprint]
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == fingerprint.VERSION
