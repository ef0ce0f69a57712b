import json
import signal
import subprocess
import sys

from optsearch.cli import main
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


def test_ctrl_c_stops_a_search_cleanly_keeping_finished_trials(tmp_path, wait_for_trials):
    db = tmp_path / "s.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "optsearch.cli", "search", "--task", "digits", "--strategy",
                             "random", "--budget", "500", "--steps", "30", "--lrs", "0.1", "--batch", "2",
                             "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_trials(db, 3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "stopped: interrupted" in out
    with Store(db) as store:
        assert 3 <= store.count_trials() < 500


def test_tasks_lists_every_child_task(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in ("mnist1d", "digits", "fashion_mnist_conv", "cifar10_conv"):
        assert name in out
