import argparse
import json
import re
import signal
import subprocess
import sys

import pytest

from optsearch.cli import main, output_file
from optsearch.engine import Store


def run(*args):
    return subprocess.run([sys.executable, "-m", "optsearch.cli", *args], capture_output=True, text=True, timeout=300)


def test_show_prints_infix_latex_groups_and_state(capsys):
    assert main(["show", "g * exp(sign(g) * sign(m))"]) == 0
    out = capsys.readouterr().out
    assert "g * exp(sign(g) * sign(m))" in out
    assert r"\operatorname{sign}" in out
    assert "('g', 'o0', 'x', 'exp', 'mul')" in out
    assert "4 bytes per fp32 parameter" in out


def test_show_zoo_lists_the_named_rules(capsys):
    assert main(["show", "--zoo"]) == 0
    out = capsys.readouterr().out
    for name in ("sgd", "adam", "powersign", "addsign", "powersign-ld"):
        assert name in out


def test_bad_rule_is_one_line_on_stderr_and_exit_2():
    proc = run("show", "foo(g)")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "unknown function 'foo' at position 0" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_task_is_a_clear_error():
    proc = run("evaluate", "g", "--task", "imagenet")
    assert proc.returncode == 2 and "imagenet" in proc.stderr and "Traceback" not in proc.stderr


def test_evaluate_prints_a_table_and_writes_json_and_csv(tmp_path, capsys):
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    code = main(["evaluate", "adam", "g", "--task", "digits", "--steps", "30", "--lrs", "1e-2,1e-1",
                 "--json", str(out_json), "--csv", str(out_csv)])
    assert code == 0
    assert "reward" in capsys.readouterr().out
    rows = json.loads(out_json.read_text())
    assert [r["rule"] for r in rows] == ["adam", "g"] and all(0 <= r["reward"] <= 1 for r in rows)
    assert out_csv.read_text().splitlines()[0].startswith("rule,reward")


def test_search_refuses_an_existing_db_without_resume(tmp_path):
    db = tmp_path / "s.sqlite"
    args = ["search", "--task", "digits", "--strategy", "random", "--budget", "2", "--steps", "20", "--lrs", "0.1",
            "--db", str(db)]
    assert main(args) == 0
    proc = run(*args)
    assert proc.returncode == 2 and "--resume" in proc.stderr
    assert main([*args[:6], "4", *args[7:], "--resume"]) == 0
    with Store(db) as store:
        assert store.count_trials() == 4


