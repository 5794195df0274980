"""Zero-cost proxies: score a network at initialisation from one batch, without training.

The formulas are METHOD.md's. Each returns a float where higher is meant to predict a better
network; whether it does is what ``nas-proxy compare`` measures.

Example:
    >>> import torch
    >>> from nas_proxy import ArchSpec, load_dataset
    >>> from nas_proxy.method import build_convnet
    >>> from nas_proxy.scoring._zero_cost import grad_norm, naswot, synflow
    >>> data = load_dataset("digits")
    >>> net = build_convnet(ArchSpec.parse("d2-w32-relu-batchnorm-avgpool"), data.channels, data.num_classes,
    ...                     data.image_size, generator=torch.Generator().manual_seed(0))
    >>> x, y = data.train.x[:32], data.train.y[:32]
    >>> [round(f, 1) > 0 for f in (synflow(net, x), naswot(net, x), grad_norm(net, x, y))]
    [True, True, True]
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Sigmoid)
_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _weights(net: nn.Module) -> list[torch.Tensor]:
    """The conv and linear weight tensors (norm affines and biases are left out, as in the papers)."""
    return [m.weight for m in net.modules() if isinstance(m, _LAYERS)]


def synflow(net: nn.Module, x: torch.Tensor) -> float:
    """log of sum |W * dR/dW| over conv and linear weights, with |W| in float64 and an all-ones input.

    R is the sum of the outputs of the sign-free network; ``x`` only gives the input shape. The
    network runs in eval mode so batch norm applies its (initial, identity) running statistics
    instead of normalising away the constant input. The log keeps seeds' scores on one scale.
    """
    net = copy.deepcopy(net).to(torch.float64).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    net(torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)).sum().backward()
    total = sum(float((p * p.grad).abs().sum().detach()) for p in _weights(net) if p.grad is not None)
    return math.log(total) if total > 0 else -math.inf


@torch.no_grad()
def naswot(net: nn.Module, x: torch.Tensor) -> float:
    """log|K| with K = c c^T + (1 - c)(1 - c)^T over the binary codes c (pre-activation > 0) of the batch.

    Networks whose activation patterns tell the images apart score higher.
    """
    net = copy.deepcopy(net).train()  # batch statistics, as at the start of training
    codes: list[torch.Tensor] = []
    hooks = [
        m.register_forward_pre_hook(lambda _m, args: codes.append((args[0] > 0).flatten(1)))
        for m in net.modules()
        if isinstance(m, _ACTIVATIONS)
    ]  # pre-hook: ReLU(inplace) overwrites its input
    try:
        net(x)
    finally:
        for hook in hooks:
            hook.remove()
    c = torch.cat(codes, 1).to(torch.float64)
    kernel = c @ c.T + (1 - c) @ (1 - c).T
    return float(torch.linalg.slogdet(kernel).logabsdet)


def grad_norm(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Sum over conv and linear layers of the L2 norm of the cross-entropy gradient on one batch."""
    net = copy.deepcopy(net).train()
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(x), y).backward()
    return sum(float(p.grad.norm()) for p in _weights(net) if p.grad is not None)


__all__ = ["grad_norm", "naswot", "synflow"]
