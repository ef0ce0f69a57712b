"""How a child network computes: bfloat16 autocast where it pays, channels-last layout for images.

Both trainers (the search's population trainer and the benchmark's training run) use these, so a task trains the
same way whichever command runs it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor, nn


def fast_bf16(device: str | torch.device) -> bool:
    """Whether bfloat16 autocast speeds training up here: on CPUs with native bf16 the ConvNet is 2.5-3× faster
    than fp32 (measured, with channels-last); elsewhere on CPU it is slower, so fp32 is kept."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def autocast(device: torch.device, bf16: bool) -> AbstractContextManager:
    """bfloat16 autocast for the forward and backward when `bf16`; weights and optimizer state stay float32."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


def images_last(x: Tensor) -> Tensor:
    """Image batches (N, C, H, W) in channels-last layout, the fast one for convolutions; anything else as is."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def model_last(model: nn.Module) -> nn.Module:
    """The model's 4-D weights in channels-last layout (nn.Module.to leaves other tensors alone)."""
    return model.to(memory_format=torch.channels_last)
