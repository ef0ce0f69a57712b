from pathlib import Path

import pytest
from rich.console import Console

from optsearch.tasks import text
from optsearch.tasks.data import DatasetMissing
from optsearch.transfer.benchmark import DEFAULT_LRS, run_benchmark


def quiet() -> Console:
    return Console(quiet=True)


def test_default_grid_is_seven_log_spaced_rates():
    assert DEFAULT_LRS == (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


def test_benchmark_covers_every_optimizer_lr_and_seed_and_writes_files(image_task, tmp_path):
    optimizers = ["momentum", "powersign-cd", "g * exp(sign(g) * sign(m))"]
    result = run_benchmark(optimizers, image_task, epochs=2, lrs=[1e-2, 1e-1], seeds=2, out_dir=tmp_path,
                           steps_per_epoch=2, eval_size=20, console=quiet())
    assert len(result.runs) == 3 * 2 * 2
    assert [s.optimizer for s in result.summaries()] == optimizers
    assert all(len(r.epochs) == 2 for r in result.runs if not r.diverged)
    assert result.config["steps_per_run"] == 4
    assert {p.name for p in tmp_path.iterdir()} == {"benchmark.json", "summary.csv", "curves.csv"}


def test_the_terminal_table_has_the_papers_columns(image_task):
    console = Console(record=True, width=120)
    run_benchmark(["adam"], image_task, epochs=1, lrs=[1e-2], seeds=1, steps_per_epoch=1, console=console)
    out = console.export_text()
    for column in ("Optimizer", "Final Val", "Final Test", "Best Val", "Best Test"):
        assert column in out


def test_data_fraction_keeps_part_of_the_training_split(image_task):
    result = run_benchmark(["sgd"], image_task, epochs=1, lrs=[0.1], seeds=1, data_fraction=0.25, console=quiet())
    assert result.config["train_examples"] == 100


def test_a_bad_optimizer_name_fails_before_any_training(image_task):
    with pytest.raises(ValueError, match="neither an optimizer name"):
        run_benchmark(["adam", "nonsense!"], image_task, console=quiet())


def test_a_missing_dataset_names_the_debian_package(tmp_path):
    with pytest.raises(DatasetMissing, match="dataset-fashion-mnist"):
        run_benchmark(["adam"], "fashion_mnist_conv", data_dir=tmp_path, console=quiet())


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ValueError, match="kjv_char_lstm"):
        run_benchmark(["adam"], "imagenet", console=quiet())


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists(),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_fashion_mnist_conv_runs_on_the_real_data():
    result = run_benchmark(["adam"], "fashion_mnist_conv", epochs=1, lrs=[1e-3], seeds=1, steps_per_epoch=5,
                           eval_size=200, console=quiet())
    assert 0.3 < result.runs[0].epochs[0].val <= 1.0


@pytest.mark.skipif(not text.BIBLE_DATA.exists(), reason="Debian packages bible-kjv and bible-kjv-text are missing")
def test_kjv_language_task_runs_on_the_real_text():
    result = run_benchmark(["adam"], "kjv_char_lstm", epochs=1, lrs=[1e-2], seeds=1, steps_per_epoch=5,
                           eval_size=64, console=quiet())
    assert result.metric == "perplexity" and result.lower_is_better
    assert 1.0 < result.runs[0].epochs[0].val < 256.0


@pytest.mark.slow
def test_resnet_learns_fashion_mnist_in_a_few_hundred_steps():
    result = run_benchmark(["adam"], "fashion_mnist_resnet", epochs=2, lrs=[1e-3], seeds=1, steps_per_epoch=100,
                           eval_size=1000, console=quiet())
    assert result.runs[0].epochs[-1].val > 0.7
