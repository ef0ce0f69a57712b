import pytest

from optsearch.transfer.results import BenchmarkResult, merge
from optsearch.transfer.train import Epoch, Run


def result(optimizer, config):
    runs = [Run(optimizer, lr, seed, [Epoch(1, 1.0, 0.5 + lr, 0.4 + lr)]) for lr in (0.01, 0.1) for seed in (0, 1)]
    return BenchmarkResult("fashion_mnist_conv", "accuracy", False, config, runs)


def test_benchmarks_of_one_setup_merge_into_one_table():
    merged = merge([result("adam", {"epochs": 3}), result("sgd", {"epochs": 3})])
    assert merged.optimizers == ["adam", "sgd"]
    assert [s.lr for s in merged.summaries()] == [0.1, 0.1]


def test_benchmarks_of_different_setups_refuse_to_merge():
    with pytest.raises(ValueError, match="different setups"):
        merge([result("adam", {"epochs": 3}), result("sgd", {"epochs": 5})])
