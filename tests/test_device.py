"""The device check: one clear line whether CUDA is missing or the GPU index is beyond the machine's."""

import pytest
import torch

from nas_proxy import DataError, load_dataset


def test_no_cuda_names_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DataError, match=r"device 'cuda:7' asked for but CUDA is not available .*--device cpu"):
        load_dataset("digits", device="cuda:7")


@pytest.mark.parametrize("count, listed", [(1, r"1 CUDA device \(cuda:0,"), (4, r"4 CUDA devices \(cuda:0 to cuda:3,")])
def test_a_gpu_index_beyond_the_machine_names_the_count_and_the_fix(monkeypatch, count, listed):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    with pytest.raises(DataError, match=rf"device 'cuda:7' asked for but this machine has {listed}") as error:
        load_dataset("digits", device="cuda:7")
    assert "--device cuda" in str(error.value) and "\n" not in str(error.value)