def test_a_search_stopped_by_its_sample_cap_goes_on_with_a_larger_max_samples(tmp_path, capsys):
    db = tmp_path / "s.sqlite"
    args = ["search", "--task", "digits", "--strategy", "random", "--budget", "50", "--steps", "20", "--lrs", "0.1",
            "--batch", "2", "--db", str(db)]
    assert main([*args, "--max-samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "stopped: sample cap" in out and "--max-samples" in out
    assert main([*args, "--max-samples", "6", "--resume"]) == 0
    with Store(db) as store:
        assert store.count_samples() == 6  # the cap counts the whole search's samples, across sessions


def test_a_sample_cap_reached_without_repeats_says_so_and_blames_no_duplicates(tmp_path, capsys):
    db = tmp_path / "s.sqlite"
    assert main(["search", "--task", "digits", "--strategy", "random", "--budget", "50", "--steps", "20", "--lrs",
                 "0.1", "--batch", "8", "--max-samples", "3", "--db", str(db)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "reached the sample cap of 3 sampled rules (0 of them repeats of known rules)" in out
    assert "re-sampling" not in out and "--duplicate-penalty" not in out
    with Store(db) as store:
        assert store.count_samples() == 3


# Starts the CLI with SIGINT ignored, as a shell's background job inherits it: Ctrl-C must still stop it cleanly.
SIGINT_IGNORED = ("import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); from optsearch.cli import main; "
                  "sys.exit(main(sys.argv[1:]))")


@pytest.mark.parametrize("launch", [["-m", "optsearch.cli"], ["-c", SIGINT_IGNORED]], ids=["plain", "sigint-ignored"])
def test_ctrl_c_stops_a_search_cleanly_keeping_finished_trials(tmp_path, wait_for_trials, launch):
    db = tmp_path / "s.sqlite"
    proc = subprocess.Popen([sys.executable, *launch, "search", "--task", "digits", "--strategy",
                             "random", "--budget", "100000", "--steps", "30", "--lrs", "0.1", "--batch", "2",
                             "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_trials(db, 3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:  # a search the signal failed to stop must not outlive the test
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "stopped: interrupted" in out
    with Store(db) as store:
        assert 3 <= store.count_trials() < 100000


def test_tasks_lists_every_child_task(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in ("mnist1d", "digits", "fashion_mnist_conv", "cifar10_conv", "fashion_tiny_conv", "kjv_tiny_lstm",
                 "kjv_transformer", "checkpoint val", "bf16 auto"):
        assert name in out


@pytest.mark.parametrize("columns", [80, 240])
def test_tasks_shows_every_field_uncut_at_80_and_240_columns(columns, monkeypatch, capsys):
    from rich.console import Console

    from optsearch import cli
    from optsearch.tasks import task_table

    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setattr(cli, "console", Console())  # reads the width as the command's own console does
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "…" not in out and max(map(len, lines)) <= columns
    rows = task_table()
    wide = next((line for line in lines if line.startswith("┃ name")), None)
    if columns == 240:  # the table fits: one line of headers, one line per task with every value but the source's
        assert wide is not None and all(header in wide for header in rows[0])
        for row in rows:
            *values, source = map(str, row.values())
            line = next(line for line in lines if line.startswith(f"│ {row['name']} "))
            assert [cell.strip() for cell in line.strip("│").split("│")][:-1] == values
            assert all(word in out for word in source.split())
    else:  # one block per task: the name, then one line per field
        assert wide is None
        for row in rows:
            name, *fields = row.items()
            block = out.split(f"\n{name[1]}\n")[1]
            for key, value in fields:  # a long value wraps onto indented lines below
                words = r"\s+".join(map(re.escape, str(value).split()))
                assert re.search(rf"^  {re.escape(key)} +{words} *$", block, re.M), (key, value)


TINY = ["--task", "digits", "--strategy", "random", "--budget", "2", "--steps", "20", "--lrs", "0.1"]


@pytest.mark.parametrize("bad, message", [
    (["--task", "mnist1"], "task: unknown task 'mnist1'"),
    (["--steps", "0"], "steps: got 0; allowed: a whole number >= 1"),
    (["--steps", "-5"], "steps: got -5"),
    (["--lrs", "nan"], "lrs: got (nan,); allowed: a non-empty list of finite numbers > 0"),
    (["--lrs", "1e-3,inf"], "lrs: got (0.001, inf)"),
    (["--lrs", ","], "lrs: got ()"),
    (["--batch-size", "0"], "batch_size: got 0"),
    (["--device", "cdua"], "device: got 'cdua'; allowed: cpu, cuda, cuda:N, mps"),
    (["--groups", "5"], "argument --groups: got '5'; allowed: a whole number from 1 to 4"),
    (["--groups", "0"], "argument --groups: got '0'"),
    (["--top", "0"], "argument --top: got '0'; allowed: a whole number >= 1"),
    (["--budget", "0"], "argument --budget: got '0'"),
    (["--workers", "0"], "argument --workers: got '0'"),
    (["--batch", "0"], "argument --batch: got '0'"),
    (["--threads", "-1"], "argument --threads: got '-1'"),
    (["--strategy", "rando"], "unknown strategy 'rando'; allowed: evolution, ppo, random, reinforce"),
    (["--executor", "foo"], "executor: got 'foo'; allowed: inline, process, ray"),
    (["--duplicate-penalty", "nan"], "duplicate_penalty: got nan"),
    (["--max-samples", "0"], "argument --max-samples: got '0'"),
    (["--resume"], "no search at"),
])
def test_bad_search_input_is_one_line_exit_2_and_leaves_no_db(tmp_path, capsys, bad, message):
    db = tmp_path / "x.sqlite"
    assert main(["search", *TINY, "--db", str(db), *bad]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("optsearch: error: ") and err.count("\n") == 1 and message in err, err
    assert not out, "nothing is shown (no progress bar) before the input is known good"
    assert list(tmp_path.iterdir()) == []


def test_a_failed_start_does_not_poison_the_db_path(tmp_path, capsys):
    db = tmp_path / "x.sqlite"
    assert main(["search", *TINY, "--db", str(db), "--strategy", "rando"]) == 2
    assert not db.exists()
    with Store(db) as store:  # what such a start left behind before: a db holding only its config
        store.set_meta("config", {"task": "digits", "objective": None, "strategy": "rando", "seed": 0, "groups": 2,
                                  "decays": False, "steps": 20, "lrs": [0.1], "batch_size": None,
                                  "precision": "auto", "strategy_options": {}})
    assert main(["search", *TINY, "--db", str(db)]) == 0
    with Store(db) as store:
        assert store.get_meta("config")["strategy"] == "random" and store.count_trials() == 2


@pytest.mark.parametrize("make, resume", [
    (lambda p: p.mkdir(), False),
    (lambda p: p.write_text("a text file\n"), False),
    (lambda p: p.write_bytes(bytes(range(256)) * 8), False),
    (lambda p: p.write_bytes(bytes(range(256)) * 8), True),
])
def test_a_db_that_is_not_a_search_is_one_line_exit_2(tmp_path, capsys, make, resume):
    db = tmp_path / "x.sqlite"
    make(db)
    assert main(["search", *TINY, "--db", str(db), *(["--resume"] if resume else [])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(db) in err and ("directory" in err or "not an SQLite database" in err), err


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "a folder is there"),
    (lambda p: p.write_text("a text file\n"), "is not an SQLite database"),
    (lambda p: p.write_bytes(bytes(range(256)) * 8), "is not an SQLite database"),
])
def test_report_of_a_db_that_is_not_a_search_is_one_line_exit_2(tmp_path, capsys, make, message):
    db = tmp_path / "x.sqlite"
    make(db)
    assert main(["report", str(db), "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(db) in err and message in err, err
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("out, message", [("file", "an existing file; allowed: a folder path"),
                                           ("missing/report", "does not exist")])
def test_report_out_that_cannot_be_a_folder_is_refused_before_reading(tmp_path, capsys, out, message):
    (tmp_path / "file").write_text("keep me")
    assert main(["report", str(tmp_path / "no.sqlite"), "--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument --out" in err and message in err, err
    assert (tmp_path / "file").read_text() == "keep me"


def test_output_file_refuses_a_missing_folder_or_an_existing_folder(tmp_path):
    assert output_file(str(tmp_path / "r.json")) == str(tmp_path / "r.json")
    with pytest.raises(argparse.ArgumentTypeError, match="does not exist"):
        output_file(str(tmp_path / "missing" / "r.json"))
    with pytest.raises(argparse.ArgumentTypeError, match="an existing folder; allowed: a file path"):
        output_file(str(tmp_path))


def test_evaluate_threads_below_one_is_one_line_exit_2(capsys):
    assert main(["evaluate", "g", "--task", "digits", "--threads", "-1"]) == 2
    err = capsys.readouterr().err
    assert err == "optsearch: error: argument --threads: got '-1'; allowed: a whole number >= 1\n"


def test_a_garbage_db_in_a_real_process_is_one_line_not_a_traceback(tmp_path):
    db = tmp_path / "x.sqlite"
    db.write_bytes(b"\x00garbage" * 100)
    for args in (["search", *TINY, "--db", str(db)], ["search", *TINY, "--db", str(db), "--resume"],
                 ["report", str(db), "--out", str(tmp_path / "r")]):
        proc = run(*args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1 and str(db) in proc.stderr
    assert db.read_bytes() == b"\x00garbage" * 100


def test_the_entropy_weight_given_on_the_command_line_reaches_the_ppo_strategy(tmp_path, capsys):
    from optsearch.engine.config import SearchConfig

    db = tmp_path / "s.sqlite"
    assert main(["search", "--task", "digits", "--steps", "5", "--lrs", "0.1", "--budget", "1", "--batch", "1",
                 "--db", str(db), "--entropy-weight", "0.05", "--duplicate-penalty-mode", "count"]) == 0
    with Store(db) as store:
        config = SearchConfig.from_json(store.get_meta("config"))
    assert config.strategy_options == {"entropy_weight": 0.05} and config.make_strategy().entropy_weight == 0.05


@pytest.mark.parametrize("args, message", [
    (["--entropy-weight", "-1"], "entropy_weight: got -1.0; allowed: a finite number >= 0"),
    (["--entropy-weight", "0.1", "--strategy", "random"], "strategy 'random' has no option entropy_weight"),
    (["--duplicate-penalty-mode", "square"], "invalid choice: 'square'"),
])
def test_bad_controller_knobs_are_one_line_exit_2_and_leave_no_db(tmp_path, capsys, args, message):
    db = tmp_path / "s.sqlite"
    assert main(["search", "--task", "digits", "--budget", "1", "--db", str(db), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not db.exists()
