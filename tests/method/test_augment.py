"""Tests for nas_proxy.method._augment (DSA)."""

from __future__ import annotations

import re

import pytest
import torch

import nas_proxy.method._augment as augment
from nas_proxy import NasProxyError
from nas_proxy.data._sources import STRATEGY_NO_FLIP, STRATEGY_WITH_FLIP
from nas_proxy.method import DSA
from nas_proxy.method._augment import FAMILIES, DSAParams


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def imgs(n: int, c: int = 3, h: int = 16, seed: int = 123) -> torch.Tensor:
    return torch.rand(n, c, h, h, generator=gen(seed))


def siamese(
    dsa: DSA, x: torch.Tensor, groups: torch.Tensor, num_groups: int, generator: torch.Generator
) -> torch.Tensor:
    """One Siamese draw applied to one batch."""
    return dsa.siamese_draw(num_groups, tuple(x.shape[-2:]), generator).apply(x, groups)


def same_image_repeated(n: int, c: int = 3, h: int = 16) -> torch.Tensor:
    return imgs(1, c, h).expand(n, c, h, h).contiguous()


# (1) siamese, one group: the whole batch shares one transform ------------------


@pytest.mark.parametrize("strategy", [*FAMILIES, STRATEGY_WITH_FLIP])
def test_siamese_one_group_shares_the_draw(strategy: str) -> None:
    dsa = DSA(strategy)
    a, b = imgs(4, seed=1), imgs(4, seed=2)
    zeros = torch.zeros(8, dtype=torch.int64)
    for seed in range(5):
        out = siamese(dsa, torch.cat([a, a]), zeros, 1, gen(seed))
        assert torch.equal(out[:4], out[4:])
        # The draw does not depend on the content: [a; b] gets the same transform.
        out_ab = siamese(dsa, torch.cat([a, b]), zeros, 1, gen(seed))
        out_bb = siamese(dsa, torch.cat([b, b]), zeros, 1, gen(seed))
        assert torch.equal(out_ab[:4], out[:4])
        assert torch.equal(out_ab[4:], out_bb[4:])


# (2) siamese, several groups ------------------------------------------------------


@pytest.mark.parametrize("strategy", ["crop", "color", "rotate", STRATEGY_WITH_FLIP])
def test_siamese_groups_identical_within_different_across(strategy: str) -> None:
    num_groups, per_group = 8, 3
    x = same_image_repeated(num_groups * per_group)
    groups = torch.arange(num_groups).repeat_interleave(per_group)
    groups = groups[torch.randperm(len(groups), generator=gen(9))]  # interleaved order
    out = siamese(DSA(strategy), x, groups, num_groups, gen(3))
    firsts = []
    for g in range(num_groups):
        members = out[groups == g]
        assert all(torch.equal(members[0], m) for m in members[1:])
        firsts.append(members[0])
    distinct = {tuple(f.flatten().tolist()) for f in firsts}
    assert len(distinct) > 1


def test_siamese_real_and_synthetic_of_a_class_share_the_draw() -> None:
    # DM layout: real batch of every class then the synthetic batch of every class.
    real_labels = torch.arange(3).repeat_interleave(5)
    syn_labels = torch.arange(3).repeat_interleave(2)
    real, syn = imgs(15, seed=4), imgs(6, seed=5)
    groups = torch.cat([real_labels, syn_labels])
    out = siamese(DSA(STRATEGY_WITH_FLIP), torch.cat([real, syn]), groups, 3, gen(7))
    # Replace the synthetic images by copies of a real image of the same class:
    twins = torch.cat([real, real[torch.tensor([0, 0, 5, 5, 10, 10])]])
    out_twins = siamese(DSA(STRATEGY_WITH_FLIP), twins, groups, 3, gen(7))
    assert torch.equal(out[:15], out_twins[:15])
    for i, j in zip(range(15, 21), [0, 0, 5, 5, 10, 10]):
        assert torch.equal(out_twins[i], out_twins[j])


