"""The transfer tasks: which data, which model, which metric, and default budgets sized for two CPU cores.

The image tasks reuse the child tasks' datasets and the paper's ConvNet from `optsearch.tasks`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from optsearch.tasks import get_task as get_child_task
from optsearch.tasks.data import Splits
from optsearch.tasks.models import ConvNet
from optsearch.transfer.models import CharLSTM, ResNet
from optsearch.transfer.text import BYTES, load_kjv


@dataclass(frozen=True)
class TransferTask:
    """A model trained on real data; `metric` is accuracy (higher is better) or perplexity (lower is better)."""

    name: str
    description: str
    metric: str
    load: Callable[[str | Path | None], Splits]  # data_dir (a text file for the language task) -> splits
    model: Callable[[], nn.Module]  # a fresh, randomly initialized model
    epochs: int
    batch_size: int
    image: bool  # channels_last memory format pays off for convnets only

    @property
    def lower_is_better(self) -> bool:
        return self.metric == "perplexity"


def _image_task(name: str, child: str, model: str, description: str) -> TransferTask:
    task = get_child_task(child)
    spec = task.model
    build = {"conv": lambda: ConvNet(spec.mean, spec.std, spec.image_size),
             "resnet": lambda: ResNet(spec.mean, spec.std)}[model]
    return TransferTask(name, description, "accuracy", lambda d: task.load(None if d is None else Path(d)), build,
                        epochs=5, batch_size=100, image=True)


TASKS: dict[str, TransferTask] = {t.name: t for t in [
    _image_task("fashion_mnist_conv", "fashion_mnist_conv", "conv",
                "Fashion-MNIST; the paper's 2-layer ConvNet (the child network)"),
    _image_task("fashion_mnist_resnet", "fashion_mnist_conv", "resnet",
                "Fashion-MNIST; a small ResNet (3 stages, widths 16/32/64), the deeper model"),
    _image_task("cifar10_conv", "cifar10_conv", "conv",
                "CIFAR-10 (data_dir: the python batches); the paper's 2-layer ConvNet"),
    _image_task("cifar10_resnet", "cifar10_conv", "resnet",
                "CIFAR-10 (data_dir: the python batches); a small ResNet, the paper's Table 1 at small scale"),
    TransferTask("kjv_char_lstm", "King James Bible (data_dir: any other text file); a byte-level LSTM language "
                 "model (hidden 128, 64-byte sequences) standing in for GNMT", "perplexity",
                 load_kjv, lambda: CharLSTM(BYTES), epochs=3, batch_size=32, image=False),
]}


def get_task(name: str | TransferTask) -> TransferTask:
    if isinstance(name, TransferTask):
        return name
    if name not in TASKS:
        raise ValueError(f"unknown transfer task {name!r}; choose one of: {', '.join(TASKS)}")
    return TASKS[name]
