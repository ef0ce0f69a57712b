import subprocess
import sys
from pathlib import Path

import pytest
import torch

from optsearch.dsl.export import export
from optsearch.optim import RuleOptimizer
from optsearch.optim.zoo import zoo

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import run_exported  # noqa: E402

TOLERANCE = 1e-6


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest |a - b| / max(|b|, 1e-3) over finite entries; inf where only one of them is finite."""
    if not torch.equal(torch.isfinite(a), torch.isfinite(b)):
        return float("inf")
    finite = torch.isfinite(b)
    return ((a - b).abs() / b.abs().clamp_min(1e-3))[finite].max().item()


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
