import pytest
import torch

from optsearch.tasks import Task
from optsearch.tasks.models import CharLSTM, ConvNet
from optsearch.tasks.text import BYTES, byte_sequences

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
def image_task() -> Task:
    return Task.from_tensors("tiny_images", lambda: ConvNet((0.3,), (0.2,), 8, classes=4, width=4),
                             train=_images(400, 0), val=_images(100, 1), test=_images(100, 2), steps=10,
                             batch_size=50, epochs=2)


@pytest.fixture
def text_task() -> Task:
    s = byte_sequences(TEXT, seq_len=16)
    return Task.from_tensors("tiny_text", lambda: CharLSTM(BYTES, embed=8, hidden=16), train=(s.x_train, s.y_train),
                             val=(s.x_val, s.y_val), test=(s.x_test, s.y_test), steps=10, batch_size=16, epochs=2,
                             metric="perplexity")
