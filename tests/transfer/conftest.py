import pytest
import torch

from optsearch.tasks.data import Splits
from optsearch.tasks.models import ConvNet
from optsearch.transfer.models import CharLSTM
from optsearch.transfer.tasks import TransferTask
from optsearch.transfer.text import BYTES, byte_sequences

TEXT = "In the beginning God created the heaven and the earth. And the earth was without form, and void. " * 40


def _images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """8×8 uint8 images whose class (0..3) is the brightest quadrant: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = torch.randint(0, 100, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    for i, c in enumerate(y.tolist()):
        r, col = divmod(c, 2)
        x[i, 0, 4 * r: 4 * r + 4, 4 * col: 4 * col + 4] += 120
    return x, y


@pytest.fixture
def image_task() -> TransferTask:
    splits = Splits(*_images(400, 0), *_images(100, 1), *_images(100, 2))
    return TransferTask("tiny_images", "synthetic 8×8 quadrants", "accuracy", lambda _: splits,
                        lambda: ConvNet((0.3,), (0.2,), 8, classes=4, width=4), epochs=2, batch_size=50, image=True)


@pytest.fixture
def text_task() -> TransferTask:
    splits = byte_sequences(TEXT, seq_len=16)
    return TransferTask("tiny_text", "a repeated sentence", "perplexity", lambda _: splits,
                        lambda: CharLSTM(BYTES, embed=8, hidden=16), epochs=2, batch_size=16, image=False)
