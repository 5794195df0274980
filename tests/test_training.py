import dataclasses
import sys
import time

import pytest
import torch

from nas_proxy import ArchSpec, NasProxyError, ProxyConfig, _accel, load_dataset, train_proxies, train_proxy
from nas_proxy.training import concurrent_jobs

ARCH = ArchSpec.parse("d2-w16-relu-instancenorm-avgpool")


def test_same_seed_same_score_and_different_seed_differs(digits):
    train = digits.sample_per_class(5, seed=0)
    a = train_proxy(ARCH, train, digits, ProxyConfig(epochs=20, seed=1), test=True)
    b = train_proxy(ARCH, train, digits, ProxyConfig(epochs=20, seed=1), test=True)
    c = train_proxy(ARCH, train, digits, ProxyConfig(epochs=20, seed=2))
    assert (a.val_acc, a.test_acc) == (b.val_acc, b.test_acc)
    assert c.test_acc is None and c.seed == 2
    assert a.val_acc != c.val_acc  # the seed changes the initial weights, batch order and augmentation


def test_training_learns_and_reports_cost(digits):
    result = train_proxy(ARCH, digits.sample_per_class(20, seed=0), digits, ProxyConfig(epochs=40), test=True)
    assert result.val_acc > 0.5 and result.test_acc > 0.5  # chance is 0.1
    assert result.params == sum(p.numel() for p in
                                __import__("nas_proxy").build_convnet(ARCH, 1, 10, 16, generator=torch.Generator()).parameters())
    assert result.flops > 0 and result.seconds > 0 and result.train_size == 200 and result.epochs == 40


def test_untrained_network_is_near_chance_so_training_matters(digits):
    trained = train_proxy(ARCH, digits.sample_per_class(20, seed=0), digits, ProxyConfig(epochs=40))
    barely = train_proxy(ARCH, digits.sample_per_class(20, seed=0), digits, ProxyConfig(epochs=1))
    assert trained.val_acc > barely.val_acc + 0.2


def test_learning_rate_decays_in_place_keeping_momentum(digits, monkeypatch):
    seen = []
    real_step = torch.optim.SGD.step

    def step(self, *args, **kwargs):
        seen.append((self.param_groups[0]["lr"], bool(self.state)))
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    train_proxy(ARCH, digits.sample_per_class(2, seed=0), digits, ProxyConfig(epochs=4, lr=0.1))
    assert [lr for lr, _ in seen] == pytest.approx([0.1, 0.1, 0.01, 0.01])
    assert seen[2][1]  # the momentum buffers survive the decay


def test_sample_per_class_is_balanced_seeded_and_bounded(digits):
    a, b = digits.sample_per_class(7, seed=3), digits.sample_per_class(7, seed=3)
    assert torch.equal(a.x, b.x) and torch.bincount(a.y).tolist() == [7] * 10
    assert not torch.equal(a.x, digits.sample_per_class(7, seed=4).x)
    with pytest.raises(NasProxyError, match="images per class"):
        digits.sample_per_class(100_000)


def test_config_validation():
    with pytest.raises(NasProxyError, match="epochs"):
        ProxyConfig(epochs=0)
    with pytest.raises(NasProxyError, match="unknown key 'epoch'"):
        ProxyConfig.from_dict({"epoch": 3})
    assert ProxyConfig.from_dict({"epochs": 3, "lr": 1}).lr == 1.0
    with pytest.raises(NasProxyError, match=r"\[proxy\].precision = 'fp16' is not allowed; choose from 'auto', 'fp32', 'bf16'"):
        ProxyConfig(precision="fp16")


def test_auto_precision_is_bf16_only_where_native(monkeypatch):
    monkeypatch.setattr(_accel, "native_bf16", lambda device_type: device_type == "cuda")
    assert _accel.resolve_precision("auto", "cpu") == "fp32"
    assert _accel.resolve_precision("auto", "cuda:1") == "bf16"
    assert _accel.resolve_precision("fp32", "cuda") == "fp32" and _accel.resolve_precision("bf16", "cpu") == "bf16"
    with _accel.autocast(torch.device("cpu"), "bf16"):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    with _accel.autocast(torch.device("cpu"), "fp32"):
        assert not torch.is_autocast_enabled("cpu")


def test_memory_format_is_channels_last_on_cuda_compiled_and_where_the_cpu_norm_kernels_favour_it():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert _accel.memory_format(cpu, compiled=False) == torch.contiguous_format
    assert _accel.memory_format(cpu, compiled=True) == _accel.memory_format(cuda, compiled=False) == torch.channels_last
    for norm in ("instancenorm", "layernorm"):  # slow in channels_last on a CPU: measured, see _accel
        assert _accel.memory_format(cpu, False, norm) == torch.contiguous_format
        assert _accel.memory_format(cuda, False, norm) == torch.channels_last
    for norm in ("none", "batchnorm", "groupnorm"):
        assert _accel.memory_format(cpu, False, norm) == torch.channels_last


