"""The ConvNet family of DC/DSA/DM, built from an :class:`~nas_proxy.ArchSpec`.

A ConvNet of depth D is D blocks of [conv 3x3 (bias, padding 1) -> norm -> activation ->
2x2 pooling], then one linear classifier on the flattened features. 28 px inputs get
padding 3 in the first conv so the maps are 32x32, as in the authors' code.

Networks are built on the meta device and initialised by :func:`init_parameters` from an
explicit generator, so a seed fixes the weights on every device and the global RNG is
never touched.

Example:
    >>> import torch
    >>> from nas_proxy import ArchSpec
    >>> from nas_proxy.method import build_convnet
    >>> net = build_convnet(ArchSpec.parse("d3-w128-relu-instancenorm-avgpool"), channels=1,
    ...                     num_classes=10, image_size=28, generator=torch.Generator().manual_seed(0))
    >>> net.embed(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 2048])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import nn

from nas_proxy.errors import NasProxyError
from nas_proxy.space import ArchSpec

if TYPE_CHECKING:
    from nas_proxy.data import Dataset

_Module = TypeVar("_Module", bound=nn.Module)


def _first_padding(image_size: int) -> int:
    return 3 if image_size == 28 else 1


def feature_sizes(arch: ArchSpec, image_size: int) -> list[int]:
    """Spatial size of the feature map after each block."""
    size = image_size + 2 * _first_padding(image_size) - 2
    sizes = []
    for _ in range(arch.depth):
        if arch.pooling != "none":
            size //= 2
        if size < 1:
            raise NasProxyError(
                f"architecture {arch.id} pools {image_size} px inputs below 1 px; use a shallower network "
                f"or larger images"
            )
        sizes.append(size)
    return sizes


def _norm(kind: str, channels: int, size: int) -> nn.Module:
    if kind == "batchnorm":
        return nn.BatchNorm2d(channels)
    if kind == "layernorm":
        return nn.LayerNorm([channels, size, size], elementwise_affine=True)
    if kind == "instancenorm":
        return nn.GroupNorm(channels, channels, affine=True)
    if kind == "groupnorm":
        return nn.GroupNorm(4, channels, affine=True)
    return nn.Identity()


def _activation(kind: str) -> nn.Module:
    makers: dict[str, Callable[[], nn.Module]] = {
        "sigmoid": nn.Sigmoid,
        "relu": lambda: nn.ReLU(inplace=True),
        "leakyrelu": lambda: nn.LeakyReLU(0.01, inplace=True),
    }
    return makers[kind]()


class ConvNet(nn.Module):
    """The ConvNet of METHOD.md; :meth:`embed` returns the classifier's input features."""

    def __init__(self, arch: ArchSpec, channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        self.arch = arch
        layers: list[nn.Module] = []
        in_channels = channels
        conv_size = image_size + 2 * _first_padding(image_size) - 2
        for block, pooled_size in enumerate(feature_sizes(arch, image_size)):
            padding = _first_padding(image_size) if block == 0 else 1
            layers += [
                nn.Conv2d(in_channels, arch.width, 3, padding=padding),
                _norm(arch.norm, arch.width, conv_size),
                _activation(arch.activation),
            ]
            if arch.pooling == "maxpool":
                layers.append(nn.MaxPool2d(2, 2))
            elif arch.pooling == "avgpool":
                layers.append(nn.AvgPool2d(2, 2))
            in_channels, conv_size = arch.width, pooled_size
        self.features = nn.Sequential(*layers)
        self.feature_dim = arch.width * conv_size * conv_size
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self.features(x)
        return features.flatten(1)

    def block_embeddings(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The features after each block (its pooling included), flattened; the last is :meth:`embed`'s."""
        per_block = len(self.features) // self.arch.depth
        out = []
        for block in range(self.arch.depth):
            x = self.features[block * per_block : (block + 1) * per_block](x)
            out.append(x.flatten(1))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(self.embed(x))
        return logits


@torch.no_grad()
def init_parameters(model: _Module, generator: torch.Generator) -> _Module:
    """Re-initialise ``model`` in place with PyTorch's default scheme, drawn from ``generator``.

    Conv and linear weights and biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (what
    ``kaiming_uniform_(a=sqrt(5))`` gives); norm scales 1, shifts 0; batch-norm statistics reset.
    Values are drawn where ``generator`` lives and copied: from a CPU generator a seed gives the same network
    on any device; from a CUDA one (DM's embeddings, random every iteration) nothing crosses from the host.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            bound = 1.0 / math.sqrt(module.weight[0].numel())
            for param in (module.weight, module.bias):
                if param is not None:
                    draw = torch.empty(param.shape, device=generator.device).uniform_(
                        -bound, bound, generator=generator
                    )
                    param.copy_(draw)
        elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            if getattr(module, "weight", None) is not None:
                module.weight.fill_(1.0)
                module.bias.zero_()
            if isinstance(module, nn.BatchNorm2d):
                module.reset_running_stats()
    return model


def build_convnet(
    arch: ArchSpec,
    channels: int,
    num_classes: int,
    image_size: int,
    *,
    generator: torch.Generator,
    device: str | torch.device = "cpu",
) -> ConvNet:
    """Build ``arch`` for inputs of ``channels`` x ``image_size`` px, initialised from ``generator``."""
    with torch.device("meta"):
        model = ConvNet(arch, channels, num_classes, image_size)
    model.to_empty(device=device)
    return init_parameters(model, generator)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(arch: ArchSpec, channels: int, num_classes: int, image_size: int) -> int:
    """Forward FLOPs for one image (2 x multiply-accumulates of convs and the classifier)."""
    macs, in_channels = 0, channels
    conv_size = image_size + 2 * _first_padding(image_size) - 2
    for pooled_size in feature_sizes(arch, image_size):
        macs += conv_size * conv_size * in_channels * arch.width * 9
        in_channels, conv_size = arch.width, pooled_size
    macs += arch.width * conv_size * conv_size * num_classes
    return 2 * macs


def network_size(arch: ArchSpec, data: Dataset) -> tuple[int, int]:
    """(parameters, forward FLOPs per image) of ``arch`` on ``data``'s images, without building its weights."""
    with torch.device("meta"):
        params = count_params(ConvNet(arch, data.channels, data.num_classes, data.image_size))
    return params, count_flops(arch, data.channels, data.num_classes, data.image_size)
