import torch

from optsearch.strategies import Controller, TokenSpace


def test_weights_start_uniform_in_init_range_and_follow_the_generator():
    space = TokenSpace(2)
    a = Controller(space, hidden=150, init_range=0.08, generator=torch.Generator().manual_seed(3))
    b = Controller(space, hidden=150, init_range=0.08, generator=torch.Generator().manual_seed(3))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert pa.abs().max() <= 0.08
        assert torch.equal(pa, pb)
    assert a.cell.hidden_size == 150


def test_samples_only_valid_tokens_and_scores_them_consistently():
    space = TokenSpace(3, decays=True)
    ctrl = Controller(space, generator=torch.Generator().manual_seed(0))
    ids, logp = ctrl.sample(64, torch.Generator().manual_seed(1))
    assert all(space.contains(s) for s in ctrl.decode(ids))
    assert torch.equal(ctrl.encode(ctrl.decode(ids)), ids)
    scored, entropy = ctrl.score(ids)
    assert torch.allclose(scored, logp, atol=1e-5)
    assert (entropy > 0).all()


def test_gradients_are_finite_despite_masked_logits():
    ctrl = Controller(TokenSpace(2), generator=torch.Generator().manual_seed(0))
    ids, _ = ctrl.sample(8, torch.Generator().manual_seed(1))
    logp, entropy = ctrl.score(ids)
    (logp.sum() + entropy.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in ctrl.parameters())