# --- many candidates at once (issue 14) ---------------------------------------------------------------------------

BATCH = [ArchSpec.parse(a) for a in ("d1-w16-relu-none-maxpool", "d2-w16-sigmoid-batchnorm-avgpool",
                                     "d2-w16-leakyrelu-instancenorm-maxpool", "d1-w32-relu-layernorm-avgpool",
                                     "d2-w16-relu-groupnorm-avgpool")]


def _capture_weights(monkeypatch) -> dict[str, dict[str, torch.Tensor]]:
    """Trained weights by architecture id, captured when each network is scored (thread-safe: one key each)."""
    import nas_proxy.training

    weights, real_accuracy = {}, nas_proxy.training.accuracy

    def accuracy(net, *a, **k):
        weights.setdefault(net.arch.id, {n: t.detach().cpu().clone() for n, t in net.state_dict().items()})
        return real_accuracy(net, *a, **k)

    monkeypatch.setattr(nas_proxy.training, "accuracy", accuracy)
    return weights


def test_training_together_equals_one_at_a_time(digits, monkeypatch):
    """The stated tolerance on a CPU: bit for bit at the same kernel thread count (each candidate of a batch runs
    on one), and within 2 validation images of a run on more threads (their reductions round differently)."""
    train = digits.sample_per_class(5, seed=0)
    config = ProxyConfig(epochs=6, seed=3)
    weights = _capture_weights(monkeypatch)
    threads = torch.get_num_threads()
    alone_default = {arch.id: train_proxy(arch, train, digits, config, test=True) for arch in BATCH}
    torch.set_num_threads(1)
    weights.clear()
    try:
        alone = {arch.id: train_proxy(arch, train, digits, config, test=True) for arch in BATCH}
    finally:
        torch.set_num_threads(threads)
    alone_weights = dict(weights)
    weights.clear()
    together = train_proxies(BATCH, train, digits, dataclasses.replace(config, jobs=3), test=True)
    assert torch.get_num_threads() == threads  # the kernel threads are given back
    assert [r.arch for r in together] == [a.id for a in BATCH]
    for result in together:
        assert (result.val_acc, result.test_acc) == (alone[result.arch].val_acc, alone[result.arch].test_acc)
        assert all(torch.equal(t, alone_weights[result.arch][n]) for n, t in weights[result.arch].items())
        assert abs(result.val_acc - alone_default[result.arch].val_acc) <= 2 / len(digits.val)
    assert concurrent_jobs(ProxyConfig(), torch.device("cpu"), 10) == torch.get_num_threads()
    assert concurrent_jobs(ProxyConfig(jobs=8), torch.device("cpu"), 3) == 3
    assert concurrent_jobs(ProxyConfig(), torch.device("cuda"), 10) == 1
    assert concurrent_jobs(ProxyConfig(jobs=4, compile=True), torch.device("cpu"), 10) == 1  # compile: one thread
    assert "jobs" not in ProxyConfig(jobs=4).protocol()  # speed only: cached results are shared


