"""Tests of the checksum rule every model loader shares (ttslab.checkpoint.verify_file, issue 8 §7).

A file with no ``.sha256`` sidecar and no ``sha256=`` cannot be verified: every loader refuses it
with a CheckpointError that says how to fix it, unless the caller passes ``verify=False``.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from ttslab import pretrained
from ttslab.checkpoint import (
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    sidecar,
    verify_file,
    write_sidecar,
)
from ttslab.io import sha256_file

#: every torch loader, by the registry kind of the shipped checkpoint it reads
LOADERS = {
    "judge": ("judge", lambda p, **kw: _judge()(p, **kw)),
    "dnn_voice": ("dnn_en_us_m", lambda p, **kw: _dnn().load(p, **kw)),
    "vocoder": ("vocoder", lambda p, **kw: _neural().from_checkpoint(p, **kw)),
    "fastspeech": ("fastspeech_teacher", lambda p, **kw: _fastspeech()(p, **kw)),
    "load_checkpoint": ("judge", lambda p, **kw: load_checkpoint(p, **kw)),
}
NO_CHECKSUM = r"cannot verify .*no checksum file .*\.sha256 beside it and no sha256= was given"


def _judge():
    from ttslab.models.judge import from_checkpoint

    return from_checkpoint


def _dnn():
    from ttslab.models.dnn_spss import DNNVoice

    return DNNVoice


def _neural():
    from ttslab.vocoders.neural import NeuralVocoder

    return NeuralVocoder


def _fastspeech():
    from ttslab.models.fastspeech import load_fastspeech

    return load_fastspeech


def _flip(path, at=None):
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if at is None else at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def small(tmp_path):
    """A tiny checkpoint with its sidecar and its digest."""
    path = tmp_path / "m.pt"
    digest = save_checkpoint(path, torch.nn.Linear(3, 2), model_config={"n": 3})
    return path, digest


def test_unverifiable_file_is_refused_with_the_fix(small):
    path, digest = small
    sidecar(path).unlink()
    _flip(path)  # the defect: a damaged file with no sidecar used to load
    with pytest.raises(CheckpointError, match=NO_CHECKSUM) as e:
        load_checkpoint(path)
    message = str(e.value)
    assert str(path) in message and "sha256='" in message and "write_sidecar(" in message
    assert "verify=False" in message and "own risk" in message


def test_opt_out_sha256_and_sidecar(small):
    path, digest = small
    sidecar(path).unlink()
    assert load_checkpoint(path, verify=False)["model_config"] == {"n": 3}      # explicit opt-out
    assert load_checkpoint(path, sha256=digest.upper())["model_config"] == {"n": 3}  # checksum from elsewhere
    assert write_sidecar(path) == digest == sha256_file(path)
    assert load_checkpoint(path)["model_config"] == {"n": 3}                     # sidecar written


def test_mismatch_is_corrupt_whatever_the_source(small):
    path, digest = small
    _flip(path)
    with pytest.raises(CheckpointError, match=r"corrupt or was changed.*m\.pt\.sha256"):
        load_checkpoint(path)                       # sidecar mismatch
    with pytest.raises(CheckpointError, match=r"corrupt or was changed.*sha256= given"):
        load_checkpoint(path, sha256=digest)        # given checksum mismatch (it outranks the sidecar)
    sidecar(path).write_text("0" * 64 + "  m.pt\n")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_given_checksum_outranks_the_sidecar(small):
    """A damaged copy may carry a sidecar that matches its damage (the registry case): sha256= decides."""
    path, digest = small
    _flip(path, at=-30)
    write_sidecar(path)  # the sidecar now vouches for the damaged bytes
    with pytest.raises(CheckpointError, match=r"corrupt or was changed.*sha256= given"):
        load_checkpoint(path, sha256=digest)


def test_bad_arguments_are_refused_early(small):
    path, digest = small
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        load_checkpoint(path, sha256="abc")
    with pytest.raises(ValueError, match="contradict"):
        load_checkpoint(path, sha256=digest, verify=False)
    with pytest.raises(TypeError, match="True or False"):
        load_checkpoint(path, verify="no")
    with pytest.raises(CheckpointError, match="not found"):
        verify_file(path.with_name("missing.pt"), verify=False)


@pytest.mark.parametrize("kind", sorted(LOADERS))
def test_every_model_loader_refuses_an_unverifiable_file(kind, tmp_path):
    name, load = LOADERS[kind]
    entry = pretrained.entry(name)
    path = tmp_path / entry["file"]
    shutil.copy(pretrained.WEIGHTS / entry["file"], path)   # a copy without its sidecar
    model = load(path, verify=False)                         # the opt-out loads the intact file
    assert model is not None
    _flip(path, at=-100)
    with pytest.raises(CheckpointError, match=NO_CHECKSUM):
        load(path)
    with pytest.raises(CheckpointError, match="corrupt"):
        load(path, sha256=entry["sha256"])
    shutil.copy(pretrained.WEIGHTS / (entry["file"] + ".sha256"), sidecar(path))
    with pytest.raises(CheckpointError, match="corrupt"):
        load(path)


def test_npz_voices_carry_their_own_checksum(tmp_path):
    """The HMM voice and the VC model hold a checksum inside, so they need no sidecar; sha256= still applies."""
    from ttslab.classical.hts import Voice, VoiceFileError
    from ttslab.classical.vc import VoiceConverter

    path = tmp_path / "voice.npz"
    np.savez(path, meta=np.zeros(3))  # no embedded checksum: refused as damaged
    with pytest.raises(VoiceFileError, match="checksum"):
        Voice.load(path)
    with pytest.raises(VoiceFileError, match=r"corrupt or was changed.*sha256= given"):
        Voice.load(path, sha256="0" * 64)
    with pytest.raises(ValueError, match="checksum mismatch"):
        VoiceConverter.load(path)
    with pytest.raises(ValueError, match=r"corrupt or was changed.*sha256= given"):
        VoiceConverter.load(path, sha256="0" * 64)


def test_pretrained_checks_against_the_registry(tmp_path, monkeypatch):
    name = "judge"
    entry = pretrained.entry(name)
    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(pretrained.WEIGHTS / entry["file"], weights / entry["file"])  # no sidecar: registry checks
    monkeypatch.setattr(pretrained, "WEIGHTS", weights)
    assert pretrained.path(name) == weights / entry["file"]
    assert not pretrained.load(name).training
    _flip(weights / entry["file"], at=-100)
    with pytest.raises(CheckpointError, match="corrupt"):
        pretrained.path(name)


def test_doctests():
    import doctest

    import ttslab.checkpoint

    result = doctest.testmod(ttslab.checkpoint, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
