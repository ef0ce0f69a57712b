"""The task models: a ReLU MLP (trained as many stacked copies), the paper's small ConvNet, a small ResNet, a
byte-level LSTM language model and a small decoder-only transformer language model."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

M = TypeVar("M")


@dataclass(frozen=True)
class MLP:
    """A ReLU MLP with these layer sizes, as a model factory. A task whose model is an MLP trains its search
    members as one `StackedMLP` (tiny MLPs are overhead-bound); called, it builds one ordinary nn.Module."""

    sizes: tuple[int, ...]

    def __call__(self) -> nn.Sequential:
        layers: list[nn.Module] = []
        for n_in, n_out in itertools.pairwise(self.sizes):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        return nn.Sequential(*layers[:-1])


class StackedMLP:
    """`members` copies of one ReLU MLP kept as a single (members, P) tensor, trained side by side.

    Tiny MLPs are dominated by per-call overhead, so the copies run as batched matmuls (`torch.baddbmm`), one
    per layer; each copy's parameters are one row of `params`, so an optimizer updates a run of copies with a
    single elementwise call. All copies start from the same weights (nn.Linear's init, from `generator`).
    """

    def __init__(self, sizes: Sequence[int], members: int, generator: torch.Generator,
                 device: str | torch.device = "cpu") -> None:
        self.sizes = tuple(sizes)
        pairs = list(itertools.pairwise(self.sizes))
        self.shapes = [shape for n_in, n_out in pairs for shape in ((n_in, n_out), (1, n_out))]
        parts = []
        for n_in, n_out in pairs:  # nn.Linear's init: U(±1/sqrt(fan_in)) for weights and biases
            bound = n_in ** -0.5
            parts += [(torch.rand(n, generator=generator) * 2 - 1) * bound for n in (n_in * n_out, n_out)]
        self.init = torch.cat(parts).to(device)
        self.params = self.init.expand(members, -1).clone().requires_grad_()

    def layers(self, params: Tensor | None = None) -> list[Tensor]:
        """Views (members, in, out) and (members, 1, out) of the weights and biases, layer by layer."""
        params = self.params if params is None else params
        # split, not slicing: its backward is one concatenation, where each slice's would zero a full-size buffer
        parts = torch.split(params, [n_rows * n_cols for n_rows, n_cols in self.shapes], dim=1)
        return [part.view(-1, *shape) for part, shape in zip(parts, self.shapes, strict=True)]

    def __call__(self, x: Tensor, params: Tensor | None = None) -> Tensor:
        """Logits (members, batch, classes) for inputs x (batch, features), the same batch for every copy."""
        layers = self.layers(params)
        if torch.is_autocast_enabled(x.device.type):  # cast the shared batch once, not once per member
            x = x.to(torch.get_autocast_dtype(x.device.type))
        h = x.expand(layers[0].shape[0], *x.shape)
        for i in range(0, len(layers), 2):
            h = torch.baddbmm(layers[i + 1], h, layers[i])
            if i + 2 < len(layers):
                h = torch.relu_(h)  # in place: baddbmm's backward does not read its output
        return h

    def module(self, member: int) -> nn.Sequential:
        """Copy `member` out as an ordinary nn.Sequential of nn.Linear and nn.ReLU."""
        modules: list[nn.Module] = []
        layers = self.layers()
        for i in range(0, len(layers), 2):
            linear = nn.Linear(*layers[i].shape[1:])
            with torch.no_grad():
                linear.weight.copy_(layers[i][member].T)
                linear.bias.copy_(layers[i + 1][member, 0])
            modules += [linear, nn.ReLU()]
        return nn.Sequential(*modules[:-1]).to(self.params.device)


class ConvNet(nn.Module):
    """The paper's child network: 2 × [3×3 conv, `width` filters, ReLU, batch norm, 2×2 max-pool], then a dense
    layer. Takes uint8 images (N, C, H, W) and normalizes them with the dataset's channel mean and std.
    `width` is one number of filters for both blocks, or a pair (first, second)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], image_size: int, classes: int = 10,
                 width: int | tuple[int, int] = 32) -> None:
        super().__init__()
        first, second = (width, width) if isinstance(width, int) else width
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1) * 255)
        block = lambda n_in, n_out: [nn.Conv2d(n_in, n_out, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(n_out),
                                     nn.MaxPool2d(2)]
        self.features = nn.Sequential(*block(len(mean), first), *block(first, second), nn.Flatten())
        self.head = nn.Linear(second * (image_size // 4) ** 2, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features((x.float() - self.mean) / self.std))


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
    ConvNet does."""

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


class TransformerLM(nn.Module):
    """A small decoder-only, pre-norm transformer language model over bytes: token and learned position
    embeddings, `layers` × [LayerNorm, causal multi-head self-attention, residual; LayerNorm, GELU MLP of 4×
    `width`, residual], a final LayerNorm and a linear head. Takes (N, T) token ids, T ≤ `context`."""

    def __init__(self, vocab_size: int, width: int = 64, layers: int = 2, heads: int = 4, context: int = 64):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.position = nn.Parameter(torch.randn(context, width) * 0.02)
        self.blocks = nn.ModuleList(_Block(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size)

    def forward(self, x: Tensor) -> Tensor:
        h = self.embed(x) + self.position[:x.shape[1]]
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))


class _Block(nn.Module):
    """One pre-norm transformer block (causal self-attention, then an MLP), each with its residual."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.out = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, h: Tensor) -> Tensor:
        n, t, width = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(n, t, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        attention = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        h = h + self.out(attention.transpose(1, 2).reshape(n, t, width))
        return h + self.mlp(self.norm2(h))


def seeded(build: Callable[[], M], seed: int) -> M:
    """`build()` run under torch's global RNG seeded with `seed`, leaving the caller's RNG state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()
