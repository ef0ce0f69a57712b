import csv
import json
import math

import pytest

from optsearch.transfer.results import BenchmarkResult, Stat, best_epoch, summarize
from optsearch.transfer.train import Epoch, Run


def run(lr, seed, vals, tests=None, diverged=False, name="opt"):
    tests = tests or vals
    pairs = enumerate(zip(vals, tests, strict=True))
    return Run(name, lr, seed, [Epoch(i + 1, 1.0 / (i + 1), v, t) for i, (v, t) in pairs], diverged)


def test_stat_is_mean_and_sample_std():
    s = Stat.of([1.0, 2.0, 3.0])
    assert s.mean == 2.0 and s.std == pytest.approx(1.0)
    assert Stat.of([5.0]).std == 0.0
    assert math.isnan(Stat.of([]).mean)


def test_best_test_is_the_test_metric_at_the_epoch_of_best_val():
    r = run(0.1, 0, [0.5, 0.9, 0.7], tests=[0.55, 0.80, 0.95])
    assert best_epoch(r, lower_is_better=False).test == 0.80
    assert best_epoch(r, lower_is_better=True).test == 0.55


def test_summary_picks_the_lr_by_mean_best_validation():
    runs = [run(0.01, s, [0.6, 0.7]) for s in range(2)] + [run(0.1, 0, [0.8, 0.75]), run(0.1, 1, [0.7, 0.85])]
    s = summarize(runs, lower_is_better=False)
    assert s.lr == 0.1
    assert s.best_val.mean == pytest.approx(0.825)
    assert s.final_val.mean == pytest.approx(0.80)
    assert s.best_val_by_lr == {0.01: pytest.approx(0.7), 0.1: pytest.approx(0.825)}


def test_lower_is_better_flips_the_choice():
    runs = [run(0.01, 0, [5.0, 4.0]), run(0.1, 0, [3.0, 3.5])]
    s = summarize(runs, lower_is_better=True)
    assert s.lr == 0.1 and s.best_val.mean == 3.0 and s.final_val.mean == 3.5


def test_an_lr_where_a_seed_diverged_loses_to_one_where_none_did():
    runs = [run(1.0, 0, [0.9, 0.95]), run(1.0, 1, [0.9], diverged=True), run(0.1, 0, [0.6, 0.7]),
            run(0.1, 1, [0.6, 0.7])]
    assert summarize(runs, lower_is_better=False).lr == 0.1


def test_when_every_lr_diverged_somewhere_final_numbers_average_the_finished_seeds():
    runs = [run(1.0, 0, [0.9, 0.95]), run(1.0, 1, [], diverged=True)]
    s = summarize(runs, lower_is_better=False)
    assert s.diverged == 1 and s.seeds == 2
    assert s.final_val.mean == 0.95 and math.isnan(s.best_val_by_lr[1.0])


def test_results_round_trip_through_json_and_write_csv(tmp_path):
    result = BenchmarkResult("t", "accuracy", False, {"epochs": 2},
                             [run(0.1, 0, [0.5, 0.6], name="adam"), run(0.1, 0, [0.4, 0.7], name="sgd")])
    result.write(tmp_path)
    loaded = BenchmarkResult.load(tmp_path)
    assert loaded.runs == result.runs and loaded.config == {"epochs": 2}
    assert [s.optimizer for s in loaded.summaries()] == ["adam", "sgd"]
    rows = list(csv.DictReader((tmp_path / "summary.csv").open()))
    assert [r["optimizer"] for r in rows] == ["adam", "sgd"] and float(rows[1]["final_val_mean"]) == 0.7
    curves = list(csv.DictReader((tmp_path / "curves.csv").open()))
    assert len(curves) == 4 and set(curves[0]) == {"optimizer", "lr", "seed", "epoch", "train_loss", "val", "test"}
    assert json.loads((tmp_path / "benchmark.json").read_text())["summary"][0]["optimizer"] == "adam"


def test_loading_a_folder_without_results_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="optsearch benchmark"):
        BenchmarkResult.load(tmp_path)
