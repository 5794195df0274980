"""Real data: a DM set trains a better ConvNet than a random real subset of the same size.

CPU-sized (narrow networks, 60 DM iterations, 128 real images per class); the full-scale
figures are in benchmarks/RESULTS.md. Mean over seeds of validation accuracy.
"""

import dataclasses

import pytest
import torch

from nas_proxy import ArchSpec, condense, load_dataset, train_candidate
from nas_proxy.method import CondenseConfig, TrainConfig

ARCH = "d3-w32-relu-instancenorm-avgpool"
SEEDS = (0, 1, 2)


@pytest.mark.slow
def test_dm_set_beats_random_subset_on_fashion_mnist(shared_data):
    data = load_dataset("fashion_mnist", shared_data)
    data = dataclasses.replace(data, val=data.val.subset(torch.arange(0, len(data.val), 3)))  # 2000 val images
    syn = condense(data, CondenseConfig(ipc=10, iterations=60, batch_real=128, embed_arch=ARCH, seed=0), progress=False)
    arch = ArchSpec.parse(ARCH)
    dm, rnd = [], []
    for seed in SEEDS:
        config = TrainConfig(epochs=150, seed=seed)
        dm.append(train_candidate(arch, syn.split(), data, config).val_acc)
        rnd.append(train_candidate(arch, data.sample_per_class(10, seed=seed), data, config).val_acc)
    mean_dm, mean_rnd = sum(dm) / len(dm), sum(rnd) / len(rnd)
    print(f"DM {dm} mean {mean_dm:.4f}; random {rnd} mean {mean_rnd:.4f}")
    assert mean_dm > mean_rnd + 0.01, (dm, rnd)
