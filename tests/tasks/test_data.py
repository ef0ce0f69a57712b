import pickle
import struct

import numpy as np
import pytest
import torch

from optsearch.tasks import TASKS, DatasetMissing
from optsearch.tasks import data as d
from optsearch.tasks.registry import load_splits


def _rows(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x}


@pytest.mark.parametrize("name", ["mnist1d_large", "mnist1d", "digits"])
def test_validation_is_held_out_of_train_and_sizes_match_the_listing(name):
    splits = load_splits(name)
    assert splits.sizes == TASKS[name].sizes
    assert not _rows(splits.x_train) & _rows(splits.x_val)
    assert splits.x_train.dtype == torch.float32 and splits.y_train.dtype == torch.int64


def test_mnist1d_is_built_once_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTSEARCH_CACHE", str(tmp_path))
    first = d.mnist1d_arrays()
    assert [p.name for p in tmp_path.iterdir()] == ["mnist1d-seed42-n5000.npz"]
    import mnist1d.data

    monkeypatch.setattr(mnist1d.data, "make_dataset", lambda *a: pytest.fail("rebuilt instead of cached"))
    second = d.mnist1d_arrays()
    assert first["x"].shape == (4000, 40) and first["x_test"].shape == (1000, 40)
    assert all(np.array_equal(first[k], second[k]) for k in first)


def test_fashion_mnist_reads_idx_gz_from_data_dir(fashion_dir):
    splits = d.load_fashion_mnist(fashion_dir)
    assert splits.sizes == (180, 20, 50)
    assert splits.x_train.shape == (180, 1, 28, 28) and splits.x_train.dtype == torch.uint8
    raw = d.read_idx(fashion_dir / "t10k-images-idx3-ubyte.gz")
    assert torch.equal(splits.x_test[:, 0], torch.from_numpy(raw.copy()))


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetMissing) as info:
        d.load_fashion_mnist(tmp_path)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert "dataset-fashion-mnist" in message and str(d.FASHION_MNIST_DIR) in message and "data_dir" in message


@pytest.mark.skipif(not (d.FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").exists(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_installed_fashion_mnist_has_the_documented_sizes():
    assert load_splits("fashion_mnist_conv").sizes == TASKS["fashion_mnist_conv"].sizes


def test_cifar10_reads_the_standard_python_batches(cifar_dir):
    splits = d.load_cifar10(cifar_dir)
    assert splits.sizes == (90, 10, 20)
    assert splits.x_train.shape == (90, 3, 32, 32) and splits.x_train.dtype == torch.uint8
    batch = pickle.loads((cifar_dir / "test_batch").read_bytes(), encoding="bytes")
    assert torch.equal(splits.x_test[0, :, 0, 0], torch.from_numpy(batch[b"data"][0, ::1024].copy()))
    assert splits.y_test.tolist() == batch[b"labels"]


def test_missing_cifar10_says_how_to_get_it(tmp_path):
    for data_dir in (None, tmp_path):
        with pytest.raises(DatasetMissing, match="data_dir.*cifar-10-batches-py"):
            d.load_cifar10(data_dir)


class _Boom:
    def __reduce__(self):
        return (pytest.fail, ("unpickling ran code",))


def test_cifar_reader_refuses_anything_but_the_batch_format(tmp_path):
    (tmp_path / "evil").write_bytes(pickle.dumps({b"data": _Boom(), b"labels": []}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        d.read_cifar_batch(tmp_path / "evil")
    (tmp_path / "wrong").write_bytes(pickle.dumps({b"data": np.zeros((2, 5), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(ValueError, match="uint8 array of shape"):
        d.read_cifar_batch(tmp_path / "wrong")


def test_read_idx_rejects_a_truncated_file(tmp_path):
    (tmp_path / "cut").write_bytes(b"\0\0\x08\x03" + struct.pack(">3I", 3, 2, 2) + bytes(11))
    with pytest.raises(ValueError, match="header says shape"):
        d.read_idx(tmp_path / "cut")
