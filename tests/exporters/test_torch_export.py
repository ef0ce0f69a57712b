import subprocess
import sys
from pathlib import Path

import pytest
import torch

from optsearch.exporters import export
from optsearch.optim import RuleOptimizer
from optsearch.optim.zoo import zoo

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import run_exported  # noqa: E402

TOLERANCE = 1e-6


def relative_difference(a: torch.Tensor, b: torch.Tensor, floor: float = 1e-3) -> float:
    """Largest |a - b| / max(|b|, floor) over finite entries; inf where only one of them is finite."""
    if not torch.equal(torch.isfinite(a), torch.isfinite(b)):
        return float("inf")
    finite = torch.isfinite(b)
    return ((a - b).abs() / b.abs().clamp_min(floor))[finite].max().item()


@pytest.fixture(scope="module")
def exported_runs(tmp_path_factory):
    """Every zoo rule exported to a file and run in a process where optsearch does not import."""
    folder = tmp_path_factory.mktemp("exported")
    files = []
    for name in zoo:
        path = folder / f"{name.replace('-', '_')}.py"
        path.write_text(export(name, to="torch"))
        files.append(str(path))
    out = folder / "trajectories.pt"
    site = str(Path(torch.__file__).parent.parent)
    proc = subprocess.run([sys.executable, "-I", "-S", str(HERE / "run_exported.py"), site, str(out), *files],
                          cwd=folder, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out, weights_only=False)


def rule_optimizer_trajectory(name: str) -> torch.Tensor:
    return run_exported.trajectory(lambda groups: RuleOptimizer(groups, zoo[name].rule,
                                                                total_steps=run_exported.TOTAL_STEPS,
                                                                seed=run_exported.SEED))


@pytest.mark.parametrize("name", list(zoo))
def test_exported_file_reproduces_rule_optimizer_without_optsearch(exported_runs, name):
    expected = rule_optimizer_trajectory(name)
    runs = exported_runs[name.replace("-", "_")]
    for path in ("foreach", "single"):
        assert relative_difference(runs[path], expected) <= TOLERANCE, path
    assert torch.equal(runs["foreach"], runs["single"])


@pytest.mark.parametrize("name", list(zoo))
def test_a_run_resumed_from_a_state_dict_repeats_the_uninterrupted_one(exported_runs, name):
    runs = exported_runs[name.replace("-", "_")]
    assert torch.equal(runs["resumed"], runs["single"])


def test_the_runner_really_lacks_optsearch():
    site = str(Path(torch.__file__).parent.parent)
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path.append({site!r}); import torch; "
                           "import optsearch"], capture_output=True, text=True, timeout=120)
    assert "ModuleNotFoundError: No module named 'optsearch'" in proc.stderr


def load_exported(tmp_path, rule: str, **kwargs):
    path = tmp_path / "exported.py"
    path.write_text(export(rule, to="torch", **kwargs))
    return run_exported.load(path)


def test_adam_export_with_weight_decay_matches_torch_adamw(tmp_path):
    adam = load_exported(tmp_path, "adam").Adam
    got = run_exported.trajectory(lambda groups: adam(groups, weight_decay=0.1))
    want = run_exported.trajectory(lambda groups: torch.optim.AdamW(groups, eps=1e-8, weight_decay=0.1))
    assert relative_difference(got, want) <= TOLERANCE
    assert not torch.equal(got, run_exported.trajectory(lambda groups: adam(groups)))


def test_constants_and_scalar_subtrees_broadcast_and_match(tmp_path):
    """Dropout of a constant (a 0-dim mask), all decays, eps_t and a 0-dim rule root."""
    text = "drop(1, 0.5) * (rd(2) + cd(5) * eps_t + ld) - sign(adam) + 1e-2*w * 2 ^ sqrt|y| + log|g^3|"
    cls = load_exported(tmp_path, text).FoundRule
    kwargs = dict(total_steps=run_exported.TOTAL_STEPS, seed=run_exported.SEED)
    want = run_exported.trajectory(lambda g: RuleOptimizer(g, text, **kwargs))
    assert torch.equal(run_exported.trajectory(lambda g: cls(g, foreach=True, **kwargs)), want)
    assert torch.equal(run_exported.trajectory(lambda g: cls(g, foreach=False, **kwargs)), want)
    scalar = load_exported(tmp_path, "ld * 2").FoundRule
    want = run_exported.trajectory(lambda g: RuleOptimizer(g, "ld * 2", total_steps=50))
    assert torch.equal(run_exported.trajectory(lambda g: scalar(g, foreach=True, total_steps=50)), want)


