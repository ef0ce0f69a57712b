"""Fixtures in the real on-disk formats: CIFAR-10 python batches and Fashion-MNIST IDX .gz files, a few images."""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from optsearch.tasks.data import CIFAR10_FILES, FASHION_MNIST_FILES


def write_idx(path, array: np.ndarray) -> None:
    header = b"\0\0\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: a second OpenMP thread mostly waits for a busy core (measured
    20× slower under load), so these tests run on one, as the benchmark and search workers do."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def cifar_dir(tmp_path_factory):
    """Six batches of 20 random 32×32 RGB images, pickled like the originals (protocol 2, bytes keys)."""
    folder = tmp_path_factory.mktemp("cifar-10-batches-py")
    rng = np.random.default_rng(0)
    for name in CIFAR10_FILES:
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in rng.integers(0, 10, 20)],
                 b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
                 b"filenames": [f"{i}.png".encode() for i in range(20)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return folder


@pytest.fixture(scope="session")
def fashion_dir(tmp_path_factory):
    """Fashion-MNIST's four IDX .gz files with 200 train and 50 test random images."""
    folder = tmp_path_factory.mktemp("fashion-mnist")
    rng = np.random.default_rng(1)
    arrays = {"x_train": rng.integers(0, 256, (200, 28, 28)), "y_train": rng.integers(0, 10, 200),
              "x_test": rng.integers(0, 256, (50, 28, 28)), "y_test": rng.integers(0, 10, 50)}
    for key, name in FASHION_MNIST_FILES.items():
        write_idx(folder / name, arrays[key])
    return folder
