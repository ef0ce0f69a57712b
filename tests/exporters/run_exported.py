"""Run exported torch optimizer files on a fixed problem, where optsearch cannot be imported: what a user sees.

    python -I -S run_exported.py SITE_PACKAGES OUT.pt MODULE.py [MODULE.py ...]

-I -S keep this directory, PYTHONPATH and .pth files (optsearch's editable install) off sys.path; torch's
site-packages is added by hand. The test loads this file too, so both sides run the same `trajectory`.
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import sys
from collections.abc import Callable
from pathlib import Path

SHAPES = ((3, 4), (5,), (2, 3, 2))
STEPS, TOTAL_STEPS, SEED = 100, 100, 7
LRS = (0.01, 0.003)  # two param groups: the first two tensors, then the third


def trajectory(make: Callable, steps: int = STEPS, resume_at: int | None = None, make_again: Callable | None = None):
    """Parameters after each step (steps × all elements) of `make(param_groups)` on a fixed gradient sequence
    that also reads the weights; with `resume_at`, the run restarts from a state_dict there."""
    import torch

    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen).requires_grad_() for s in SHAPES]
    noise = [[0.5 * torch.randn(s, generator=gen) for s in SHAPES] for _ in range(steps)]

    def groups():
        return [{"params": params[:2], "lr": LRS[0]}, {"params": params[2:], "lr": LRS[1]}]

    opt, rows = make(groups()), []
    for t in range(steps):
        if t == resume_at:
            buffer = io.BytesIO()
            torch.save(opt.state_dict(), buffer)
            opt = (make_again or make)(groups())
            opt.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=False))
        for p, n in zip(params, noise[t], strict=True):
            p.grad = n + 0.1 * p.detach()
        opt.step()
        rows.append(torch.cat([p.detach().flatten() for p in params]).clone())
    return torch.stack(rows)


def exported_kwargs(cls: type, **kwargs) -> dict:
    """The keyword arguments of `kwargs` the exported class takes (total_steps, seed only where the rule uses them)."""
    accepted = inspect.signature(cls).parameters
    return {k: v for k, v in kwargs.items() if k in accepted}


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def runs(module) -> dict:
    """Trajectories of the module's optimizer: foreach, single-tensor, and single-tensor resumed at half time by a
    fresh foreach optimizer with another seed (so the state dict must carry the noise generator)."""
    cls = next(v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__)
    kwargs = exported_kwargs(cls, total_steps=TOTAL_STEPS, seed=SEED)
    reseeded = {**kwargs, **exported_kwargs(cls, seed=99)}
    return {
        "foreach": trajectory(lambda g: cls(g, foreach=True, **kwargs)),
        "single": trajectory(lambda g: cls(g, foreach=False, **kwargs)),
        "resumed": trajectory(lambda g: cls(g, foreach=False, **kwargs), resume_at=STEPS // 2,
                              make_again=lambda g: cls(g, foreach=True, **reseeded)),
    }


def main(out: str, modules: list[str]) -> None:
    import torch

    results = {}
    for path in map(Path, modules):
        results[path.stem] = runs(load(path))
    torch.save(results, out)


if __name__ == "__main__":
    sys.path.append(sys.argv[1])
    try:
        import optsearch  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("optsearch is importable in this process; the test would not show the file is standalone")
    main(sys.argv[2], sys.argv[3:])
