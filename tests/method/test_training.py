import dataclasses
import os
import subprocess
import sys
import time

import pytest
import torch

from nas_proxy import ArchSpec, NasProxyError, _accel, load_dataset, train_candidate
from nas_proxy.method import TrainConfig, build_convnet, train_candidates
from nas_proxy.method._train import concurrent_jobs

ARCH = ArchSpec.parse("d2-w16-relu-instancenorm-avgpool")


def test_same_seed_same_result_and_a_different_seed_other_weights(digits, monkeypatch):
    """What holds on every CPU: the same seed repeats bit for bit on one machine; another seed starts from other
    weights, batches and augmentations, so it trains other weights (its 145-image accuracy may still tie)."""
    train = digits.sample_per_class(5, seed=0)
    a, weights_a = _train_capturing_weights(monkeypatch, ARCH, train, digits, TrainConfig(epochs=20, seed=1), test=True)
    b, weights_b = _train_capturing_weights(monkeypatch, ARCH, train, digits, TrainConfig(epochs=20, seed=1), test=True)
    c, weights_c = _train_capturing_weights(monkeypatch, ARCH, train, digits, TrainConfig(epochs=20, seed=2))
    assert (a.val_acc, a.test_acc) == (b.val_acc, b.test_acc)
    assert all(torch.equal(weights_a[name], weights_b[name]) for name in weights_a)
    assert c.test_acc is None and c.seed == 2
    changed = [name for name in weights_a if not torch.equal(weights_a[name], weights_c[name])]
    assert changed and all(torch.is_floating_point(weights_a[name]) for name in changed)


