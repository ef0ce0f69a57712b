# my_task.py: your own task, for `optsearch evaluate adam --task my_task.py:make_task` (and search, benchmark)
import torch
from sklearn.datasets import load_breast_cancer
from torch import nn

import optsearch


def make_task() -> optsearch.Task:
    x, y = (torch.tensor(a) for a in load_breast_cancer(return_X_y=True))
    x = ((x - x[:400].mean(0)) / x[:400].std(0)).float()  # scaled by the training rows' statistics
    return optsearch.Task.from_tensors(
        "breast_cancer", lambda: nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 2)),
        train=(x[:400], y[:400]), val=(x[400:480], y[400:480]), test=(x[480:], y[480:]),
        steps=200, batch_size=32, metric="accuracy")
