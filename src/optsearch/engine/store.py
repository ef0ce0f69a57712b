"""The durable trial store: one SQLite file per search (WAL mode), plain columns and JSON, no pickles.

Every evaluated rule is a row of `trials` (one per fingerprint); every rule a strategy sampled is a row
of `samples` (duplicates and rejections included: the controller's learning curve needs them);
`meta` holds the search config; `checkpoints` the strategy state, as bytes that load without pickle.
`evaluations` holds the funnel's results (see `engine.funnel_run`): one row per rule, stage, task, seed and settings.
A search on a suite (`tasks.suite`) keeps each trial's per-task scores in `task_scores` and each task's baseline
rewards in `suite_baselines`, computed once per task and settings. Each write commits at once, so a killed search
or funnel loses nothing that had finished. Stores written before a table existed stay readable: a missing
`evaluations`, `task_scores` or `suite_baselines` table reads as empty.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optsearch.dsl import RuleError, fingerprint, parse
from optsearch.tasks.results import Evaluation, Status
from optsearch.tasks.suite import Reference, SuiteEvaluation

if TYPE_CHECKING:
    from optsearch.dsl import Rule

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    tokens TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    reward REAL NOT NULL,
    best_lr REAL,
    per_lr TEXT NOT NULL,
    curve TEXT NOT NULL,
    reason TEXT,
    complexity INTEGER NOT NULL,
    strategy TEXT NOT NULL,
    step INTEGER NOT NULL,
    wall_time REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY,
    step INTEGER NOT NULL,
    rule TEXT NOT NULL,
    tokens TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    reward REAL NOT NULL,
    kind TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY,
    step INTEGER NOT NULL,
    n_samples INTEGER NOT NULL,
    state BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    rule TEXT NOT NULL,
    stage TEXT NOT NULL,
    task TEXT NOT NULL,
    seed INTEGER NOT NULL,
    settings TEXT NOT NULL,
    steps INTEGER NOT NULL,
    batch_size INTEGER NOT NULL,
    status TEXT NOT NULL,
    reward REAL NOT NULL,
    evaluation TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (fingerprint, stage, task, seed, settings)
);
CREATE TABLE IF NOT EXISTS task_scores (
    fingerprint TEXT NOT NULL,
    task TEXT NOT NULL,
    raw REAL,
    status TEXT NOT NULL,
    best REAL NOT NULL,
    floor REAL NOT NULL,
    normalized REAL NOT NULL,
    best_lr REAL,
    PRIMARY KEY (fingerprint, task)
);
CREATE TABLE IF NOT EXISTS suite_baselines (
    task TEXT NOT NULL,
    settings TEXT NOT NULL,
    baseline TEXT NOT NULL,
    reward REAL NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (task, settings, baseline)
);
"""


WAL_FILES = ("-wal", "-shm")
"""The files SQLite keeps beside a db in WAL mode while it is open."""
BASELINE = "baseline"
"""The `strategy` of a trial that is a reference baseline, evaluated outside the search's budget."""
BASELINES: tuple[str, ...] = ("adam", "g")
"""The default reference baselines of a search on a task: Adam and SGD, as rule texts."""


@dataclass
class Trial:
    """One evaluated rule (unique by fingerprint)."""

    rule: str
    tokens: list[str]
    fingerprint: str
    status: Status
    reward: float
    best_lr: float | None = None
    per_lr: list[dict[str, Any]] = field(default_factory=list)
    curve: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    complexity: int = 0
    strategy: str = ""
    step: int = 0
    wall_time: float = 0.0
    created_at: float = 0.0
    id: int | None = None
    scores: list[dict[str, Any]] = field(default_factory=list)  # a suite search's per-task `TaskScore`s

    def __post_init__(self) -> None:
        self.status = Status(self.status)

    @classmethod
    def from_evaluation(cls, ev: Evaluation | SuiteEvaluation, rule: Rule, strategy: str, step: int) -> Trial:
        """The stored form of `rule`'s evaluation, asked by `strategy` in round `step` (-1 for baselines). A suite's
        reward is its aggregate, and each task's raw score, reference and normalized score go to `scores`."""
        if isinstance(ev, SuiteEvaluation):
            return cls(str(rule), list(rule.tokens), rule.fingerprint, ev.status, float(ev.reward), reason=ev.reason,
                       complexity=rule.complexity, strategy=strategy, step=step, wall_time=float(ev.wall_time),
                       scores=[asdict(s) for s in ev.scores])
        return cls(str(rule), list(rule.tokens), rule.fingerprint, ev.status, float(ev.reward), best_lr=ev.best_lr,
                   per_lr=[asdict(p) for p in ev.per_lr], curve=[asdict(c) for c in ev.curve], reason=ev.reason,
                   complexity=rule.complexity, strategy=strategy, step=step, wall_time=float(ev.wall_time))