@pytest.mark.parametrize(
    ("epochs", "rates"), [(1, [0.01]), (2, [0.01, 0.001]), (3, [0.01, 0.001, 0.001]), (4, [0.01, 0.01, 0.001, 0.001])]
)
def test_the_rate_decays_after_half_the_steps_and_a_one_step_run_trains_at_the_configured_rate(
    digits, monkeypatch, epochs, rates
):
    """200 images, batch 256: one optimiser step per epoch. x0.1 from step int(steps / 2) on, never at step 0."""
    seen, step = [], torch.optim.SGD.step

    def record(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", record)
    train_candidate(ARCH, digits.sample_per_class(20, seed=0), digits, TrainConfig(epochs=epochs, lr=0.01))
    assert seen == pytest.approx(rates)


def test_one_cycle_warms_up_to_the_peak_then_anneals_over_the_run_whatever_its_length(digits, monkeypatch):
    """The reference's schedule: up to lr over the first `warmup` of the steps, cosine down to ~0 by the last,
    momentum untouched; 100 images in batches of 10 = 10 steps per epoch."""
    seen, step = [], torch.optim.SGD.step

    def record(self, *args, **kwargs):
        seen.append((self.param_groups[0]["lr"], self.param_groups[0]["momentum"]))
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", record)
    for epochs in (2, 6):
        seen.clear()
        train_candidate(
            ARCH,
            digits.sample_per_class(10, seed=0),
            digits,
            TrainConfig(epochs=epochs, lr=0.02, batch_size=10, schedule="onecycle", warmup=0.25),
        )
        rates = [lr for lr, _ in seen]
        peak = rates.index(max(rates))
        assert len(rates) == 10 * epochs and max(rates) == pytest.approx(0.02)
        assert peak == round(0.25 * len(rates)) - 1  # the warm-up's last step
        assert all(a < b for a, b in zip(rates[:peak], rates[1 : peak + 1]))  # rising, then falling
        assert all(a > b for a, b in zip(rates[peak:-1], rates[peak + 1 :]))
        assert rates[0] < 0.002 and rates[-1] < 0.001 and {m for _, m in seen} == {0.9}


def test_a_budget_in_steps_trains_exactly_that_many_whatever_the_set_size(digits, monkeypatch):
    """`steps` fixes the optimiser steps (and so the cost) of a small and a larger set alike; a run of as many steps
    as `epochs` would give is the same run, batch for batch."""
    seen, step = [], torch.optim.SGD.step

    def record(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", record)
    for ipc in (2, 7):  # 20 and 70 images in batches of 8: 3 and 9 steps per pass
        seen.clear()
        config = TrainConfig(steps=13, batch_size=8, schedule="onecycle")
        train_candidate(ARCH, digits.sample_per_class(ipc, seed=0), digits, config)
        assert len(seen) == 13 == config.optimiser_steps(10 * ipc) and seen[-1] < 1e-4  # annealed at the budget's end
    assert TrainConfig(steps=13, batch_size=8).presentations(20) == 4 * 20 + 8
    assert TrainConfig(epochs=3, batch_size=8).presentations(20) == 60
    train = digits.sample_per_class(2, seed=0)
    by_epochs = train_candidate(ARCH, train, digits, TrainConfig(epochs=4, batch_size=8))
    by_steps = train_candidate(ARCH, train, digits, TrainConfig(epochs=1, steps=12, batch_size=8))
    assert by_epochs.val_acc == by_steps.val_acc
    assert TrainConfig().key_settings()["steps"] == 0 and TrainConfig(steps=5).key_settings()["steps"] == 5


def test_a_schedule_that_does_not_exist_is_named(digits):
    with pytest.raises(
        NasProxyError, match=r"\[training\].schedule = 'cosine' is not allowed; choose from 'step', 'onecycle'"
    ):
        TrainConfig(schedule="cosine")
    with pytest.raises(NasProxyError, match=r"\[training\].warmup must be between 0 and 1"):
        TrainConfig(schedule="onecycle", warmup=1.0)


def test_training_learns_and_reports_cost(digits):
    result = train_candidate(ARCH, digits.sample_per_class(20, seed=0), digits, TrainConfig(epochs=40), test=True)
    assert result.val_acc > 0.5 and result.test_acc > 0.5  # chance is 0.1
    assert result.params == sum(
        p.numel() for p in build_convnet(ARCH, 1, 10, 16, generator=torch.Generator()).parameters()
    )
    assert result.flops > 0 and result.seconds > 0 and result.train_size == 200 and result.epochs == 40


def test_untrained_network_is_near_chance_so_training_matters(digits):
    trained = train_candidate(ARCH, digits.sample_per_class(20, seed=0), digits, TrainConfig(epochs=40))
    barely = train_candidate(ARCH, digits.sample_per_class(20, seed=0), digits, TrainConfig(epochs=1))
    assert trained.val_acc > barely.val_acc + 0.2


def test_learning_rate_decays_in_place_keeping_momentum(digits, monkeypatch):
    seen = []
    real_step = torch.optim.SGD.step

    def step(self, *args, **kwargs):
        seen.append((self.param_groups[0]["lr"], bool(self.state)))
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    train_candidate(ARCH, digits.sample_per_class(2, seed=0), digits, TrainConfig(epochs=4, lr=0.1))
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
        TrainConfig(epochs=0)
    with pytest.raises(NasProxyError, match="unknown key 'epoch'"):
        TrainConfig.from_dict({"epoch": 3})
    assert TrainConfig.from_dict({"epochs": 3, "lr": 1}).lr == 1.0
    with pytest.raises(
        NasProxyError, match=r"\[training\].precision = 'fp16' is not allowed; choose from 'auto', 'fp32', 'bf16'"
    ):
        TrainConfig(precision="fp16")


@pytest.fixture
def fresh_bf16_probe():
    _accel.native_bf16.cache_clear()
    yield
    _accel.native_bf16.cache_clear()


@pytest.mark.parametrize(
    ("capability", "onednn", "native"),
    [
        ("AVX512", None, True),
        ("AVX2", None, False),
        ("AVX512", "AVX2", False),
        ("AVX512", "AVX512_CORE", False),
        ("AVX512", "AVX512_CORE_BF16", True),
        ("AVX512", "AVX512_CORE_AMX", True),
        ("DEFAULT", None, False),
    ],
)
def test_cpu_bf16_follows_the_kernels_torch_runs_not_only_the_hardware(
    monkeypatch, fresh_bf16_probe, capability, onednn, native
):
    """On BF16 hardware, `auto` is bf16 only while PyTorch runs its AVX-512 kernels with oneDNN allowed to use
    bf16: under ATEN_CPU_CAPABILITY=avx2 / ONEDNN_MAX_CPU_ISA=AVX2 it is an AVX2 machine (issue 21)."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    if onednn is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", onednn)
    assert _accel.native_bf16("cpu") is native
    assert _accel.resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")


def test_under_avx2_kernels_auto_is_fp32_on_any_cpu(tmp_path):
    """The real variable, in a fresh process: what an AVX-512 machine reproducing an AVX2 one runs."""
    script = (
        "import torch; from nas_proxy import _accel; "
        "print(_accel.cpu_capability(), _accel.resolve_precision('auto', 'cpu'))"
    )
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    capability, precision = out.stdout.split()
    assert capability in ("AVX2", "DEFAULT") and precision == "fp32"


@pytest.mark.parametrize(
    ("capability", "chosen", "expected"),
    [
        ("avx2", None, "torchinductor_{user}_avx2"),  # lowered: a folder of its own
        ("AVX2", "mine", "mine"),  # the user's folder is the user's choice
        (None, None, None),  # the machine's own kernels: PyTorch's own default folder
    ],
)
def test_compiled_kernels_of_a_lowered_instruction_set_are_cached_apart(tmp_path, capability, chosen, expected):
    """Inductor served AVX-512 kernels to an avx2 run from one cache (NaN losses, measured): a fresh process with
    the variable set, as `.ci/run`'s second pass starts, compiles into a folder named after it."""
    import getpass

    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "TORCHINDUCTOR_CACHE_DIR")}
    env["TMPDIR"] = str(tmp_path)
    if capability:
        env["ATEN_CPU_CAPABILITY"] = capability
    if chosen:
        env["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path / chosen)
    # can_compile() asks Inductor for its folder first, as a run does before it compiles; cache_dir() is the
    # folder Inductor then reads and writes its kernels in.
    script = (
        "import nas_proxy; from nas_proxy import _accel; _accel.can_compile('cpu'); "
        "from torch._inductor.runtime.cache_dir_utils import cache_dir; print(cache_dir())"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    folder = out.stdout.strip()
    if expected is None:
        assert folder == str(tmp_path / f"torchinductor_{getpass.getuser()}")
    else:
        assert folder == str(tmp_path / expected.format(user=getpass.getuser()))


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

BATCH = [
    ArchSpec.parse(a)
    for a in (
        "d1-w16-relu-none-maxpool",
        "d2-w16-sigmoid-batchnorm-avgpool",
        "d2-w16-leakyrelu-instancenorm-maxpool",
        "d1-w32-relu-layernorm-avgpool",
        "d2-w16-relu-groupnorm-avgpool",
    )
]


def _capture_weights(monkeypatch) -> dict[str, dict[str, torch.Tensor]]:
    """Trained weights by architecture id, captured when each network is scored (thread-safe: one key each)."""
    import nas_proxy.method._train

    weights, real_accuracy = {}, nas_proxy.method._train.accuracy

    def accuracy(net, *a, **k):
        weights.setdefault(net.arch.id, {n: t.detach().cpu().clone() for n, t in net.state_dict().items()})
        return real_accuracy(net, *a, **k)

    monkeypatch.setattr(nas_proxy.method._train, "accuracy", accuracy)
    return weights


def test_training_together_equals_one_at_a_time(digits, monkeypatch):
    """The stated tolerance on a CPU: bit for bit at the same kernel thread count (each candidate of a batch runs
    on one), and within 2 validation images of a run on more threads (their reductions round differently)."""
    train = digits.sample_per_class(5, seed=0)
    config = TrainConfig(epochs=6, seed=3)
    weights = _capture_weights(monkeypatch)
    threads = torch.get_num_threads()
    alone_default = {arch.id: train_candidate(arch, train, digits, config, test=True) for arch in BATCH}
    torch.set_num_threads(1)
    weights.clear()
    try:
        alone = {arch.id: train_candidate(arch, train, digits, config, test=True) for arch in BATCH}
    finally:
        torch.set_num_threads(threads)
    alone_weights = dict(weights)
    weights.clear()
    together = train_candidates(BATCH, train, digits, dataclasses.replace(config, jobs=3), test=True)
    assert torch.get_num_threads() == threads  # the kernel threads are given back
    assert [r.arch for r in together] == [a.id for a in BATCH]
    for result in together:
        assert (result.val_acc, result.test_acc) == (alone[result.arch].val_acc, alone[result.arch].test_acc)
        assert all(torch.equal(t, alone_weights[result.arch][n]) for n, t in weights[result.arch].items())
        assert abs(result.val_acc - alone_default[result.arch].val_acc) <= 2 / len(digits.val)
    assert concurrent_jobs(TrainConfig(), torch.device("cpu"), 10) == torch.get_num_threads()
    assert concurrent_jobs(TrainConfig(jobs=8), torch.device("cpu"), 3) == 3
    assert concurrent_jobs(TrainConfig(), torch.device("cuda"), 10) == 1
    assert concurrent_jobs(TrainConfig(jobs=4, compile=True), torch.device("cpu"), 10) == 1  # compile: one thread
    assert "jobs" not in TrainConfig(jobs=4).key_settings()  # speed only: cached results are shared


def test_a_failing_candidate_stops_the_batch_and_gives_back_the_threads(digits, monkeypatch):
    steps, real_step = [], torch.optim.SGD.step

    def step(self, *args, **kwargs):
        steps.append(1)
        return real_step(self, *args, **kwargs)

    import nas_proxy.method._train

    real_build = nas_proxy.method._train.build_convnet

    def build(arch, *args, **kwargs):
        if arch == BATCH[2]:
            time.sleep(0.5)  # the other candidate is training by now
            raise NasProxyError("out of memory, say")
        return real_build(arch, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    monkeypatch.setattr(nas_proxy.method._train, "build_convnet", build)
    threads = torch.get_num_threads()
    with pytest.raises(NasProxyError, match="out of memory"):
        train_candidates(
            [BATCH[2], BATCH[0], BATCH[1]], digits.sample_per_class(2, seed=0), digits, TrainConfig(epochs=2000, jobs=2)
        )
    assert 0 < len(steps) < 2000  # the healthy candidate stopped at its next step; the waiting one never started
    assert torch.get_num_threads() == threads
    with pytest.raises(NasProxyError, match=r"\[training\].jobs.*>= 0"):
        TrainConfig(jobs=-1)


_MALLINFO = """
import ctypes, ctypes.util, sys
from nas_proxy import _accel
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
if not hasattr(libc, "mallinfo2"):
    sys.exit(3)
libc.mallinfo2.restype, libc.malloc.restype = MallInfo2, ctypes.c_void_p
if sys.argv[1] == "tuned":
    _accel.tune_cpu_allocator()
before = libc.mallinfo2().hblks
block = libc.malloc(64 << 20)  # an activation-sized block
print(libc.mallinfo2().hblks - before)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc allocator settings")
@pytest.mark.parametrize(("mode", "mapped"), [("default", "1"), ("tuned", "0")])
def test_cpu_allocator_tuning_serves_large_blocks_from_the_heap(mode, mapped):
    """glibc maps a 64 MB block with a fresh mmap (a page fault per page each time it is reused); tuned, the block
    comes from the heap. Fresh processes: the tuning is process-wide and applied once."""
    out = subprocess.run([sys.executable, "-c", _MALLINFO, mode], capture_output=True, text=True, timeout=120)
    if out.returncode == 3:
        pytest.skip("glibc without mallinfo2 (before 2.33)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [mapped]


def test_bf16_training_is_deterministic_and_as_accurate_as_fp32(digits):
    train = digits.sample_per_class(20, seed=0)
    fp32 = train_candidate(ARCH, train, digits, TrainConfig(epochs=40, precision="fp32"))
    bf16 = [train_candidate(ARCH, train, digits, TrainConfig(epochs=40, precision="bf16")) for _ in range(2)]
    assert bf16[0].val_acc == bf16[1].val_acc
    assert abs(bf16[0].val_acc - fp32.val_acc) < 0.05


def test_compiled_training_matches_eager(digits):
    """torch.compile (channels_last on a CPU) changes speed, not the result beyond rounding."""
    train = digits.sample_per_class(10, seed=0)
    eager = train_candidate(ARCH, train, digits, TrainConfig(epochs=8, precision="fp32"), test=True)
    compiled = train_candidate(ARCH, train, digits, TrainConfig(epochs=8, precision="fp32", compile=True), test=True)
    assert abs(compiled.val_acc - eager.val_acc) <= 2 / len(digits.val)
    assert abs(compiled.test_acc - eager.test_acc) <= 2 / len(digits.test)
    assert "compile" not in TrainConfig(compile=True).key_settings()  # cached results are shared with eager runs


def test_one_process_compiles_every_architecture_once_and_none_falls_back_to_eager(digits, monkeypatch):
    """Dynamo keys graphs on ConvNet.forward, shared by every architecture: before, the partial last batch gave each
    network a second graph and the 5th network passed the recompile limit (8) and trained eagerly, silently.
    Dynamo's decisions do not depend on the backend, so the test compiles with aot_eager (no C++ build)."""
    from torch._dynamo.utils import counters

    compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda net, **kw: compile(net, backend="aot_eager", **kw))
    archs = [
        ArchSpec.parse(f"d{depth}-w{width}-relu-{norm}-avgpool")
        for depth in (1, 2)
        for width in (8, 16)
        for norm in ("none", "batchnorm")
    ] + [ArchSpec.parse("d3-w8-sigmoid-instancenorm-maxpool")]
    train = digits.sample_per_class(10, seed=0)  # 100 images, batch 32: three full batches and a partial one
    counters.clear()
    train_candidates(archs, train, digits, TrainConfig(epochs=2, batch_size=32, compile=True))
    fallbacks = [reason for reason in counters["unimplemented"] if "recompile limit" in reason.lower()]
    assert not fallbacks
    assert counters["stats"]["unique_graphs"] == len(archs)  # one graph per network, none per batch size


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_in_auto_precision_tracks_fp32_on_cpu(digits):
    cuda = load_dataset("digits", device="cuda")
    train = digits.sample_per_class(20, seed=0)
    on_cpu = train_candidate(ARCH, train, digits, TrainConfig(epochs=40, precision="fp32"))
    for compile in (False, True):
        on_gpu = train_candidate(ARCH, train, cuda, TrainConfig(epochs=40, compile=compile))
        assert abs(on_gpu.val_acc - on_cpu.val_acc) < 0.05


# --- deterministic (issue 12, item 8) -----------------------------------------------------------------------------


def _train_capturing_weights(monkeypatch, *args, **kwargs):
    """train_candidate(...) and the trained weights (captured when it scores the network)."""
    weights = _capture_weights(monkeypatch)
    result = train_candidate(*args, **kwargs)
    return result, weights[result.arch]


def test_deterministic_runs_and_is_bit_identical_on_a_cpu(digits, monkeypatch):
    """Accepted and harmless on a CPU: the same weights and scores twice, and the same as without it."""
    train = digits.sample_per_class(10, seed=0)
    runs = [
        _train_capturing_weights(monkeypatch, ARCH, train, digits, TrainConfig(epochs=6, deterministic=flag), test=True)
        for flag in (True, True, False)
    ]
    (a, wa), (b, wb), (c, wc) = runs
    assert (a.val_acc, a.test_acc) == (b.val_acc, b.test_acc) == (c.val_acc, c.test_acc)
    for name in wa:
        assert torch.equal(wa[name], wb[name]) and torch.equal(wa[name], wc[name]), name
    assert not torch.are_deterministic_algorithms_enabled()  # nothing leaks out of the call
    assert TrainConfig(deterministic=True).key_settings() == TrainConfig().key_settings()  # not a cache key


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


def test_cudnn_autotuning_is_on_while_training_on_cuda_and_the_callers_setting_comes_back(monkeypatch):
    cudnn = torch.backends.cudnn
    monkeypatch.setattr(cudnn, "benchmark", False)
    with _accel.deterministic("cpu", enabled=False):
        assert not cudnn.benchmark  # nothing to tune on a CPU
    with pytest.raises(RuntimeError), _accel.deterministic("cuda", enabled=False):
        assert cudnn.benchmark and not torch.are_deterministic_algorithms_enabled()
        raise RuntimeError("restored on errors too")
    assert not cudnn.benchmark


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_deterministic_cuda_training_is_bit_identical(digits, monkeypatch):
    """Without ``deterministic``, atomics in CUDA kernels can change a score between identical runs."""
    cuda = load_dataset("digits", device="cuda")
    config = TrainConfig(epochs=10, deterministic=True)
    (a, wa), (b, wb) = (
        _train_capturing_weights(monkeypatch, ARCH, cuda.train, cuda, config, test=True) for _ in range(2)
    )
    assert (a.val_acc, a.test_acc) == (b.val_acc, b.test_acc)
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name
    assert not torch.are_deterministic_algorithms_enabled()


def test_a_training_step_reads_nothing_back_from_the_device(digits):
    """On the meta device any read of a value raises: the steps (augmented, scheduled, losses kept) run there, so
    on a GPU the host never waits for the device until the run's end."""
    from nas_proxy.method._train import _fit

    meta = digits.to("meta")
    generator = torch.Generator().manual_seed(0)
    for norm, dsa in (("instancenorm", "auto"), ("batchnorm", "none")):
        net = build_convnet(
            ArchSpec.parse(f"d2-w16-relu-{norm}-avgpool"), 1, 10, digits.image_size, generator=generator, device="meta"
        )
        config = TrainConfig(epochs=3, batch_size=48, dsa_strategy=dsa, schedule="onecycle")
        losses, _ = _fit(net, net, meta, generator, "fp32", torch.contiguous_format, None, meta.train, config, (), None)
        assert losses.device.type == "meta" and len(losses) == config.optimiser_steps(len(digits.train))
