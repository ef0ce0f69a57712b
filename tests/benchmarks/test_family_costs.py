"""benchmarks/family_costs.py runs end to end at tiny settings and skips, with a note, a task it cannot run."""


def test_quick_run_prints_each_measurement_and_skips_an_unknown_task(run_benchmark):
    proc = run_benchmark("family_costs.py", "--quick", "--tasks", "digits,no_such_task", "--steps", "5")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "matmul peak fp32" in out
    assert "digits: 2 rules × 1 lrs = 2 members × 5 steps" in out
    assert "training step per member: fp32" in out and "bf16" in out
    assert "naive fp32 loop" in out and "validation" in out
    assert "bare stacked loop" in out  # digits is an MLP task, trained stacked
    assert "no_such_task: skipped (unknown task 'no_such_task'" in out


def test_a_bad_rule_is_refused_before_anything_is_timed(run_benchmark):
    proc = run_benchmark("family_costs.py", "--quick", "--tasks", "digits", "--rules", "clip(m, 1e-3)", "not_a_rule(")
    assert proc.returncode == 2
    assert "not_a_rule(" in proc.stderr and "Traceback" not in proc.stderr
    assert "clip(m" not in proc.stderr  # a rule text with a comma is one rule
    assert "matmul peak" not in proc.stdout