@dataclass
class Sample:
    """One rule a strategy proposed; `kind` says how its reward was found: new | duplicate | rejected."""

    step: int
    rule: str
    tokens: list[str]
    fingerprint: str
    reward: float
    kind: str
    created_at: float = 0.0
    id: int | None = None


@dataclass
class StoredEvaluation:
    """One funnel result: `rule` trained on `task` at `seed` under the settings whose key is `settings` (see
    `funnel.settings_key`), in funnel `stage` (proxy | transfer | score). `key` is unique in the store."""

    fingerprint: str
    rule: str
    stage: str
    task: str
    seed: int
    settings: str
    evaluation: Evaluation
    created_at: float = 0.0
    id: int | None = None

    @property
    def key(self) -> tuple[str, str, str, int, str]:
        return self.fingerprint, self.stage, self.task, self.seed, self.settings


class StoreError(ValueError):
    """A path that cannot be a search's store: not SQLite, another program's database, or being written."""


class Store:
    """A search's SQLite file. Open with `Store(path)`; ':memory:' works for tests.

    A writable store holds an OS lock on the sidecar file `PATH.lock` until closed, so two searches never
    write one db; the OS drops the lock when its process dies, so a killed search never blocks a resume.
    `readonly=True` (reports, monitors) takes no lock and never changes the file; it refuses a file that
    holds no search. A store keyed by older fingerprints (`dsl.fingerprint.VERSION`) is re-keyed when opened for
    writing (`_refingerprint`); read-only, it reads as stored.
    """

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = str(path)
        self._lock: int | None = None
        self._tidy = False  # remove the WAL files this read-only open created, when it closes
        if readonly:
            self._tidy = not any(Path(self.path + suffix).exists() for suffix in WAL_FILES)
            self.db = _connect_readonly(self.path)
            if "trials" not in _tables(self.db, self.path):
                self.db.close()
                raise StoreError(f"{self.path} holds no optsearch search: no table trials")
            return
        if self.path != ":memory:":
            if Path(self.path).is_dir():
                raise StoreError(f"{self.path} is a directory, not an SQLite database")
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.db = _connect(self.path)
        try:
            tables = _tables(self.db, self.path)
            if tables and "trials" not in tables:
                raise StoreError(f"{self.path} is another program's SQLite database (tables: "
                                 f"{', '.join(sorted(tables))}), not an optsearch store; use another --db")
            if self.path != ":memory:":
                self._lock = _lock(self.path + ".lock", self.path)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(f"BEGIN; {SCHEMA} COMMIT;")
            if tables and _keys_version(self.db) < fingerprint.VERSION:
                _refingerprint(self.db)
            self.db.execute(f"PRAGMA user_version = {fingerprint.VERSION}")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.db.close()
        if self._tidy:
            _drop_wal_files(self.path)
        if self._lock is not None:
            _unlock(self.path + ".lock", self._lock)
            self._lock = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- config --------------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except json.JSONDecodeError as exc:
            raise StoreError(f"{self.path}: its stored {key} is not valid JSON ({exc}); allowed: a db written by "
                             "optsearch") from None

    def set_meta(self, key: str, value: Any) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # --- trials --------------------------------------------------------------------------------
    def add_trial(self, t: Trial) -> Trial:
        t.created_at = t.created_at or time.time()
        with self.db:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO trials (rule, tokens, fingerprint, status, reward, best_lr, per_lr, curve, "
                "reason, complexity, strategy, step, wall_time, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (t.rule, json.dumps(t.tokens), t.fingerprint, t.status, t.reward, t.best_lr, json.dumps(t.per_lr),
                 json.dumps(t.curve), t.reason, t.complexity, t.strategy, t.step, t.wall_time, t.created_at),
            )
            if cur.rowcount and t.scores:
                self.db.executemany(
                    "INSERT INTO task_scores (fingerprint, task, raw, status, best, floor, normalized, best_lr) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    [(t.fingerprint, s["task"], s["raw"], s["status"], s["best"], s["floor"], s["normalized"],
                      s["best_lr"]) for s in t.scores])
        t.id = cur.lastrowid if cur.rowcount else None
        return t

    def trials(self, order: str = "id") -> list[Trial]:
        """All trials, by insertion (`order="id"`) or best first (`order="reward"`)."""
        by = {"id": "id", "reward": "reward DESC, id"}[order]
        rows = self.db.execute(f"SELECT * FROM trials ORDER BY {by}")
        scores: dict[str, list[dict[str, Any]]] = {}
        if self._has("task_scores"):  # stores written before suites lack the table
            for row in _dicts(self.db.execute("SELECT * FROM task_scores ORDER BY rowid")):
                scores.setdefault(row.pop("fingerprint"), []).append(row)
        return [_trial({**row, "scores": scores.get(row["fingerprint"], [])}) for row in _dicts(rows)]

    def rewards_by_fingerprint(self) -> dict[str, float]:
        return dict(self.db.execute("SELECT fingerprint, reward FROM trials"))

    def count_trials(self, evaluated_only: bool = True) -> int:
        """Trials that count toward a search's budget: evaluated (not rejected), and not reference baselines."""
        where = f" WHERE status != '{Status.REJECTED}' AND strategy != '{BASELINE}'" if evaluated_only else ""
        return self.db.execute(f"SELECT COUNT(*) FROM trials{where}").fetchone()[0]

    # --- samples -------------------------------------------------------------------------------
    def add_samples(self, samples: list[Sample]) -> None:
        now = time.time()
        with self.db:
            self.db.executemany(
                "INSERT INTO samples (step, rule, tokens, fingerprint, reward, kind, created_at) "
                "VALUES (?,?,?,?,?,?,?)",
                [(s.step, s.rule, json.dumps(s.tokens), s.fingerprint, s.reward, s.kind, s.created_at or now)
                 for s in samples],
            )

    def samples(self) -> list[Sample]:
        rows = self.db.execute("SELECT * FROM samples ORDER BY id")
        return [Sample(**{**row, "tokens": json.loads(row["tokens"])}) for row in _dicts(rows)]

    def sample_counts(self) -> dict[str, int]:
        """How often each fingerprint was sampled."""
        return dict(self.db.execute("SELECT fingerprint, COUNT(*) FROM samples GROUP BY fingerprint"))

    def count_samples(self, kind: str | None = None) -> int:
        """Sampled rules, or those of one `kind` (new, duplicate, rejected)."""
        if kind is None:
            return self.db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM samples WHERE kind = ?", (kind,)).fetchone()[0]

    # --- funnel evaluations ------------------------------------------------------------------------
    def add_evaluation(self, e: StoredEvaluation) -> bool:
        """Store a funnel result; a row of the same key is kept unless it failed (a broken worker, not the rule),
        which the new result replaces. Returns whether the row was written."""
        e.created_at = e.created_at or time.time()
        ev = e.evaluation
        with self.db:
            cur = self.db.execute(
                "INSERT INTO evaluations (fingerprint, rule, stage, task, seed, settings, steps, batch_size, status, "
                "reward, evaluation, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (fingerprint, stage, task, seed, settings) DO UPDATE SET status = excluded.status, "
                "reward = excluded.reward, evaluation = excluded.evaluation, created_at = excluded.created_at "
                f"WHERE evaluations.status = '{Status.FAILED}'",
                (e.fingerprint, e.rule, e.stage, e.task, e.seed, e.settings, ev.steps, ev.batch_size, ev.status,
                 float(ev.reward), ev.to_json(), e.created_at))
        return cur.rowcount > 0

    def evaluations(self) -> list[StoredEvaluation]:
        """Every funnel result, oldest first (none in a store written before the funnel existed)."""
        if not self._has("evaluations"):
            return []
        rows = self.db.execute("SELECT id, fingerprint, rule, stage, task, seed, settings, evaluation, created_at "
                               "FROM evaluations ORDER BY id")
        return [StoredEvaluation(**{**row, "evaluation": Evaluation.from_dict(json.loads(row["evaluation"]))})
                for row in _dicts(rows)]

    def _has(self, table: str) -> bool:
        return bool(self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
                                    ).fetchone())

    # --- a suite search's baselines --------------------------------------------------------------
    def add_reference(self, settings: str, reference: Reference) -> None:
        """Keep a task's baseline rewards under the key of the settings they were trained on."""
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO suite_baselines VALUES (?,?,?,?,?)",
                                [(reference.task, settings, name, reward, time.time())
                                 for name, reward in reference.rewards])

    def reference(self, task: str, settings: str, baselines: Sequence[str]) -> Reference | None:
        """The stored baseline rewards of `task` under `settings`, if every one of `baselines` is there."""
        if not self._has("suite_baselines"):
            return None
        found = dict(self.db.execute("SELECT baseline, reward FROM suite_baselines WHERE task = ? AND settings = ?",
                                     (task, settings)))
        if not all(name in found for name in baselines):
            return None
        return Reference(task, tuple((name, found[name]) for name in baselines))

    # --- strategy checkpoints ------------------------------------------------------------------
    def save_checkpoint(self, step: int, n_samples: int, state: bytes) -> None:
        with self.db:
            self.db.execute("INSERT INTO checkpoints (step, n_samples, state, created_at) VALUES (?,?,?,?)",
                            (step, n_samples, state, time.time()))
            self.db.execute("DELETE FROM checkpoints WHERE id NOT IN "
                            "(SELECT id FROM checkpoints ORDER BY id DESC LIMIT 3)")

    def latest_checkpoint(self) -> tuple[int, int, bytes] | None:
        row = self.db.execute("SELECT step, n_samples, state FROM checkpoints ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else (row[0], row[1], bytes(row[2]))


def _dicts(cursor: sqlite3.Cursor) -> Iterator[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    for row in cursor:
        yield dict(zip(names, row, strict=True))


def _trial(row: dict[str, Any]) -> Trial:
    for key in ("tokens", "per_lr", "curve"):
        row[key] = json.loads(row[key])
    return Trial(**row)


def _connect_readonly(path: str) -> sqlite3.Connection:
    """Open an existing file without ever writing to it (a WAL db being written still shows its commits)."""
    p = Path(path)
    if not p.exists():
        raise StoreError(f"no search database at {path}")
    if p.is_dir():
        raise StoreError(f"{path} is a directory, not an SQLite database")
    return _connect(p.resolve().as_uri() + "?mode=ro", path)


def _drop_wal_files(path: str) -> None:
    """A read-only connection to a WAL db creates empty -wal/-shm files and cannot remove them; the last writable
    connection to close removes them, and SQLite knows whether it is the last (a writer opened since keeps them)."""
    try:
        db = sqlite3.connect(path)
        try:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        pass  # a read-only folder or file: the files stay, as before


def _connect(target: str, path: str | None = None) -> sqlite3.Connection:
    try:
        return sqlite3.connect(target, uri=path is not None, timeout=30)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path or target}: {exc}") from None


def _tables(db: sqlite3.Connection, path: str) -> set[str]:
    """The file's table names; reading the schema is what tells an SQLite file from any other."""
    try:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        db.close()
        if exc.sqlite_errorcode == sqlite3.SQLITE_NOTADB:
            raise StoreError(f"{path} is not an SQLite database") from None
        raise StoreError(f"cannot read {path}: {exc}") from None


def _keys_version(db: sqlite3.Connection) -> int:
    """The fingerprint version a store's keys come from (stores from before versions were recorded read 0: 1)."""
    return max(1, db.execute("PRAGMA user_version").fetchone()[0])


_KEYED: dict[str, tuple[str, ...]] = {"trials": ("fingerprint",), "samples": (),
                                      "evaluations": ("fingerprint", "stage", "task", "seed", "settings")}
"""The tables that hold a rule text and its fingerprint, and each one's unique key (none for samples)."""


def _refingerprint(db: sqlite3.Connection) -> None:
    """Re-key every row by its rule's fingerprint now, in one transaction. A row whose new key another row already
    holds (the same function, stored twice under the old keys) keeps its old one: nothing finished is lost, counts
    and reports stay as they were, and lookups by the new key find the other row."""
    keys: dict[str, str | None] = {}

    def key(text: str) -> str | None:
        if text not in keys:
            try:
                keys[text] = parse(text).fingerprint
            except RuleError:
                keys[text] = None
        return keys[text]

    with db:
        for table, unique in _KEYED.items():
            rest = unique[1:]
            rows = db.execute(f"SELECT id, fingerprint, rule{''.join(', ' + c for c in rest)} FROM {table}").fetchall()
            for row_id, old, text, *others in rows:
                new = key(text)
                if new is None or new == old:
                    continue
                if unique:
                    where = " AND ".join(f"{c} = ?" for c in unique)
                    if db.execute(f"SELECT 1 FROM {table} WHERE {where}", (new, *others)).fetchone():
                        continue
                db.execute(f"UPDATE {table} SET fingerprint = ? WHERE id = ?", (new, row_id))
                if table == "trials":
                    db.execute("UPDATE task_scores SET fingerprint = ? WHERE fingerprint = ?", (new, old))


def _lock(lock_path: str, db_path: str) -> int:
    """Take the writer lock of a db (flock on a sidecar file, pid inside) or say who holds it."""
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreError(f"{db_path} is being written by {holder}; wait for it to finish or use another "
                             "--db") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file its last holder unlinked while we waited for it
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} ({_command()})".encode())
            return fd
        os.close(fd)


def _unlock(lock_path: str, fd: int) -> None:
    """Remove the lock file while still holding it (so no one locks a file about to vanish), then release."""
    try:
        os.unlink(lock_path)
    finally:
        os.close(fd)


def _command() -> str:
    """This process's command line, short: what a refused writer is told is holding the db."""
    text = " ".join([Path(sys.orig_argv[0]).name, *sys.orig_argv[1:]])
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "..."
