import torch

from optsearch.tasks.models import ConvNet, StackedMLP, TransformerLM, seeded


def test_every_stacked_copy_starts_equal_and_computes_like_its_nn_module():
    model = StackedMLP((40, 100, 100, 10), 3, torch.Generator().manual_seed(0))
    assert all(torch.equal(model.params[0], row) for row in model.params)
    with torch.no_grad():
        model.params[1] *= 2  # copies are independent rows
    x = torch.randn(16, 40)
    logits = model(x)
    assert logits.shape == (3, 16, 10)
    for i in range(3):
        torch.testing.assert_close(model.module(i)(x), logits[i])


def test_stacked_init_is_set_by_the_generator_alone():
    a = StackedMLP((8, 4, 2), 2, torch.Generator().manual_seed(5))
    b = StackedMLP((8, 4, 2), 7, torch.Generator().manual_seed(5))
    assert torch.equal(a.init, b.init) and a.init.numel() == 8 * 4 + 4 + 4 * 2 + 2


def test_convnet_takes_uint8_images_of_either_dataset():
    for channels, size in ((1, 28), (3, 32)):
        net = ConvNet((0.5,) * channels, (0.25,) * channels, size)
        images = torch.randint(0, 256, (4, channels, size, size), dtype=torch.uint8)
        assert net(images).shape == (4, 10)


def test_seeded_builds_the_same_net_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = (seeded(lambda: ConvNet((0.5,), (0.25,), 28), 3) for _ in range(2))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_the_transformer_predicts_each_byte_from_the_bytes_before_it_only():
    model = seeded(lambda: TransformerLM(256, width=16, layers=2, heads=4, context=12), 0).eval()
    x = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(1))
    changed = x.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 256
    with torch.no_grad():
        a, b = model(x), model(changed)
    assert a.shape == (2, 12, 256)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_a_convnet_takes_one_width_per_block():
    net = ConvNet((0.5,), (0.25,), 14, width=(8, 16))
    assert [m.out_channels for m in net.features if isinstance(m, torch.nn.Conv2d)] == [8, 16]
    assert net(torch.zeros(3, 1, 14, 14, dtype=torch.uint8)).shape == (3, 10)
