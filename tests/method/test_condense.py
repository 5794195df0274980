import os

import pytest
import torch

import nas_proxy.method._condense
import nas_proxy.method._matching
from nas_proxy import ArchSpec, NasProxyError, condense
from nas_proxy.method import CondenseConfig, CondensedSet, build_convnet
from nas_proxy.method._matching import matching_loss

SMALL = dict(ipc=2, batch_real=32, embed_arch="d2-w16-relu-instancenorm-avgpool")


class Crash(Exception):
    pass


def crash_after(monkeypatch, iterations):
    """Make condense() die at the start of iteration ``iterations`` (0-based), as a killed process would."""
    calls = {"n": 0}
    real_init = nas_proxy.method._matching.init_parameters

    def init(net, generator):
        calls["n"] += 1
        if calls["n"] > iterations:
            raise Crash
        return real_init(net, generator)

    monkeypatch.setattr(nas_proxy.method._matching, "init_parameters", init)


def test_condensation_lowers_the_matching_loss(digits):
    syn = condense(digits, CondenseConfig(iterations=40, **SMALL), progress=False)
    losses = syn.meta["losses"]
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    assert syn.images.shape == (20, 1, 16, 16) and syn.labels.tolist() == [c for c in range(10) for _ in range(2)]


def test_same_seed_same_set_and_different_seed_differs(digits):
    a = condense(digits, CondenseConfig(iterations=5, seed=1, **SMALL), progress=False)
    b = condense(digits, CondenseConfig(iterations=5, seed=1, **SMALL), progress=False)
    c = condense(digits, CondenseConfig(iterations=5, seed=2, **SMALL), progress=False)
    assert torch.equal(a.images, b.images) and a.meta["losses"] == b.meta["losses"]
    assert not torch.equal(a.images, c.images)


def test_resume_from_checkpoint_matches_an_uninterrupted_run(digits, tmp_path, monkeypatch):
    config = CondenseConfig(iterations=12, checkpoint_every=5, **SMALL)
    whole = condense(digits, config, progress=False)
    checkpoint = tmp_path / "run.ckpt"
    # Crash in iteration 8: the checkpoint of iteration 5 survives, iterations 6-7 are lost.
    with monkeypatch.context() as patch, pytest.raises(Crash):
        crash_after(patch, 7)
        condense(digits, config, checkpoint=checkpoint, progress=False)
    assert checkpoint.is_file()
    resumed = condense(digits, config, checkpoint=checkpoint, resume=True, progress=False)
    assert torch.equal(whole.images, resumed.images)
    assert whole.meta["losses"] == resumed.meta["losses"]
    assert not checkpoint.exists()


def test_resume_refuses_other_settings(digits, tmp_path, monkeypatch):
    checkpoint = tmp_path / "run.ckpt"
    with monkeypatch.context() as patch, pytest.raises(Crash):
        crash_after(patch, 3)
        condense(
            digits, CondenseConfig(iterations=6, checkpoint_every=2, **SMALL), checkpoint=checkpoint, progress=False
        )
    with pytest.raises(NasProxyError, match="lr_img"):
        condense(
            digits,
            CondenseConfig(iterations=6, lr_img=0.5, checkpoint_every=2, **SMALL),
            checkpoint=checkpoint,
            resume=True,
            progress=False,
        )


def test_batched_loss_equals_a_per_class_loop(digits):
    """All classes in one pass gives the per-class loss of the paper to float tolerance."""
    generator = torch.Generator().manual_seed(0)
    net = build_convnet(ArchSpec.parse("d3-w32-relu-instancenorm-avgpool"), 1, 10, 16, generator=generator)
    real = digits.train.subset(torch.arange(300))
    syn = digits.sample_per_class(3, seed=1)
    batched = matching_loss(net.embed, real.x, real.y, syn.x, syn.y, 10, chunk=64)
    looped = sum(
        ((net.embed(real.x[real.y == c]).mean(0) - net.embed(syn.x[syn.y == c]).mean(0)) ** 2).sum() for c in range(10)
    )
    torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-6)