@pytest.mark.parametrize("strategy", [*FAMILIES, STRATEGY_WITH_FLIP])
def test_one_siamese_draw_transforms_batches_of_different_sizes_alike(strategy: str) -> None:
    """Condensation's case: 7 real images per class, 2 synthetic, in another order; one draw for both."""
    num_groups = 4
    real_groups = torch.arange(num_groups).repeat(7)  # interleaved: 0 1 2 3 0 1 2 3 ...
    syn_groups = torch.arange(num_groups).repeat_interleave(2)  # blocked: 0 0 1 1 2 2 3 3
    real, syn = imgs(len(real_groups), seed=4), imgs(len(syn_groups), seed=5)
    twin = {}  # a real image of each synthetic one's class replaced by that synthetic image
    for i, g in enumerate(syn_groups.tolist()):
        j = int((real_groups == g).nonzero()[i % 2 + 1])
        real[j], twin[i] = syn[i], j
    generator = gen(8)
    draw = DSA(strategy).siamese_draw(num_groups, (16, 16), generator)
    after_draw = generator.get_state()
    out_real, out_syn = draw.apply(real, real_groups), draw.apply(syn, syn_groups)
    assert torch.equal(generator.get_state(), after_draw)  # applying draws nothing
    for i, j in twin.items():
        assert torch.equal(out_syn[i], out_real[j])
    # What a draw takes from the generator depends on the number of groups only, not on the images.
    other = gen(8)
    DSA(strategy).siamese_draw(num_groups, (28, 28), other)
    assert torch.equal(other.get_state(), after_draw)


# (3) per-image mode ----------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["crop", "color", "cutout", "scale", "rotate"])
def test_per_image_draws_independently(strategy: str) -> None:
    out = DSA(strategy).per_image(same_image_repeated(8), gen(0))
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) > 1


def test_per_image_one_family_per_call() -> None:
    # With "flip_color" a call is either all flip/identity or all color: never mixed.
    x = same_image_repeated(16)
    for seed in range(6):
        out = DSA("flip_color").per_image(x, gen(seed))
        is_flip_or_id = [torch.equal(o, x[0]) or torch.equal(o, x[0].flip(2)) for o in out]
        assert all(is_flip_or_id) or not any(is_flip_or_id)


# (4) gradients ---------------------------------------------------------------------


@pytest.mark.parametrize("strategy", FAMILIES)
def test_gradients_reach_pixels(strategy: str) -> None:
    dsa = DSA(strategy)
    for mode in ("siamese", "per_image"):
        x = imgs(6).requires_grad_(True)
        if mode == "siamese":
            out = siamese(dsa, x, torch.tensor([0, 1, 2, 0, 1, 2]), 3, gen(1))
        else:
            out = dsa.per_image(x, gen(1))
        (out * torch.linspace(0.5, 2.0, out.numel()).view_as(out)).sum().backward()
        assert x.grad is not None
        assert torch.isfinite(x.grad).all()
        assert x.grad.abs().sum(dim=(1, 2, 3)).min() > 0  # every image gets gradient


def test_gradients_with_mixed_families_per_group() -> None:
    x = imgs(12).requires_grad_(True)
    groups = torch.arange(12) % 6
    out = siamese(DSA(STRATEGY_WITH_FLIP), x, groups, 6, gen(2))
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum(dim=(1, 2, 3)).min() > 0


# (5) determinism and the global RNG -------------------------------------------------


def test_seed_determinism_and_global_rng_untouched() -> None:
    dsa = DSA(STRATEGY_WITH_FLIP)
    x = imgs(8)
    groups = torch.arange(8) % 4
    state = torch.random.get_rng_state()
    s1 = siamese(dsa, x, groups, 4, gen(11))
    s2 = siamese(dsa, x, groups, 4, gen(11))
    p1 = dsa.per_image(x, gen(11))
    p2 = dsa.per_image(x, gen(11))
    s_other = [siamese(dsa, x, groups, 4, gen(s)) for s in (12, 13)]
    p_other = [dsa.per_image(x, gen(s)) for s in (12, 13)]
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(s1, s2) and torch.equal(p1, p2)
    assert any(not torch.equal(s1, o) for o in s_other)
    assert any(not torch.equal(p1, o) for o in p_other)


