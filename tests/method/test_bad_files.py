"""Files a user hands back (condensed sets, checkpoints) are checked explicitly, also under ``python -O``."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import pytest
import torch
from test_condense import Crash, crash_after

from nas_proxy import NasProxyError, condense
from nas_proxy.method import CondenseConfig, CondensedSet
from nas_proxy.method._condensed_set import FORMAT

CONFIG = CondenseConfig(
    iterations=3, ipc=2, batch_real=16, checkpoint_every=1, compile=False, embed_arch="d1-w8-relu-instancenorm-avgpool"
)


def _set(**change) -> dict:
    blob = {
        "format": FORMAT,
        "images": torch.zeros(20, 1, 16, 16),
        "labels": torch.arange(10).repeat_interleave(2),
        "meta": {"dataset": "digits"},
    }
    return {k: v for k, v in {**blob, **change}.items() if v is not None}


BAD_SETS = {
    "not a dict": ([torch.zeros(2)], "another kind of file: it has no 'format' entry"),
    "no format": (_set(format=None), "another kind of file: it has no 'format' entry"),
    "other format": (
        _set(format="nas-proxy-condensed/0"),
        "format 'nas-proxy-condensed/0', expected 'nas-proxy-condensed/1'",
    ),
    "no labels": (_set(labels=None), "it has no 'labels'"),
    "meta not a dict": (_set(meta=[1]), "its 'meta' is of type list, expected dict"),
    "flat images": (_set(images=torch.zeros(20, 256)), r"images of shape \(20, 256\)"),
    "integer images": (_set(images=torch.zeros(20, 1, 16, 16, dtype=torch.uint8)), "expected float"),
    "float labels": (_set(labels=torch.zeros(20)), "expected integer"),
    "fewer labels": (_set(labels=torch.arange(10)), "20 images and 10 labels"),
    "empty": (_set(images=torch.zeros(0, 1, 16, 16), labels=torch.zeros(0, dtype=torch.long)), "0 images"),
    "negative labels": (_set(labels=torch.full((20,), -1)), "negative labels"),
    "one class": (_set(labels=torch.zeros(20, dtype=torch.long)), "images of one class only; a set needs at least 2"),
    "NaN images": (_set(images=torch.full((20, 1, 16, 16), float("nan"))), "its images hold NaN or infinite values"),
    "inf images": (
        _set(images=torch.zeros(20, 1, 16, 16).index_fill(0, torch.tensor([3]), float("inf"))),
        "NaN or inf",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_SETS))
def test_a_bad_condensed_set_is_refused_in_one_line(name, tmp_path):
    blob, message = BAD_SETS[name]
    torch.save(blob, tmp_path / "set.pt")
    with pytest.raises(NasProxyError, match=message) as error:
        CondensedSet.load(tmp_path / "set.pt")
    text = str(error.value)
    assert text.startswith(f"{tmp_path / 'set.pt'} is not a readable nas-proxy condensed set (")
    assert text.endswith("re-create it with `nas-proxy condense`") and "\n" not in text


def test_a_good_condensed_set_still_loads(tmp_path):
    torch.save(_set(), tmp_path / "set.pt")
    assert CondensedSet.load(tmp_path / "set.pt").images.shape == (20, 1, 16, 16)


@pytest.fixture(scope="module")
def checkpoint(digits, tmp_path_factory) -> dict:
    """The state a killed run left after its first iteration."""
    path = tmp_path_factory.mktemp("checkpoint") / "run.ckpt"
    with pytest.MonkeyPatch.context() as monkeypatch:
        crash_after(monkeypatch, 1)
        with pytest.raises(Crash):
            condense(digits, CONFIG, checkpoint=path, progress=False)
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda state: _set(), "format 'nas-proxy-condensed/1', expected 'nas-proxy-condense-checkpoint/1'"),
        (lambda state: {k: v for k, v in state.items() if k != "optimizer"}, "it has no 'optimizer'"),
        (lambda state: {**state, "iteration": "1"}, "its 'iteration' is of type str, expected int"),
    ],
    ids=["a condensed set", "no optimizer", "iteration not a number"],
)
def test_a_bad_checkpoint_is_refused_in_one_line(digits, checkpoint, tmp_path, change, message):
    path = tmp_path / "run.ckpt"
    torch.save(change(checkpoint), path)
    with pytest.raises(NasProxyError, match=message) as error:
        condense(digits, CONFIG, checkpoint=path, resume=True, progress=False)
    assert str(error.value).startswith(f"checkpoint {path} is unreadable (")
    assert str(error.value).endswith("delete it to start over") and "\n" not in str(error.value)


class _Other:
    """An object of another program's: no nas-proxy file holds one."""


def _good_file(path):
    torch.save(_set(), path)
    return path.read_bytes()


