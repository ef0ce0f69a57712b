import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tiny models run far faster on one thread than two on a busy 2-core machine; fixes timing noise too."""
    torch.set_num_threads(1)


@pytest.fixture
def wait_for_trials():
    """Returns wait(db, n, timeout): poll a search's store until it holds n evaluated trials, so a test can
    interrupt a running search at a point where finished work exists. Time running out fails the test there (a
    loaded machine is slow, not wrong: the timeouts are generous), rather than interrupting too early."""
    import time

    from optsearch.engine.store import Store, StoreError

    def wait(db, n: int, timeout: float = 300.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            time.sleep(0.2)
            try:
                with Store(db, readonly=True) as store:  # the search holds the writer's lock
                    if store.count_trials() >= n:
                        return
            except StoreError:  # not created yet, or its tables not yet
                pass
        pytest.fail(f"{db} did not reach {n} trials within {timeout:g} s")

    return wait

