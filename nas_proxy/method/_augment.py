"""Differentiable Siamese Augmentation (DSA) on whole batches.

Implements the augmentation of Zhao & Bilen (ICML 2021) as used by Distribution
Matching: op families ``color`` (brightness, saturation, contrast), ``crop``,
``cutout``, ``flip``, ``scale`` and ``rotate``. Every op is a batched tensor op,
differentiable with respect to the input pixels, and every random number comes from
an explicit CPU ``torch.Generator`` (the global RNG is never touched), so a seed gives
the same result on CPU and CUDA.

Two modes:

* :meth:`DSA.siamese_draw` (condensation): each group draws one op family and one set
  of its parameters; the draw is applied to every batch of that group's images (a
  class's real and synthetic images are the Siamese twins; classes draw independently).
* :meth:`DSA.per_image` (network training): one op family for the call, parameters
  drawn independently for every image.

Example:
    >>> import torch
    >>> from nas_proxy.method import DSA
    >>> from nas_proxy.data._sources import STRATEGY_WITH_FLIP
    >>> dsa = DSA(STRATEGY_WITH_FLIP)
    >>> gen = torch.Generator().manual_seed(0)
    >>> x = torch.rand(6, 3, 32, 32, generator=gen).requires_grad_()
    >>> groups = torch.tensor([0, 0, 0, 1, 1, 1])
    >>> y = dsa.siamese_draw(num_groups=2, size=(32, 32), generator=gen).apply(x, groups)
    >>> y.shape
    torch.Size([6, 3, 32, 32])
    >>> y.sum().backward()
    >>> x.grad is not None
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from nas_proxy._accel import to_device
from nas_proxy.data._sources import STRATEGY_WITH_FLIP
from nas_proxy.errors import ConfigError, NasProxyError

__all__ = ["DSA", "DSAParams", "FAMILIES", "SiameseDraw", "check_dsa_strategy", "resolve_strategy"]

FAMILIES: tuple[str, ...] = ("color", "crop", "cutout", "flip", "scale", "rotate")

Params = dict[str, Tensor]


@dataclass(frozen=True)
class DSAParams:
    """The paper's DSA parameters (the authors' ``ParamDiffAug``).

    Example:
        >>> DSAParams().ratio_rotate
        15.0
    """

    prob_flip: float = 0.5
    ratio_scale: float = 1.2  # sx, sy independently ~ U(1/1.2, 1.2)
    ratio_rotate: float = 15.0  # degrees, ~ U(-15, 15)
    ratio_crop_pad: float = 0.125  # integer shift in +-round(0.125 * H) px, zero padding
    ratio_cutout: float = 0.5  # one zeroed square of side round(0.5 * H)
    brightness: float = 1.0  # x + (u - 0.5) * brightness
    saturation: float = 2.0  # (x - mean_c) * (u * saturation) + mean_c
    contrast: float = 0.5  # (x - mean) * (u + contrast) + mean


def _round_half_up(v: float) -> int:
    return int(math.floor(v + 0.5))


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> Tensor:
    return torch.rand(n, generator=gen) * (hi - lo) + lo


# ---------------------------------------------------------------- parameter draws
# Each returns CPU tensors with leading dimension n (one row per image or group).


def _draw_color(n: int, h: int, w: int, p: DSAParams, gen: torch.Generator) -> Params:
    return {
        "b": torch.rand(n, generator=gen),
        "s": torch.rand(n, generator=gen),
        "c": torch.rand(n, generator=gen),
    }


def _draw_crop(n: int, h: int, w: int, p: DSAParams, gen: torch.Generator) -> Params:
    sh, sw = _round_half_up(h * p.ratio_crop_pad), _round_half_up(w * p.ratio_crop_pad)
    return {
        "ty": torch.randint(-sh, sh + 1, (n,), generator=gen),
        "tx": torch.randint(-sw, sw + 1, (n,), generator=gen),
    }


def _draw_cutout(n: int, h: int, w: int, p: DSAParams, gen: torch.Generator) -> Params:
    ch, cw = _round_half_up(h * p.ratio_cutout), _round_half_up(w * p.ratio_cutout)
    # Centre drawn as in the authors' code; the square may be clipped at the border.
    return {
        "cy": torch.randint(0, h + 1 - ch % 2, (n,), generator=gen),
        "cx": torch.randint(0, w + 1 - cw % 2, (n,), generator=gen),
    }


def _draw_flip(n: int, h: int, w: int, p: DSAParams, gen: torch.Generator) -> Params:
    return {"flip": torch.rand(n, generator=gen) < p.prob_flip}


def _draw_scale(n: int, h: int, w: int, p: DSAParams, gen: torch.Generator) -> Params:
    r = p.ratio_scale
    return {"sx": _uniform(n, 1.0 / r, r, gen), "sy": _uniform(n, 1.0 / r, r, gen)}


def _draw_rotate(n: int, h: int, w: int, p: DSAParams, gen: torch.Generator) -> Params:
    deg = _uniform(n, -p.ratio_rotate, p.ratio_rotate, gen)
    return {"angle": deg * (math.pi / 180.0)}


# ---------------------------------------------------------------- batched ops
# Each takes x (N, C, H, W) and params with leading dimension N on x.device.


def _affine(x: Tensor, theta: Tensor) -> Tensor:
    """Resample x with per-image 2x3 theta (float32 or wider grid; dtype preserved)."""
    work = torch.promote_types(x.dtype, torch.float32)
    grid = F.affine_grid(theta.to(work), list(x.shape), align_corners=True)
    return F.grid_sample(x.to(work), grid, align_corners=True).to(x.dtype)


def _apply_scale(x: Tensor, prm: Params, p: DSAParams) -> Tensor:
    sx, sy = prm["sx"], prm["sy"]
    zero = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([sx, zero, zero], 1), torch.stack([zero, sy, zero], 1)], 1)
    return _affine(x, theta)


def _apply_rotate(x: Tensor, prm: Params, p: DSAParams) -> Tensor:
    a = prm["angle"]
    cos, sin, zero = torch.cos(a), torch.sin(a), torch.zeros_like(a)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    return _affine(x, theta)


def _apply_crop(x: Tensor, prm: Params, p: DSAParams) -> Tensor:
    n, c, h, w = x.shape
    sh, sw = _round_half_up(h * p.ratio_crop_pad), _round_half_up(w * p.ratio_crop_pad)
    xp = F.pad(x, [sw, sw, sh, sh])  # zero padding
    rows = torch.arange(h, device=x.device)[None, :] + (sh + prm["ty"])[:, None]  # (N, H)
    cols = torch.arange(w, device=x.device)[None, :] + (sw + prm["tx"])[:, None]  # (N, W)
    xp = xp.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * sw))
    return xp.gather(3, cols[:, None, None, :].expand(n, c, h, w))


def _apply_cutout(x: Tensor, prm: Params, p: DSAParams) -> Tensor:
    _, _, h, w = x.shape
    ch, cw = _round_half_up(h * p.ratio_cutout), _round_half_up(w * p.ratio_cutout)
    y0 = (prm["cy"] - ch // 2)[:, None, None]
    x0 = (prm["cx"] - cw // 2)[:, None, None]
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    inside = (rows >= y0) & (rows < y0 + ch) & (cols >= x0) & (cols < x0 + cw)  # (N, H, W)
    return x * (~inside).to(x.dtype)[:, None]


def _apply_flip(x: Tensor, prm: Params, p: DSAParams) -> Tensor:
    return torch.where(prm["flip"][:, None, None, None], x.flip(3), x)


def _apply_color(x: Tensor, prm: Params, p: DSAParams) -> Tensor:
    b, s, c = (prm[k].to(x.dtype)[:, None, None, None] for k in ("b", "s", "c"))
    x = x + (b - 0.5) * p.brightness
    mean_c = x.mean(dim=1, keepdim=True)
    x = (x - mean_c) * (s * p.saturation) + mean_c
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (c + p.contrast) + mean


_Draw = Callable[[int, int, int, DSAParams, torch.Generator], Params]
_Apply = Callable[[Tensor, Params, DSAParams], Tensor]
_OPS: dict[str, tuple[_Draw, _Apply]] = {
    "color": (_draw_color, _apply_color),
    "crop": (_draw_crop, _apply_crop),
    "cutout": (_draw_cutout, _apply_cutout),
    "flip": (_draw_flip, _apply_flip),
    "scale": (_draw_scale, _apply_scale),
    "rotate": (_draw_rotate, _apply_rotate),
}


def _to_device(prm: Params, device: torch.device) -> Params:
    return {k: to_device(v, device) for k, v in prm.items()}


def _check_batch(x: Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"DSA expects a (N, C, H, W) batch, got shape {tuple(x.shape)}")


def _check_generator(generator: torch.Generator) -> None:
    if generator.device.type != "cpu":
        raise ValueError("DSA needs a CPU torch.Generator (parameters are drawn on the CPU)")


class DSA:
    """Differentiable Siamese Augmentation with an explicit CPU generator.

    ``strategy`` is a ``'_'``-joined list of op families from
    ``color, crop, cutout, flip, scale, rotate``; ``""`` or ``"none"`` is the identity.
    Each call picks one family uniformly from the strategy's families (per group in
    :meth:`siamese_draw`, per call in :meth:`per_image`).

    Example:
        >>> import torch
        >>> dsa = DSA("crop_flip")
        >>> gen = torch.Generator().manual_seed(1)
        >>> x = torch.rand(4, 1, 28, 28, generator=gen)
        >>> dsa.per_image(x, gen).shape
        torch.Size([4, 1, 28, 28])
        >>> torch.equal(DSA("none").per_image(x, gen), x)
        True
    """

    strategy: str
    params: DSAParams

    def __init__(self, strategy: str = STRATEGY_WITH_FLIP, params: DSAParams = DSAParams()) -> None:
        self.strategy = strategy
        self.params = params
        if strategy in ("", "none"):
            self._families: tuple[str, ...] = ()
            return
        families = tuple(strategy.split("_"))
        for fam in families:
            if fam not in _OPS:
                raise NasProxyError(
                    f"unknown DSA op '{fam}' in strategy '{strategy}'; choose from {', '.join(FAMILIES)}"
                )
        self._families = families

    @property
    def families(self) -> tuple[str, ...]:
        """The op families of the strategy, in order (empty for the identity)."""
        return self._families

    def __repr__(self) -> str:
        return f"DSA(strategy={self.strategy!r}, params={self.params!r})"

    def siamese_draw(self, num_groups: int, size: tuple[int, int], generator: torch.Generator) -> SiameseDraw:
        """Draw one op family and one set of its parameters per group, for images of ``size`` (H, W).

        The draw is made once and applied to every batch whose images belong to those groups
        (:meth:`SiameseDraw.apply`): a class's real and synthetic images get the same transform
        whatever the sizes of the two batches. How much it draws depends only on ``num_groups``,
        so a seed gives the same stream however many images there are.
        """
        _check_generator(generator)
        if not self._families:
            return SiameseDraw(self, num_groups, size, torch.zeros(num_groups, dtype=torch.int64), [])
        family = torch.randint(len(self._families), (num_groups,), generator=generator)
        h, w = size
        # Every family's parameters are drawn, used or not: the stream does not depend on which were picked.
        params = [_OPS[fam][0](num_groups, h, w, self.params, generator) for fam in self._families]
        return SiameseDraw(self, num_groups, size, family, params)

    def per_image(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Augment with one family for the call and independent parameters per image.

        Args:
            x: images (N, C, H, W), any float dtype, any device.
            generator: CPU generator, the only source of randomness.
        """
        _check_batch(x)
        _check_generator(generator)
        if not self._families or x.shape[0] == 0:
            return x
        n, _, h, w = x.shape
        k = int(torch.randint(len(self._families), (1,), generator=generator))
        draw, apply = _OPS[self._families[k]]
        prm = draw(n, h, w, self.params, generator)
        return apply(x, _to_device(prm, x.device), self.params)


