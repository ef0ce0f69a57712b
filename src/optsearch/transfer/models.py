"""The transfer models beyond the paper's child ConvNet (which `optsearch.tasks.models` provides): a small ResNet
and a byte-level LSTM language model."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class BasicBlock(nn.Module):
    """He et al.'s residual block: two 3×3 convs with batch norm, a 1×1 projection when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.skip = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.skip(x))


class ResNet(nn.Module):
    """A small ResNet (3 stages of `blocks` basic blocks, widths w, 2w, 4w), the deeper image model standing in for
    the paper's Wide-ResNet. Takes uint8 images and normalizes them with the dataset's channel mean and std, as the
    child ConvNet does."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], classes: int = 10, width: int = 16,
                 blocks: int = 1):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1) * 255)
        layers: list[nn.Module] = [nn.Conv2d(len(mean), width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        c_in = width
        for stage in range(3):
            c_out = width * 2**stage
            for b in range(blocks):
                layers.append(BasicBlock(c_in, c_out, 2 if stage and not b else 1))
                c_in = c_out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c_in, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features((x.float() - self.mean) / self.std))


class CharLSTM(nn.Module):
    """Byte-level language model (embedding, LSTM, linear): the small stand-in for the paper's GNMT."""

    def __init__(self, vocab_size: int, embed: int = 64, hidden: int = 128, layers: int = 1):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed)
        self.lstm = nn.LSTM(embed, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.lstm(self.embed(x))
        return self.head(out)