def test_generator_advances_between_calls() -> None:
    g = gen(5)
    x = imgs(4)
    a = DSA("crop").per_image(x, g)
    b = DSA("crop").per_image(x, g)
    assert not torch.equal(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    dsa = DSA(STRATEGY_WITH_FLIP)
    x = imgs(12)
    groups = torch.arange(12) % 4
    for seed in range(4):
        cpu = siamese(dsa, x, groups, 4, gen(seed))
        cuda = siamese(dsa, x.cuda(), groups.cuda(), 4, gen(seed)).cpu()
        torch.testing.assert_close(cuda, cpu, atol=1e-5, rtol=1e-5)


# (6) parameter ranges ---------------------------------------------------------------


def test_flip_is_exact_flip_or_identity() -> None:
    x = imgs(64)
    out = DSA("flip").per_image(x, gen(0))
    flipped = [torch.equal(o, xi.flip(2)) for o, xi in zip(out, x)]
    kept = [torch.equal(o, xi) for o, xi in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 10 < sum(flipped) < 54  # probability 0.5


@pytest.mark.parametrize(("size", "max_shift"), [(16, 2), (28, 4), (32, 4)])
def test_crop_is_an_integer_shift_within_range(size: int, max_shift: int) -> None:
    n, c0 = 300, size // 2
    x = torch.zeros(n, 1, size, size)
    x[:, 0, c0, c0] = 1.0
    out = DSA("crop").per_image(x, gen(0))
    assert torch.equal(out.sum(dim=(1, 2, 3)), torch.ones(n))  # moved, not blurred or lost
    assert set(out.unique().tolist()) == {0.0, 1.0}
    pos = out[:, 0].flatten(1).argmax(1)
    dy, dx = pos // size - c0, pos % size - c0
    for d in (dy, dx):
        assert d.abs().max() == max_shift  # the whole range is used, not more
        assert set(d.tolist()) == set(range(-max_shift, max_shift + 1))
    # Zero padding: content shifted past the border is replaced by zeros.
    ones = DSA("crop").per_image(torch.ones(n, 1, size, size), gen(1))
    assert ones.min() == 0.0 and (ones.sum(dim=(1, 2, 3)) >= (size - max_shift) ** 2).all()


@pytest.mark.parametrize("size", [16, 18, 28, 32])
def test_cutout_zeros_one_square(size: int) -> None:
    side = int(size * 0.5 + 0.5)
    n = 200
    out = DSA("cutout").per_image(torch.ones(n, 2, size, size), gen(0))
    assert torch.equal(out[:, 0], out[:, 1])  # same mask for every channel
    full_squares = 0
    for o in out[:, 0]:
        zero = o == 0
        rows = zero.any(1).nonzero().flatten()
        cols = zero.any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        assert 1 <= h <= side and 1 <= w <= side
        assert rows[-1] - rows[0] + 1 == h and cols[-1] - cols[0] + 1 == w  # contiguous
        assert zero.sum() == h * w  # a rectangle, all zero inside
        if h < side:  # clipped only at the border
            assert rows[0] == 0 or rows[-1] == size - 1
        if w < side:
            assert cols[0] == 0 or cols[-1] == size - 1
        full_squares += h == side and w == side
    assert full_squares > n // 4


def test_color_brightness_is_a_uniform_shift() -> None:
    # For an image constant across pixels and channels, saturation and contrast are
    # identities, so color is x + (u - 0.5) * brightness: the same shift everywhere.
    levels = torch.linspace(0.1, 0.9, 32)
    x = levels.view(32, 1, 1, 1).expand(32, 3, 8, 8).contiguous()
    out = DSA("color").per_image(x, gen(0))
    shift = out - x
    torch.testing.assert_close(shift, shift[:, :1, :1, :1].expand_as(shift), atol=1e-6, rtol=0)
    assert shift.abs().max() <= 0.5
    assert shift.std() > 0.1  # shifts differ between images


def test_color_contrast_and_saturation_keep_the_mean() -> None:
    # Without brightness, saturation keeps the channel mean and contrast the image
    # mean; a 1-channel image has no saturation, contrast scales by u + 0.5.
    params = DSAParams(brightness=0.0)
    x1 = imgs(16, c=1)
    out1 = DSA("color", params).per_image(x1, gen(0))
    torch.testing.assert_close(out1.mean(dim=(1, 2, 3)), x1.mean(dim=(1, 2, 3)))
    centred_in = x1 - x1.mean(dim=(1, 2, 3), keepdim=True)
    centred_out = out1 - out1.mean(dim=(1, 2, 3), keepdim=True)
    factor = (centred_out.flatten(1) / centred_in.flatten(1)).median(1).values
    torch.testing.assert_close(centred_out, centred_in * factor.view(-1, 1, 1, 1))
    assert (factor >= 0.5 - 1e-5).all() and (factor <= 1.5 + 1e-5).all()
    x3 = imgs(16, c=3)
    out3 = DSA("color", params).per_image(x3, gen(0))
    torch.testing.assert_close(out3.mean(dim=(1, 2, 3)), x3.mean(dim=(1, 2, 3)))


def test_scale_and_rotate_parameter_ranges() -> None:
    p = DSAParams()
    s = augment._draw_scale(2000, 32, 32, p, gen(0))
    for v in (s["sx"], s["sy"]):
        assert v.min() >= 1 / 1.2 and v.max() <= 1.2 and v.max() - v.min() > 0.3
    assert not torch.equal(s["sx"], s["sy"])
    a = augment._draw_rotate(2000, 32, 32, p, gen(0))["angle"] * 180 / torch.pi
    assert a.min() >= -15 and a.max() <= 15 and a.max() - a.min() > 28


def test_scale_and_rotate_resample_without_identity_drift() -> None:
    # A constant image stays constant at the centre under scale and rotate.
    x = torch.full((8, 1, 17, 17), 0.7)
    for strategy in ("scale", "rotate"):
        out = DSA(strategy).per_image(x, gen(0))
        torch.testing.assert_close(out[:, :, 8, 8], x[:, :, 8, 8])
    # Rotation of 0 degrees with align_corners=True is the identity.
    zero = {"angle": torch.zeros(4)}
    xr = imgs(4)
    torch.testing.assert_close(augment._apply_rotate(xr, zero, DSAParams()), xr)


# (7) sizes, channels and dtypes -------------------------------------------------------


@pytest.mark.parametrize(("c", "h"), [(1, 16), (1, 28), (3, 32)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_shapes_and_dtypes(c: int, h: int, dtype: torch.dtype) -> None:
    x = imgs(4, c=c, h=h).to(dtype)
    groups = torch.tensor([0, 1, 0, 1])
    for strategy in (*FAMILIES, STRATEGY_WITH_FLIP, STRATEGY_NO_FLIP):
        dsa = DSA(strategy)
        for out in (siamese(dsa, x, groups, 2, gen(0)), dsa.per_image(x, gen(0))):
            assert out.shape == x.shape and out.dtype == dtype
            assert torch.isfinite(out.float()).all()


# (8) strategy parsing --------------------------------------------------------------


def test_none_is_identity() -> None:
    x = imgs(4)
    for strategy in ("none", ""):
        dsa = DSA(strategy)
        assert torch.equal(dsa.per_image(x, gen(0)), x)
        assert torch.equal(siamese(dsa, x, torch.zeros(4, dtype=torch.int64), 1, gen(0)), x)
        assert dsa.families == ()


def test_unknown_op_raises() -> None:
    msg = "unknown DSA op 'foo' in strategy 'crop_foo'; choose from color, crop, cutout, flip, scale, rotate"
    with pytest.raises(NasProxyError, match=re.escape(msg)):
        DSA("crop_foo")


def test_strategies_and_defaults() -> None:
    assert DSA().strategy == STRATEGY_WITH_FLIP
    assert DSA(STRATEGY_NO_FLIP).families == ("color", "crop", "cutout", "scale", "rotate")
    assert DSAParams() == DSAParams(0.5, 1.2, 15.0, 0.125, 0.5, 1.0, 2.0, 0.5)


def test_bad_arguments() -> None:
    dsa = DSA("crop")
    with pytest.raises(ValueError):
        siamese(dsa, imgs(4), torch.tensor([0, 1, 2, 3]), 2, gen(0))
    with pytest.raises(ValueError):
        dsa.per_image(torch.zeros(3, 8, 8), gen(0))
