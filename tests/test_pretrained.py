"""The shipped checkpoints: listed, checksummed, small, loadable, and refused when damaged."""

from __future__ import annotations

import shutil

import pytest

from ttslab import pretrained
from ttslab.checkpoint import CheckpointError, load_checkpoint

MAX_TOTAL_BYTES = 30_000_000


def test_registry_lists_files_with_matching_checksums_and_logs():
    reg = pretrained.registry()
    assert reg, "no checkpoints registered (scripts/train_pretrained.py)"
    for name, e in reg.items():
        path = pretrained.WEIGHTS / e["file"]
        assert path.stat().st_size == e["bytes"], name
        state = load_checkpoint(path, sha256=e["sha256"])
        assert state["half"], f"{name} should ship as float16"
        assert e["command"].startswith("python -m ttslab.train."), name
        log = pretrained.training_log(name)
        assert log, name


def test_total_size_stays_small_enough_to_ship():
    total = sum(e["bytes"] for e in pretrained.registry().values())
    assert total < MAX_TOTAL_BYTES, f"{total / 1e6:.1f} MB of checkpoints"


@pytest.mark.parametrize("name", pretrained.available())
def test_every_checkpoint_loads_as_its_model(name):
    model = pretrained.load(name)
    n = sum(p.numel() for p in model.parameters())
    assert n == pretrained.entry(name)["parameters"]


def test_unknown_name_and_damaged_copy_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(KeyError, match="available"):
        pretrained.entry("no_such_model")
    name = pretrained.available()[0]
    e = pretrained.entry(name)
    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(pretrained.WEIGHTS / e["file"], weights / e["file"])
    shutil.copy(pretrained.WEIGHTS / (e["file"] + ".sha256"), weights / (e["file"] + ".sha256"))
    data = bytearray((weights / e["file"]).read_bytes())
    data[-100] ^= 0x55
    (weights / e["file"]).write_bytes(bytes(data))
    monkeypatch.setattr(pretrained, "WEIGHTS", weights)
    with pytest.raises(CheckpointError, match="corrupt"):
        pretrained.load(name)