def test_gradient_reaches_every_synthetic_image(digits):
    generator = torch.Generator().manual_seed(0)
    net = build_convnet(ArchSpec.parse("d2-w16-relu-instancenorm-avgpool"), 1, 10, 16, generator=generator)
    syn = digits.sample_per_class(2, seed=0)
    images = syn.x.clone().requires_grad_(True)
    matching_loss(net.embed, digits.train.x[:200], digits.train.y[:200], images, syn.y, 10, chunk=50).backward()
    assert (images.grad.flatten(1).abs().sum(1) > 0).all()


def test_save_load_round_trip_with_provenance_and_png(digits, tmp_path):
    syn = condense(digits, CondenseConfig(iterations=2, **SMALL), progress=False)
    path = syn.save(tmp_path / "syn.pt")
    png = (tmp_path / "syn.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    loaded = CondensedSet.load(path, digits)
    assert torch.equal(loaded.images, syn.images) and torch.equal(loaded.labels, syn.labels)
    meta = loaded.meta
    assert meta["dataset"] == "digits" and meta["ipc"] == 2 and meta["iterations"] == 2
    assert meta["fingerprint"] == digits.fingerprint and meta["config"]["lr_img"] == 1.0
    assert {"torch", "numpy", "nas_proxy", "python"} <= set(meta["versions"]) and meta["seconds"] > 0
    assert not list(tmp_path.glob("*.tmp"))
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_loading_a_corrupt_or_foreign_set_names_the_problem(digits, tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file")
    with pytest.raises(NasProxyError, match="corrupt.pt is cut short or is not a PyTorch file"):
        CondensedSet.load(corrupt, digits)
    assert corrupt.read_bytes() == b"not a torch file"
    syn = condense(digits, CondenseConfig(iterations=1, **SMALL), progress=False)
    syn.meta["dataset"] = "mnist"
    syn.save(tmp_path / "mnist.pt", png=False)
    with pytest.raises(NasProxyError, match="condensed from 'mnist'"):
        CondensedSet.load(tmp_path / "mnist.pt", digits)
    syn.meta["dataset"] = "digits"
    CondensedSet(syn.images[:, :, :8, :8], syn.labels, syn.meta).save(tmp_path / "small.pt", png=False)
    with pytest.raises(NasProxyError, match="re-condense"):
        CondensedSet.load(tmp_path / "small.pt", digits)
    with pytest.raises(NasProxyError, match="not found"):
        CondensedSet.load(tmp_path / "missing.pt", digits)


def test_ipc_larger_than_a_class_is_an_error(digits):
    with pytest.raises(NasProxyError, match="class '0' of digits has 128 training images"):
        condense(digits, CondenseConfig(ipc=10_000, iterations=1, embed_arch=SMALL["embed_arch"]), progress=False)


def test_config_rejects_bad_values():
    with pytest.raises(NasProxyError, match="ipc"):
        CondenseConfig(ipc=0)
    with pytest.raises(NasProxyError, match="unknown DSA op"):
        CondenseConfig(dsa_strategy="color_blur")
    with pytest.raises(NasProxyError, match="unknown key 'ipcs'"):
        CondenseConfig.from_dict({"ipcs": 3})
    with pytest.raises(NasProxyError, match=r"\[condense\].ipc must be int"):
        CondenseConfig.from_dict({"ipc": "3"})
    assert CondenseConfig.from_dict({"ipc": 3, "lr_img": 2}).lr_img == 2.0


@pytest.mark.parametrize("norm", ["batchnorm", "instancenorm"])
def test_batchnorm_embedding_keeps_the_real_batch_whole(digits, monkeypatch, norm):
    """Batch norm couples a forward pass's images: all classes' real images go through in one pass,
    whatever ``real_chunk`` says; a per-sample norm is chunked."""
    passes = []  # (batch size, with gradients) of every embedding pass
    real_embed = nas_proxy.method._model.ConvNet.embed

    def embed(self, x):
        passes.append((len(x), torch.is_grad_enabled()))
        return real_embed(self, x)

    monkeypatch.setattr(nas_proxy.method._model.ConvNet, "embed", embed)
    syn = condense(
        digits,
        CondenseConfig(
            iterations=2, ipc=2, batch_real=32, real_chunk=16, compile=False, embed_arch=f"d2-w16-relu-{norm}-avgpool"
        ),
        progress=False,
    )
    real = [(10 * 32, False)] if norm == "batchnorm" else [(16, False)] * 20
    assert passes == (real + [(10 * 2, True)]) * 2
    assert torch.isfinite(syn.images).all()


@pytest.mark.parametrize(
    "settings",
    [dict(precision="bf16"), dict(precision="fp32", compile=True), dict(precision="bf16", compile=True)],
    ids=["bf16", "compile", "bf16+compile"],
)
def test_speed_options_follow_the_fp32_run(digits, settings):
    """bf16 autocast and torch.compile change speed, not the method: losses track the fp32 run's."""
    reference = condense(digits, CondenseConfig(iterations=4, precision="fp32", **SMALL), progress=False)
    fast = condense(digits, CondenseConfig(iterations=4, **SMALL, **settings), progress=False)
    assert fast.meta["precision"] == settings["precision"]
    torch.testing.assert_close(
        torch.tensor(fast.meta["losses"]), torch.tensor(reference.meta["losses"]), rtol=2e-2, atol=1e-3
    )


def test_auto_precision_on_a_cpu_is_bf16_only_when_compiled(digits, monkeypatch):
    monkeypatch.setattr("nas_proxy._accel.native_bf16", lambda device_type: True)
    eager = condense(digits, CondenseConfig(iterations=1, **SMALL), progress=False)
    assert eager.meta["precision"] == "fp32"
    compiled = condense(digits, CondenseConfig(iterations=1, compile=True, **SMALL), progress=False)
    assert compiled.meta["precision"] == "bf16"


# --- compile = "auto" and deterministic (issue 12, items 7 and 8) --------------------------------------------------


def test_compile_auto_compiles_long_runs_only(monkeypatch):
    from nas_proxy.method._condense import COMPILE_AUTO_MIN_ITERATIONS, resolve_compile

    monkeypatch.setattr("nas_proxy._accel.can_compile", lambda device_type: True)
    cpu, cuda = COMPILE_AUTO_MIN_ITERATIONS["cpu"], COMPILE_AUTO_MIN_ITERATIONS["cuda"]
    assert CondenseConfig().compile == "auto" and CondenseConfig().iterations >= max(cpu, cuda)
    assert resolve_compile(CondenseConfig(), "cpu") and resolve_compile(CondenseConfig(), "cuda:1")
    assert resolve_compile(CondenseConfig(iterations=cpu), "cpu")
    assert not resolve_compile(CondenseConfig(iterations=cpu - 1), "cpu")
    assert not resolve_compile(CondenseConfig(iterations=100), "cpu")  # the quickstart's run stays eager
    assert resolve_compile(CondenseConfig(iterations=cuda), "cuda") and not resolve_compile(
        CondenseConfig(iterations=cuda - 1), "cuda"
    )
    assert not resolve_compile(CondenseConfig(), "meta")  # a device nobody measured: never under auto
    assert resolve_compile(CondenseConfig(iterations=1, compile=True), "cpu")  # explicit settings are kept
    assert not resolve_compile(CondenseConfig(compile=False), "cpu")
    monkeypatch.setattr("nas_proxy._accel.can_compile", lambda device_type: False)  # no C++ compiler, no Triton
    assert not resolve_compile(CondenseConfig(), "cpu") and not resolve_compile(CondenseConfig(), "cuda")
    assert resolve_compile(CondenseConfig(compile=True), "cpu")  # asked for explicitly: torch.compile says why not


def test_auto_precision_follows_the_resolved_compile_decision(monkeypatch):
    from nas_proxy.method._condense import resolve_precision

    monkeypatch.setattr("nas_proxy._accel.native_bf16", lambda device_type: True)
    assert resolve_precision(CondenseConfig(), "cpu", compiled=True) == "bf16"
    assert resolve_precision(CondenseConfig(), "cpu", compiled=False) == "fp32"
    assert resolve_precision(CondenseConfig(), "cuda", compiled=False) == "bf16"
    assert resolve_precision(CondenseConfig(precision="bf16"), "cpu", compiled=False) == "bf16"
    monkeypatch.setattr("nas_proxy._accel.native_bf16", lambda device_type: False)
    assert resolve_precision(CondenseConfig(), "cpu", compiled=True) == "fp32"


@pytest.mark.parametrize("value", ["yes", 1, None, "on"])
def test_compile_accepts_true_false_or_auto_only(value):
    with pytest.raises(NasProxyError, match="compile"):
        CondenseConfig(compile=value)
    with pytest.raises(NasProxyError, match="compile"):
        CondenseConfig.from_dict({"compile": value})


def test_compile_from_toml_accepts_auto_and_booleans():
    assert CondenseConfig.from_dict({"compile": "auto"}).compile == "auto"
    assert CondenseConfig.from_dict({"compile": True}).compile is True
    assert CondenseConfig.from_dict({"compile": False}).compile is False


def test_a_short_auto_run_is_eager_and_unchanged(digits, monkeypatch):
    """Under the threshold "auto" is the old default (eager, fp32 on a CPU), bit for bit."""
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("a short auto run compiled"))
    auto = condense(digits, CondenseConfig(iterations=3, **SMALL), progress=False)
    eager = condense(digits, CondenseConfig(iterations=3, compile=False, **SMALL), progress=False)
    assert auto.meta["compile"] is False and auto.meta["precision"] == "fp32"
    assert torch.equal(auto.images, eager.images) and auto.meta["losses"] == eager.meta["losses"]


def test_a_resumed_auto_run_keeps_the_decision_it_began_with(tmp_path, monkeypatch):
    from nas_proxy.method._condense import _compile_decision

    monkeypatch.setattr("nas_proxy._accel.can_compile", lambda device_type: True)
    state = {"compiled": False, "config": {"compile": "auto"}}
    long = CondenseConfig(iterations=20_000)
    cpu = torch.device("cpu")
    assert _compile_decision(long, cpu, None, None) is True
    assert _compile_decision(long, cpu, state, tmp_path / "x.ckpt") is False  # began eager: finishes eager
    assert _compile_decision(CondenseConfig(iterations=20_000, compile=False), cpu, state, None) is False
    with pytest.raises(NasProxyError, match="made with compile off but this run asks for compile on"):
        _compile_decision(CondenseConfig(iterations=20_000, compile=True), cpu, state, tmp_path / "x.ckpt")


def test_the_cache_key_holds_the_compile_decision_not_deterministic(digits, tmp_path, monkeypatch):
    from nas_proxy.artifacts import condensed_set_path

    monkeypatch.setattr("nas_proxy._accel.can_compile", lambda device_type: True)

    def path(**settings):
        return condensed_set_path(CondenseConfig(**settings), digits, tmp_path)

    assert path(iterations=20_000, compile="auto") == path(iterations=20_000, compile=True)
    assert path(iterations=100, compile="auto") == path(iterations=100, compile=False)
    assert path(iterations=100, compile=True) != path(iterations=100, compile=False)  # bf16 vs fp32 on a CPU
    assert path(deterministic=True) == path(deterministic=False)


def test_deterministic_condensation_on_a_cpu_is_the_same_set(digits):
    """On a CPU ``deterministic`` changes nothing: the run is bit-identical with or without it."""
    a = condense(digits, CondenseConfig(iterations=3, deterministic=True, **SMALL), progress=False)
    b = condense(digits, CondenseConfig(iterations=3, deterministic=True, **SMALL), progress=False)
    c = condense(digits, CondenseConfig(iterations=3, **SMALL), progress=False)
    assert torch.equal(a.images, b.images) and torch.equal(a.images, c.images)
    assert a.meta["deterministic"] is True and not torch.are_deterministic_algorithms_enabled()


def test_raising_iterations_past_the_threshold_on_resume_finishes_eager(digits, tmp_path, monkeypatch):
    """A checkpoint written by an eager "auto" run is continued eagerly even when the new length would compile."""
    monkeypatch.setattr(nas_proxy.method._condense, "COMPILE_AUTO_MIN_ITERATIONS", {"cpu": 5})
    monkeypatch.setattr("nas_proxy._accel.can_compile", lambda device_type: True)
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("the resumed run compiled"))
    checkpoint = tmp_path / "run.ckpt"
    short = CondenseConfig(iterations=4, checkpoint_every=2, **SMALL)
    with monkeypatch.context() as patch, pytest.raises(Crash):
        crash_after(patch, 3)
        condense(digits, short, checkpoint=checkpoint, progress=False)
    longer = CondenseConfig(iterations=6, checkpoint_every=2, **SMALL)  # "auto" alone would compile this length
    resumed = condense(digits, longer, checkpoint=checkpoint, resume=True, progress=False)
    whole = condense(digits, CondenseConfig(iterations=6, compile=False, **SMALL), progress=False)
    assert resumed.meta["compile"] is False and torch.equal(resumed.images, whole.images)


