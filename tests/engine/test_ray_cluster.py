"""A 3-node Ray cluster on this machine (a head without CPUs and two 1-CPU worker nodes, loopback only): a search and
a funnel that lose a worker node mid-run finish with the same stored results as inline, nothing lost, duplicated or
failed (Ray retries the jobs the dead node held)."""

import shutil
import tempfile
import threading
from collections.abc import Callable

import pytest

from optsearch.engine import Store, funnel, search

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from optsearch.engine.ray_executor import RayExecutor  # noqa: E402

pytestmark = pytest.mark.slow  # ~1-2 minutes: three Ray nodes start, then workers import torch

NODE = dict(node_ip_address="127.0.0.1", num_cpus=1)
SEARCH = dict(task="digits", strategy="ppo", update_every=4, hidden=32, budget=24, seed=4, steps=100,
              lrs=[1e-2, 1e-1], batch=4)
FUNNEL = dict(top=4, seeds=4, finalists=2, tasks=["digits"], tune_seeds=2, score_seeds=2, steps=60, references=())


@pytest.fixture
def cluster(monkeypatch):
    temp_dir = tempfile.mkdtemp(prefix="osr-")  # short: Ray's socket paths live under it
    monkeypatch.setenv("RAY_TMPDIR", temp_dir)  # its session files and the address file a Cluster writes go here
    # Loopback only: connecting to 127.0.0.1, Ray would otherwise swap in this machine's network address (where the
    # nodes, bound to 127.0.0.1, are not listening) as it does for a cluster of several machines.
    monkeypatch.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    nodes = Cluster(initialize_head=True, head_node_args=dict(node_ip_address="127.0.0.1", num_cpus=0,
                                                              include_dashboard=False))
    nodes.add_node(**NODE)
    nodes.add_node(**NODE)
    nodes.wait_for_nodes()
    yield nodes
    nodes.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


def remove_a_node_once(cluster, count: Callable[[Store], int], after: int) -> tuple[threading.Thread, list[int]]:
    """A thread that, once `count(store)` reaches `after`, removes a worker node and records the count then."""
    seen: list[int] = []

    def watch(db) -> None:
        while True:
            try:
                with Store(db, readonly=True) as store:
                    n = count(store)
            except Exception:  # noqa: BLE001 - not created yet
                n = 0
            if n >= after:
                cluster.remove_node(next(iter(cluster.worker_nodes)))
                with Store(db, readonly=True) as store:
                    seen.append(count(store))
                return
            threading.Event().wait(0.1)

    return watch, seen


def stored(db) -> list[tuple]:
    with Store(db, readonly=True) as store:
        trials = sorted((t.fingerprint, t.rule, round(t.reward, 6), t.status) for t in store.trials())
        rows = sorted((r.key, round(r.evaluation.reward, 6), r.evaluation.status) for r in store.evaluations())
    return trials + rows


def run_losing_a_node(cluster, db, count: Callable[[Store], int], after: int, work: Callable[[RayExecutor], object]):
    """Run `work` on the cluster while a thread removes a worker node once `after` results are stored; returns how
    many were stored when the node was gone."""
    watch, seen = remove_a_node_once(cluster, count, after)
    thread = threading.Thread(target=watch, args=(db,), daemon=True)
    ex = RayExecutor(workers=2, address=cluster.address)
    try:
        thread.start()
        work(ex)
    finally:
        ex.close()
        thread.join(timeout=60)
    assert seen, "the node was never removed"
    return seen[0]


def test_a_search_and_a_funnel_survive_losing_a_node(cluster, tmp_path):
    inline, db = tmp_path / "inline.sqlite", tmp_path / "ray.sqlite"
    search(db=inline, **SEARCH)
    funnel(inline, **FUNNEL)

    total = SEARCH["budget"] + 2  # the baselines adam and sgd are trials too
    at = run_losing_a_node(cluster, db, lambda s: s.count_trials(), 6, lambda ex: search(db=db, executor=ex, **SEARCH))
    assert at < total, "the search had finished before the node was lost"
    assert len(cluster.worker_nodes) == 1

    cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    at = run_losing_a_node(cluster, db, lambda s: len(s.evaluations()), 4, lambda ex: funnel(db, executor=ex,
                                                                                                **FUNNEL))
    with Store(db, readonly=True) as store:
        assert at < len(store.evaluations()), "the funnel had finished before the node was lost"

    got = stored(db)
    assert got == stored(inline)
    assert not [row for row in got if row[-1] == "failed"]