@dataclass(frozen=True)
class SiameseDraw:
    """One Siamese draw (:meth:`DSA.siamese_draw`): an op family and its parameters for each group.

    Example:
        >>> import torch
        >>> from nas_proxy.method import DSA
        >>> gen = torch.Generator().manual_seed(0)
        >>> draw = DSA("crop_flip").siamese_draw(num_groups=2, size=(8, 8), generator=gen)
        >>> real, syn = torch.rand(6, 1, 8, 8, generator=gen), torch.rand(2, 1, 8, 8, generator=gen)
        >>> real[0], real[3] = syn[0], syn[1]  # a twin of each synthetic image among the real ones
        >>> out_real = draw.apply(real, torch.tensor([0, 0, 0, 1, 1, 1]))
        >>> out_syn = draw.apply(syn, torch.tensor([0, 1]))
        >>> torch.equal(out_real[0], out_syn[0]) and torch.equal(out_real[3], out_syn[1])
        True
    """

    dsa: DSA
    num_groups: int
    size: tuple[int, int]
    family: Tensor  # (num_groups,) index into dsa.families
    params: list[Params]  # per family, rows indexed by group

    def apply(self, x: Tensor, groups: Tensor) -> Tensor:
        """Augment ``x`` (N, C, H, W; any float dtype and device): each image with its group's transform.

        ``groups`` is the (N,) integer group of each image, in ``[0, num_groups)``.
        """
        _check_batch(x)
        if groups.shape != (x.shape[0],):
            raise ValueError(f"groups must have shape ({x.shape[0]},), got {tuple(groups.shape)}")
        if tuple(x.shape[-2:]) != tuple(self.size):
            raise ValueError(f"the draw was made for {tuple(self.size)} images, got {tuple(x.shape[-2:])}")
        if not self.dsa.families or x.shape[0] == 0:
            return x
        g = groups.detach().to("cpu", torch.int64)
        if int(g.min()) < 0 or int(g.max()) >= self.num_groups:
            raise ValueError(f"groups must lie in [0, {self.num_groups})")
        family_of_image = self.family[g]
        out = x
        for k, fam in enumerate(self.dsa.families):
            idx = (family_of_image == k).nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            apply = _OPS[fam][1]
            sub = _to_device({key: v[g[idx]] for key, v in self.params[k].items()}, x.device)
            if idx.numel() == x.shape[0]:
                out = apply(out, sub, self.dsa.params)
            else:
                idx_dev = idx.to(x.device)
                out = out.index_put((idx_dev,), apply(out[idx_dev], sub, self.dsa.params))
        return out


def resolve_strategy(setting: str, dataset_default: str) -> str:
    """The strategy a config's ``dsa_strategy`` runs: the data set's own for ``auto``, else the setting itself.

    Example:
        >>> resolve_strategy("auto", "crop_flip"), resolve_strategy("crop", "crop_flip")
        ('crop_flip', 'crop')
    """
    return dataset_default if setting == "auto" else setting


def check_dsa_strategy(section: str, strategy: str) -> None:
    """Validate a config's ``dsa_strategy``: ``auto`` (the data set's), ``none``, or op families joined by ``_``."""
    if strategy == "auto":
        return
    try:
        DSA(strategy)
    except NasProxyError as exc:
        raise ConfigError(section, "dsa_strategy", f"= {strategy!r}: {exc}") from None
