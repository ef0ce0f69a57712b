import math

import pytest

from optsearch.optim import cosine_decay, linear_decay, restart_decay


def test_linear_decay_goes_from_one_to_zero_and_stays():
    d = linear_decay(10)
    assert [d(s) for s in (0, 5, 10, 20)] == [1.0, 0.5, 0.0, 0.0]


def test_cosine_decay_default_is_a_half_cosine_from_one_to_zero():
    d = cosine_decay(10)
    assert d(0) == 1.0
    assert d(5) == pytest.approx(0.5)
    assert d(10) == pytest.approx(0.0)
    assert d(30) == d(10)


def test_cosine_decay_with_one_period_comes_back_to_one():
    d = cosine_decay(10, periods=1)
    assert d(5) == pytest.approx(0.0)
    assert d(10) == pytest.approx(1.0)
    assert d(2) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.4)))


def test_cosine_decay_is_zero_once_the_fraction_passes_zero_after():
    d = cosine_decay(10, periods=1, zero_after=0.75)  # zero once 2·1·s/10 >= 1.5, i.e. s >= 7.5
    assert d(7) > 0.0
    assert d(8) == 0.0
    assert d(100) == 0.0


def test_restart_decay_restarts_n_times():
    d = restart_decay(10, periods=2)
    assert d(0) == 1.0
    assert d(2.5) == pytest.approx(0.5)
    assert d(5) == 1.0  # (2·5) mod 10 = 0: restarted
    assert d(7) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.4)))


def test_restart_decay_default_is_one_half_cosine():
    d = restart_decay(10)
    assert d(5) == pytest.approx(0.5)
    assert d(9) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.9)))


def test_restart_decay_is_zero_once_n_s_over_t_passes_zero_after():
    d = restart_decay(10, periods=2, zero_after=1.0)  # zero once 2·s/10 >= 1
    assert d(4) > 0.0
    assert d(5) == 0.0


def test_decays_are_values_that_pickle_and_compare():
    import pickle

    d = cosine_decay(100, periods=2, zero_after=0.5)
    assert pickle.loads(pickle.dumps(d)) == d
    assert d != cosine_decay(100)


@pytest.mark.parametrize("make, kwargs, word", [
    (linear_decay, dict(total_steps=0), "total_steps"),
    (linear_decay, dict(total_steps=2.5), "total_steps"),
    (cosine_decay, dict(total_steps=10, periods=0), "periods"),
    (cosine_decay, dict(total_steps=10, zero_after=-1), "zero_after"),
    (restart_decay, dict(total_steps=-3), "total_steps"),
    (restart_decay, dict(total_steps=10, periods=float("nan")), "periods"),
])
def test_bad_arguments_raise_a_value_error_naming_them(make, kwargs, word):
    with pytest.raises(ValueError, match=word):
        make(**kwargs)


def test_negative_step_is_rejected():
    with pytest.raises(ValueError, match="step"):
        linear_decay(10)(-1)