def test_a_failing_candidate_stops_the_batch_and_gives_back_the_threads(digits, monkeypatch):
    steps, real_step = [], torch.optim.SGD.step

    def step(self, *args, **kwargs):
        steps.append(1)
        return real_step(self, *args, **kwargs)

    import nas_proxy.training

    real_build = nas_proxy.training.build_convnet

    def build(arch, *args, **kwargs):
        if arch == BATCH[2]:
            time.sleep(0.5)  # the other candidate is training by now
            raise NasProxyError("out of memory, say")
        return real_build(arch, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    monkeypatch.setattr(nas_proxy.training, "build_convnet", build)
    threads = torch.get_num_threads()
    with pytest.raises(NasProxyError, match="out of memory"):
        train_proxies([BATCH[2], BATCH[0], BATCH[1]], digits.sample_per_class(2, seed=0), digits,
                      ProxyConfig(epochs=2000, jobs=2))
    assert 0 < len(steps) < 2000  # the healthy candidate stopped at its next step; the waiting one never started
    assert torch.get_num_threads() == threads
    with pytest.raises(NasProxyError, match=r"\[proxy\].jobs.*>= 0"):
        ProxyConfig(jobs=-1)


@pytest.mark.skipif(sys.platform != "linux", reason="glibc allocator settings")
def test_cpu_allocator_tuning_applies_on_glibc():
    assert _accel.tune_cpu_allocator()


def test_bf16_training_is_deterministic_and_as_accurate_as_fp32(digits):
    train = digits.sample_per_class(20, seed=0)
    fp32 = train_proxy(ARCH, train, digits, ProxyConfig(epochs=40, precision="fp32"))
    bf16 = [train_proxy(ARCH, train, digits, ProxyConfig(epochs=40, precision="bf16")) for _ in range(2)]
    assert bf16[0].val_acc == bf16[1].val_acc
    assert abs(bf16[0].val_acc - fp32.val_acc) < 0.05


def test_compiled_training_matches_eager(digits):
    """torch.compile (channels_last on a CPU) changes speed, not the result beyond rounding."""
    train = digits.sample_per_class(10, seed=0)
    eager = train_proxy(ARCH, train, digits, ProxyConfig(epochs=8, precision="fp32"), test=True)
    compiled = train_proxy(ARCH, train, digits, ProxyConfig(epochs=8, precision="fp32", compile=True), test=True)
    assert abs(compiled.val_acc - eager.val_acc) <= 2 / len(digits.val)
    assert abs(compiled.test_acc - eager.test_acc) <= 2 / len(digits.test)
    assert "compile" not in ProxyConfig(compile=True).protocol()  # cached results are shared with eager runs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_in_auto_precision_tracks_fp32_on_cpu(digits):
    cuda = load_dataset("digits", device="cuda")
    train = digits.sample_per_class(20, seed=0)
    on_cpu = train_proxy(ARCH, train, digits, ProxyConfig(epochs=40, precision="fp32"))
    for compile in (False, True):
        on_gpu = train_proxy(ARCH, train, cuda, ProxyConfig(epochs=40, compile=compile))
        assert abs(on_gpu.val_acc - on_cpu.val_acc) < 0.05


# --- deterministic (issue 12, item 8) -----------------------------------------------------------------------------

def _train_capturing_weights(monkeypatch, *args, **kwargs):
    """train_proxy(...) and the trained weights (captured when it scores the network)."""
    weights = _capture_weights(monkeypatch)
    result = train_proxy(*args, **kwargs)
    return result, weights[result.arch]


def test_deterministic_runs_and_is_bit_identical_on_a_cpu(digits, monkeypatch):
    """Accepted and harmless on a CPU: the same weights and scores twice, and the same as without it."""
    train = digits.sample_per_class(10, seed=0)
    runs = [_train_capturing_weights(monkeypatch, ARCH, train, digits, ProxyConfig(epochs=6, deterministic=flag),
                                     test=True) for flag in (True, True, False)]
    (a, wa), (b, wb), (c, wc) = runs
    assert (a.val_acc, a.test_acc) == (b.val_acc, b.test_acc) == (c.val_acc, c.test_acc)
    for name in wa:
        assert torch.equal(wa[name], wb[name]) and torch.equal(wa[name], wc[name]), name
    assert not torch.are_deterministic_algorithms_enabled()  # nothing leaks out of the call
    assert ProxyConfig(deterministic=True).protocol() == ProxyConfig().protocol()  # not a cache key


def test_the_deterministic_block_sets_and_restores_the_global_switches(monkeypatch):
    """The CUDA branch only flips process-wide switches, so it is checked here without a GPU."""
    cudnn = torch.backends.cudnn
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(cudnn, "benchmark", True)
    before = (cudnn.deterministic, torch.are_deterministic_algorithms_enabled())
    with _accel.deterministic("cpu"):  # a no-op on a CPU
        assert not torch.are_deterministic_algorithms_enabled() and cudnn.benchmark
    with _accel.deterministic("cuda", enabled=False):
        assert not torch.are_deterministic_algorithms_enabled()
    with _accel.deterministic("cuda:0"):
        assert cudnn.deterministic and not cudnn.benchmark
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        assert __import__("os").environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert (cudnn.deterministic, torch.are_deterministic_algorithms_enabled()) == before and cudnn.benchmark
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    with pytest.raises(RuntimeError), _accel.deterministic("cuda"):
        raise RuntimeError("restored on errors too")
    assert __import__("os").environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"  # a user's setting is kept
    assert not torch.are_deterministic_algorithms_enabled() and cudnn.benchmark


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_deterministic_cuda_training_is_bit_identical(digits, monkeypatch):
    """Without ``deterministic``, atomics in CUDA kernels can change a score between identical runs."""
    cuda = load_dataset("digits", device="cuda")
    config = ProxyConfig(epochs=10, deterministic=True)
    (a, wa), (b, wb) = (_train_capturing_weights(monkeypatch, ARCH, cuda.train, cuda, config, test=True)
                        for _ in range(2))
    assert (a.val_acc, a.test_acc) == (b.val_acc, b.test_acc)
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name
    assert not torch.are_deterministic_algorithms_enabled()