# --- condensing over a search space, matching every block -----------------------------------------


def test_block_embeddings_end_with_the_embedding(digits):
    net = build_convnet(
        ArchSpec.parse("d3-w16-relu-instancenorm-maxpool"), 1, 10, 16, generator=torch.Generator().manual_seed(0)
    )
    blocks = net.block_embeddings(digits.train.x[:5])
    assert [b.shape[1] for b in blocks] == [16 * 8 * 8, 16 * 4 * 4, 16 * 2 * 2]
    torch.testing.assert_close(blocks[-1], net.embed(digits.train.x[:5]))


def test_the_relative_loss_weighs_every_network_and_block_alike(digits):
    net = build_convnet(
        ArchSpec.parse("d2-w16-relu-none-avgpool"), 1, 10, 16, generator=torch.Generator().manual_seed(0)
    )
    real, syn = digits.train.subset(torch.arange(300)), digits.sample_per_class(2, seed=1)

    def loss(embed, relative=True):
        return matching_loss(embed, real.x, real.y, syn.x, syn.y, 10, chunk=300, relative=relative)

    scaled = loss(lambda x: 1000 * net.embed(x))
    torch.testing.assert_close(scaled, loss(net.embed))  # a network's scale does not change its weight
    assert loss(lambda x: 1000 * net.embed(x), relative=False) > 1e5 * loss(net.embed, relative=False)
    each = [loss(lambda x, b=b: net.block_embeddings(x)[b]) for b in range(2)]
    torch.testing.assert_close(loss(net.block_embeddings), (each[0] + each[1]) / 2)


