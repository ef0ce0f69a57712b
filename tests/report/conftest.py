import random
from pathlib import Path

import pytest

from optsearch.dsl import parse
from optsearch.engine.store import Sample, Store, Trial
from optsearch.transfer.results import BenchmarkResult
from optsearch.transfer.train import Epoch, Run

RULES = ["g", "adam", "g * exp(sign(g) * sign(m))", "m * exp(v)", "g + drop(m, 0.3)", "clip(m, 1e-4) * exp(v)",
         "drop(m, 0.1) / (exp(g^2) + eps)", "g - clip(g^2, 1e-4)", "exp(g) - exp(m)", "log|g| + sqrt|m|",
         "adam * exp(sign(g) * sign(m))", "(exp(sign(g) * sign(m)) + clip(g, 1e-4)) * g"]


def _curve(final: float) -> list[dict]:
    return [{"step": s, "val_acc": final * (1 - 0.6 * 0.5 ** (s / 100))} for s in range(0, 501, 100)]


@pytest.fixture
def search_db(tmp_path: Path) -> Path:
    return make_search_db(tmp_path / "search.sqlite")


def make_search_db(path: Path) -> Path:
    """A small synthetic search: 12 trials (one rejected, one diverged) and 80 samples of all three kinds."""
    rng = random.Random(0)
    with Store(path) as store:
        store.set_meta("config", {"task": "mnist1d", "strategy": "ppo", "groups": 2, "seed": 0})
        rewards = {}
        for i, text in enumerate(RULES):
            rule = parse(text)
            status = "rejected" if text == "exp(g) - exp(m)" else "diverged" if text == "log|g| + sqrt|m|" else "ok"
            reward = 0.0 if status != "ok" else round(0.3 + 0.4 * rng.random(), 4)
            rewards[rule.fingerprint] = (rule, reward, status)
            store.add_trial(Trial(str(rule), list(rule.tokens), rule.fingerprint, status, reward,
                                  best_lr=None if status != "ok" else 10.0 ** -rng.randint(1, 4),
                                  curve=_curve(reward) if status == "ok" else [], complexity=rule.complexity,
                                  strategy="ppo", step=i // 4))
        items = list(rewards.values())
        samples = []
        for n in range(80):
            rule, reward, status = items[min(len(items) - 1, int(rng.random() * len(items)))]
            kind = "rejected" if status == "rejected" else ("new" if n < len(items) else "duplicate")
            samples.append(Sample(n // 8, str(rule), list(rule.tokens), rule.fingerprint, reward, kind))
        store.add_samples(samples)
    return path


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    return make_bench_dir(tmp_path / "bench", "accuracy")


@pytest.fixture
def perplexity_bench_dir(tmp_path: Path) -> Path:
    return make_bench_dir(tmp_path / "bench", "perplexity")


def make_bench_dir(path: Path, metric: str) -> Path:
    """Synthetic results of 3 optimizers × 3 lrs × 3 seeds × 4 epochs; adam at lr 1 diverges for one seed."""
    rng = random.Random(1)
    lower = metric == "perplexity"
    runs = []
    for k, name in enumerate(["sgd", "adam", "powersign-cd"]):
        for lr in (1e-3, 1e-2, 1.0):
            for seed in range(3):
                quality = 0.6 + 0.1 * k - 0.05 * abs(lr - 1e-2) + 0.01 * rng.random()
                epochs = [Epoch(e, 2.0 / e, *(q if not lower else 2.0 / q for q in (quality * (1 - 0.3 / e),) * 2))
                          for e in range(1, 5)]
                diverged = name == "adam" and lr == 1.0 and seed == 0
                runs.append(Run(name, lr, seed, epochs[:1] if diverged else epochs, diverged, 1.0))
    BenchmarkResult("synthetic", metric, lower, {"epochs": 4, "seeds": 3}, runs).write(path)
    return path


@pytest.fixture
def funnel_db(tmp_path: Path) -> Path:
    return make_funnel_db(tmp_path / "funnel.sqlite")


BEST = "adam * exp(sign(g) * sign(m))"
"""The rule a synthetic funnel makes clearly better than every baseline, on every task and seed."""


@pytest.fixture
def funnel_best() -> str:
    return BEST


def make_funnel_db(path: Path) -> Path:
    """`make_search_db` plus a complete synthetic funnel: 4 candidates × 4 seeds on mnist1d, 2 finalists tuned on
    3 seeds and scored on 3 others on digits, the baselines and reference rules; BEST scores 0.1 above the rest on
    every seed, the others are noise."""
    from optsearch.engine.funnel_analysis import analyze
    from optsearch.engine.funnel_plan import PROXY, FunnelConfig, make_plan
    from optsearch.engine.store import StoredEvaluation
    from optsearch.tasks import Evaluation, LrResult, Settings

    make_search_db(path)
    rng = random.Random(2)
    with Store(path) as store:
        trials = store.trials(order="reward")
        config = FunnelConfig(top=4, seeds=4, finalists=2, tasks=("digits",), tune_seeds=3, score_seeds=3)
        plan = make_plan(config, Settings("mnist1d", (0.01, 0.1), 100), trials)
        store.set_meta("funnel", plan.to_json())

        def write(rules, seeds, key):
            for rule in rules:
                for seed in seeds:
                    score = 0.5 + 0.02 * rng.random() + (0.1 if str(rule) == BEST else 0.0)
                    per_lr = [LrResult(0.01, score, score - 0.01), LrResult(0.1, score - 0.2, score - 0.2)]
                    _, stage, task, _, settings = key(rule, seed)
                    ev = Evaluation(str(rule), task, score, "ok", per_lr=per_lr, best_lr=0.01, steps=100,
                                    batch_size=32, seed=seed)
                    store.add_evaluation(StoredEvaluation(rule.fingerprint, str(rule), stage, task, seed, settings,
                                                          ev))

        fixed = [*plan.baselines.values(), *plan.references.values()]
        write([*fixed, *plan.candidates], plan.proxy.seeds, plan.proxy.row_key)
        finals = analyze(plan, store.evaluations()).finalists
        assert plan.proxy.name == PROXY and str(finals[0]) == BEST
        for stage in plan.transfer:
            write([*fixed, *finals], stage.seeds, stage.row_key)
            write([*fixed, *finals], stage.score_seeds,
                  lambda rule, seed, stage=stage: stage.score_key(rule, seed, 0.01))
    return path