# Each way a file can fail to load says what went wrong and what to do (issue 21: every failure used to read as
# "corrupt"). Root reads through file modes, so an unreadable file is an OSError from torch.load itself.
READ_FAILURES = {
    # torch's zip reader raises OSError(EINVAL) for a file cut past its first records: not a permissions problem
    "cut in half": (
        lambda path: path.write_bytes((whole := _good_file(path))[: len(whole) // 2]),
        r"is cut short or corrupt \(its zip archive ends early\)",
    ),
    "cut short": (
        lambda path: path.write_bytes(_good_file(path)[:300]),
        "is cut short or is not a PyTorch file "
        r"\(RuntimeError: PytorchStreamReader",
    ),
    "empty": (lambda path: path.write_bytes(b""), r"is cut short or is not a PyTorch file \(EOFError\)"),
    "text": (lambda path: path.write_text("arch,val_acc\n"), "is cut short or is not a PyTorch file"),
    "garbage": (lambda path: path.write_bytes(b"\x00garbage"), r"is cut short or is not a PyTorch file \(not a pickle"),
    "another program's objects": (
        lambda path: torch.save({"format": FORMAT, "x": _Other()}, path),
        "holds Python objects that no nas-proxy (condensed set|checkpoint) holds",
    ),
    "no permission": (
        None,
        r"cannot read the (condensed set|checkpoint) .* \(Permission denied\); check the "
        r"file's permissions",
    ),
}


@pytest.mark.parametrize("what", ["set", "checkpoint"])
@pytest.mark.parametrize("name", sorted(READ_FAILURES))
def test_a_file_that_does_not_load_says_why(digits, tmp_path, monkeypatch, name, what):
    write, message = READ_FAILURES[name]
    path = tmp_path / ("set.pt" if what == "set" else "run.ckpt")
    if write is None:
        path.write_bytes(_good_file(path))
        monkeypatch.setattr(
            torch, "load", lambda *a, **k: (_ for _ in ()).throw(PermissionError(13, "Permission denied"))
        )
    else:
        write(path)
    with pytest.raises(NasProxyError, match=message) as error:
        if what == "set":
            CondensedSet.load(path)
        else:
            condense(digits, CONFIG, checkpoint=path, resume=True, progress=False)
    text = str(error.value)
    assert "\n" not in text and str(path) in text
    assert "permissions" in text or text.endswith(
        "re-create it with `nas-proxy condense`" if what == "set" else "delete it to start over"
    )


def test_a_file_of_a_newer_format_asks_for_a_newer_nas_proxy(digits, checkpoint, tmp_path):
    torch.save(_set(format="nas-proxy-condensed/2"), tmp_path / "set.pt")
    with pytest.raises(
        NasProxyError,
        match=r"format 'nas-proxy-condensed/2', expected 'nas-proxy-condensed/1'\); "
        r"it was written by a newer nas-proxy than this one \(.*\): upgrade "
        r"nas-proxy, or re-create it",
    ):
        CondensedSet.load(tmp_path / "set.pt")
    torch.save({**checkpoint, "format": "nas-proxy-condense-checkpoint/7"}, tmp_path / "run.ckpt")
    with pytest.raises(NasProxyError, match="written by a newer nas-proxy .* upgrade nas-proxy, or delete it"):
        condense(digits, CONFIG, checkpoint=tmp_path / "run.ckpt", resume=True, progress=False)
    torch.save(_set(format="nas-proxy-condensed/0"), tmp_path / "set.pt")  # an older one: only re-creating helps
    with pytest.raises(NasProxyError, match=r"expected 'nas-proxy-condensed/1'\); re-create it"):
        CondensedSet.load(tmp_path / "set.pt")


def test_the_checks_hold_under_python_O(digits, checkpoint, tmp_path):
    """``python -O`` drops ``assert`` statements; the checks of user files must not be among them."""
    torch.save(_set(format="nas-proxy-condensed/0"), tmp_path / "set.pt")
    torch.save({**checkpoint, "format": "nas-proxy-condense-checkpoint/0"}, tmp_path / "run.ckpt")
    script = textwrap.dedent(f"""
        import sys
        from nas_proxy import NasProxyError, condense, load_dataset
        from nas_proxy.method import CondenseConfig, CondensedSet
        assert False, "asserts run: not optimised"  # skipped under -O
        try:
            CondensedSet.load({str(tmp_path / "set.pt")!r})
        except NasProxyError as error:
            print(error)
        try:
            condense(load_dataset("digits"), CondenseConfig(**{dataclasses.asdict(CONFIG)!r}),
                     checkpoint={str(tmp_path / "run.ckpt")!r}, resume=True, progress=False)
        except NasProxyError as error:
            print(error)
    """)
    out = subprocess.run([sys.executable, "-O", "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2, out.stdout
    assert "is not a readable nas-proxy condensed set (format 'nas-proxy-condensed/0'" in lines[0]
    assert "is unreadable (format 'nas-proxy-condense-checkpoint/0'" in lines[1]


@pytest.mark.parametrize(
    "lr_img, iterations, message",
    [
        # The first step throws the images out of range; the checkpoint after it (finite) stays, named in the message.
        (1e30, 3, r"at iteration 2 \(its matching loss is nan\)"),
        # The last step makes them infinite: no loss is read after it, and the images are checked before the return.
        (3e38, 1, r"at iteration 1 \(its images hold NaN or infinite values\)"),
    ],
)
def test_a_diverging_condensation_stops_and_saves_no_set_or_checkpoint_of_nan(
    digits, tmp_path, lr_img, iterations, message
):
    path = tmp_path / "run.ckpt"
    config = dataclasses.replace(CONFIG, lr_img=lr_img, iterations=iterations)
    with pytest.raises(NasProxyError, match=message) as error:
        condense(digits, config, checkpoint=path, progress=False)
    text = str(error.value)
    assert "\n" not in text and f"lower [condense].lr_img (now {lr_img:g}), e.g. tenfold, and " in text
    assert path.exists() == (iterations > 1)
    if path.exists():
        assert torch.isfinite(torch.load(path, weights_only=True)["images"]).all()
        assert text.endswith(f"delete {path} and run again")