def test_condensing_over_a_space_draws_its_networks_and_resumes_exactly(digits, tmp_path, monkeypatch):
    config = CondenseConfig(iterations=8, checkpoint_every=3, embed_space="small", match="blocks", **SMALL)
    drawn, crash = [], {"at": None}
    real_build = nas_proxy.method._matching.build_convnet

    def build(arch, *args, **kwargs):  # called once before the loop, then once per iteration
        drawn.append(arch)
        if crash["at"] is not None and len(drawn) > crash["at"]:
            raise Crash
        return real_build(arch, *args, **kwargs)

    monkeypatch.setattr(nas_proxy.method._matching, "build_convnet", build)
    whole = condense(digits, config, progress=False)
    assert len(set(drawn)) >= 4 and whole.meta["compile"] is False  # a new network of the space each iteration
    assert torch.equal(whole.images, condense(digits, config, progress=False).images)
    drawn.clear()
    crash["at"] = 1 + 5  # dies building the network of iteration 6 (0-based 5): the checkpoint of 3 survives
    checkpoint = tmp_path / "run.ckpt"
    with pytest.raises(Crash):
        condense(digits, config, checkpoint=checkpoint, progress=False)
    assert checkpoint.is_file()
    crash["at"] = None
    resumed = condense(digits, config, checkpoint=checkpoint, resume=True, progress=False)
    assert torch.equal(whole.images, resumed.images) and whole.meta["losses"] == resumed.meta["losses"]