@pytest.mark.parametrize(("kwargs", "word"), [
    (dict(lr=-1.0), "lr"), (dict(lr=float("nan")), "lr"), (dict(weight_decay=-0.1), "weight_decay"),
    (dict(seed="x", total_steps=10), "seed"), (dict(), "total_steps"), (dict(total_steps=0), "total_steps"),
])
def test_invalid_hyperparameters_are_refused_by_name(tmp_path, kwargs, word):
    cls = load_exported(tmp_path, "drop(g, 0.1) * ld").FoundRule
    with pytest.raises(ValueError, match=word):
        cls([torch.zeros(2, requires_grad=True)], **kwargs)


def test_sparse_gradients_are_refused_before_anything_moves(tmp_path):
    cls = load_exported(tmp_path, "powersign").PowerSign
    dense, sparse = torch.ones(2, requires_grad=True), torch.ones(3, requires_grad=True)
    dense.grad, sparse.grad = torch.ones(2), torch.ones(3).to_sparse()
    opt = cls([dense, sparse], lr=0.1)
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()
    assert torch.equal(dense, torch.ones(2))


def test_only_the_buffers_the_rule_reads_are_created(tmp_path):
    cls = load_exported(tmp_path, "rmsprop").RMSProp
    p = torch.ones(3, requires_grad=True)
    p.grad = torch.ones(3)
    opt = cls([p])
    assert not opt.state
    opt.step()
    assert set(opt.state[p]) == {"step", "v"}


def test_export_is_deterministic_and_names_are_checked():
    assert export("nos7") == export("nos7")
    assert "class Nos12(Optimizer)" in export("nos12") and "class FoundRule(" in export("g * m")
    assert "class Mine(" in export("g * m", name="Mine")
    for bad in ("1x", "class", "a-b", "x; import os"):
        with pytest.raises(ValueError, match="identifier"):
            export("g", name=bad)
    with pytest.raises(ValueError, match="allowed: torch, optax"):
        export("g", to="jax")


def test_cli_writes_an_importable_file(tmp_path):
    from optsearch.cli import main

    out = tmp_path / "x.py"
    assert main(["export", "powersign", "--to", "torch", "-o", str(out)]) == 0
    opt = run_exported.load(out).PowerSign([torch.zeros(2, requires_grad=True)], lr=0.1)
    assert opt.defaults["lr"] == 0.1
    assert main(["export", "powersign", "--to", "torch", "-o", str(tmp_path / "missing" / "x.py")]) == 2
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("name", ["powersign", "nos7", "addsign-cd", "nos10"])
def test_generated_files_pass_ruff(tmp_path, name):
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.exists():
        pytest.skip("ruff is not installed next to this python")
    for to in ("torch", "optax"):
        path = tmp_path / f"{to}_{name.replace('-', '_')}.py"
        path.write_text(export(name, to=to))
    config = HERE.parent.parent / "pyproject.toml"
    proc = subprocess.run([str(ruff), "check", "--config", str(config), str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


WEIGHT_DECAY_RULES = ["powersign", "addsign-cd", "nos7", "nos12", "nos16"]  # nos7 noise, nos12/16 dropout, 16 reads w


@pytest.mark.parametrize("name", WEIGHT_DECAY_RULES)
def test_exported_weight_decay_follows_rule_optimizer_step_for_step(tmp_path, name):
    cls = next(v for v in vars(load_exported(tmp_path, name)).values() if isinstance(v, type) and issubclass(
        v, torch.optim.Optimizer) and v is not torch.optim.Optimizer)
    kwargs = run_exported.exported_kwargs(cls, total_steps=run_exported.TOTAL_STEPS, seed=run_exported.SEED)
    want = run_exported.trajectory(lambda g: RuleOptimizer(g, zoo[name].rule, weight_decay=0.1, **kwargs))
    for foreach in (True, False):
        got = run_exported.trajectory(lambda g, foreach=foreach: cls(g, weight_decay=0.1, foreach=foreach, **kwargs))
        assert relative_difference(got, want) <= TOLERANCE, foreach
    assert not torch.equal(want, rule_optimizer_trajectory(name))  # the decay changed the run
