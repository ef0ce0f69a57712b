"""Names: the export function and its package, and the names an exported file may be given."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import optsearch
from optsearch import exporters
from optsearch.cli import main
from optsearch.exporters import export, module_names, reserved_names
from optsearch.optim import RuleOptimizer, resolve

sys.path.insert(0, str(Path(__file__).parent))
import run_exported  # noqa: E402

TORCH_COLLISIONS = ["torch", "math", "Optimizer", "Tensor", "ParamsT", "Callable", "RULE", "BETA_M", "bias_correction",
                    "draw_noise", "_foreach_update", "_single_tensor_update", "annotations"]
OPTAX_COLLISIONS = ["jnp", "jax", "optax", "math", "NamedTuple", "rule_delta", "update_moment", "draw_noise", "RULE"]
BUILTINS = ["super", "isinstance", "float", "dict", "zip", "int", "print", "object"]


def test_the_export_function_and_its_package_have_different_names():
    """`optsearch.export` is the function; the package is `optsearch.exporters` (one name per thing)."""
    assert callable(optsearch.export) and optsearch.export is exporters.export
    assert importlib.util.find_spec("optsearch.export") is None
    assert importlib.util.find_spec("optsearch.exporters") is not None


@pytest.mark.parametrize(("to", "name"), [("torch", n) for n in TORCH_COLLISIONS + BUILTINS + ["__name__"]]
                         + [("optax", n) for n in OPTAX_COLLISIONS + BUILTINS])
def test_a_name_the_file_uses_or_a_builtin_is_refused(to, name):
    with pytest.raises(ValueError, match=f"cannot name the .* {name!r}: {name!r} is a"):
        export("nos12", to=to, name=name)  # nos12: dropout, so noise helpers and a generator are in the file


@pytest.mark.parametrize("to", ["torch", "optax"])
@pytest.mark.parametrize("rule", ["nos12", "adam", "addsign-cd", "drop(1, 0.5) * (rd(2) + eps_t) - 1e-2*w"])
def test_every_module_level_name_of_a_generated_file_is_reserved(to, rule):
    """The reserved set is read from the file: every name it binds or reads at module level is in it."""
    used = module_names(export(rule, to=to, name="Mine")) - {"Mine", "MineState"}
    assert used and used <= reserved_names(resolve(rule), to)


def test_cli_refuses_a_colliding_name_with_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "x.py"
    assert main(["export", "nos12", "--name", "torch", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'torch' is a name the generated torch file uses" in err
    assert not out.exists()
    assert main(["export", "nos12", "--to", "optax", "--name", "jnp", "-o", str(out)]) == 2
    assert not out.exists()


def test_a_normal_name_exports_and_the_file_steps_like_rule_optimizer(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(export("nos12", name="MyOptimizer"))
    cls = run_exported.load(path).MyOptimizer
    want = run_exported.trajectory(lambda g: RuleOptimizer(g, resolve("nos12"), seed=run_exported.SEED), steps=5)
    assert torch.equal(run_exported.trajectory(lambda g: cls(g, foreach=False, seed=run_exported.SEED), steps=5), want)


def test_cli_output_dash_is_stdout(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["export", "powersign", "-o", "-"]) == 0
    assert "class PowerSign(Optimizer)" in capsys.readouterr().out
    assert not (tmp_path / "-").exists()