def test_a_checkpoint_without_a_setting_is_refused_in_one_line(digits, tmp_path, monkeypatch):
    config = CondenseConfig(iterations=6, checkpoint_every=2, **SMALL)
    checkpoint = tmp_path / "run.ckpt"
    with monkeypatch.context() as patch, pytest.raises(Crash):
        crash_after(patch, 3)
        condense(digits, config, checkpoint=checkpoint, progress=False)
    state = torch.load(checkpoint, weights_only=True)
    for key in ("embed_space", "match"):
        del state["config"][key]
    torch.save(state, checkpoint)  # as an earlier version wrote it
    with pytest.raises(NasProxyError, match=r"run.ckpt has embed_space=None but this run asks for '';"):
        condense(digits, config, checkpoint=checkpoint, resume=True, progress=False)


def test_every_setting_that_changes_a_set_names_it(digits, tmp_path):
    from nas_proxy.artifacts import condensed_set_path

    def path(**settings):
        return condensed_set_path(CondenseConfig(**settings), digits, tmp_path)

    assert len({path(), path(match="blocks"), path(embed_space="small"), path(iterations=7)}) == 4
    assert path(checkpoint_every=3) == path(deterministic=True) == path()  # how it runs, not what it makes


def test_embedding_space_settings_are_checked():
    with pytest.raises(NasProxyError, match=r"\[condense\].embed_space = 'nowhere'"):
        CondenseConfig(embed_space="nowhere")
    with pytest.raises(NasProxyError, match=r"\[condense\].compile must be false"):
        CondenseConfig(embed_space="small", compile=True)
    with pytest.raises(NasProxyError, match=r"\[condense\].match"):
        CondenseConfig(match="every")


