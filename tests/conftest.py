import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tiny models run far faster on one thread than two on a busy 2-core machine; fixes timing noise too."""
    torch.set_num_threads(1)