# --- no waits on the device in the hot loop (issue 36, item 2) ----------------------------------------------------


@pytest.mark.parametrize("embed_arch", ["d2-w16-relu-instancenorm-avgpool", "d2-w16-relu-batchnorm-maxpool"])
def test_a_dm_iteration_reads_nothing_back_from_the_device(digits, embed_arch):
    """On PyTorch's meta device a tensor has no values: any read of one (.item(), a copy to the host, bincount's
    range, nonzero's size) raises. A DM iteration runs there: on a GPU it never makes the host wait."""
    from nas_proxy.method._matching import _MatchingStep

    config = CondenseConfig(ipc=2, batch_real=16, embed_arch=embed_arch, compile=False)
    meta = digits.to("meta")
    per_class = digits.class_indices()  # on the host: set-up reads them once, before the loop
    images = torch.zeros(digits.num_classes * config.ipc, 1, digits.image_size, digits.image_size, device="meta")
    images.requires_grad_(True)
    labels = torch.arange(digits.num_classes, device="meta").repeat_interleave(config.ipc)
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.SGD([images], lr=config.lr_img, momentum=config.momentum)
    step = _MatchingStep(
        meta,
        config,
        images,
        labels,
        optimizer,
        per_class,
        [ArchSpec.parse(embed_arch)],
        generator,
        generator,
        compiled=False,
        precision="fp32",
    )
    assert step.dsa.families  # the digits' augmentation is on: its draws are part of the loop
    losses = [step() for _ in range(3)]
    assert all(loss.device.type == "meta" and loss.shape == () for loss in losses)


def test_dm_reads_its_loss_once_per_block_and_stops_at_the_iteration_that_diverged(digits, monkeypatch):
    reads = []
    stack = torch.stack

    def counting(tensors, *args, **kwargs):
        if tensors and tensors[0].ndim == 0:  # the losses, stacked to be read at once
            reads.append(len(tensors))
        return stack(tensors, *args, **kwargs)

    monkeypatch.setattr(nas_proxy.method._condense, "LOSS_BLOCK", 4)
    monkeypatch.setattr(nas_proxy.method._condense.torch, "stack", counting)
    config = CondenseConfig(iterations=10, ipc=2, batch_real=16, compile=False)
    result = condense(digits, config, progress=False)
    assert len(result.meta["losses"]) == 10 and reads == [4, 4, 2]
    with pytest.raises(NasProxyError, match="diverged at iteration 2 "):  # read at 4: named where it happened
        condense(digits, CondenseConfig(iterations=6, ipc=2, batch_real=16, compile=False, lr_img=1e30), progress=False)
