"""Bad input at the file layer: corrupt, truncated, missing, wrong-rate audio; atomic writes."""

import os

import numpy as np
import pytest

from ttslab.io import (AudioFileError, SampleRateError, atomic_write_bytes, atomic_write_json, read_wav,
                       sha256_file, wav_bytes, write_wav)


@pytest.fixture
def tone(tmp_path):
    t = np.arange(22050) / 22050
    path = tmp_path / "tone.wav"
    write_wav(path, 0.5 * np.sin(2 * np.pi * 220 * t), 22050)
    return path


def test_round_trip(tone):
    audio, sr = read_wav(tone, expected_sr=22050, sha256=sha256_file(tone))
    assert sr == 22050 and audio.dtype == np.float32 and len(audio) == 22050
    assert abs(audio.max() - 0.5) < 1e-3


def test_wrong_sample_rate_names_the_fix(tone):
    with pytest.raises(SampleRateError, match="librosa.resample"):
        read_wav(tone, expected_sr=16000)


def test_truncated_wav(tone, tmp_path):
    bad = tmp_path / "cut.wav"
    bad.write_bytes(tone.read_bytes()[: 44 + 1000])
    with pytest.raises(AudioFileError, match="truncated"):
        read_wav(bad)


def test_corrupt_wav(tmp_path):
    bad = tmp_path / "junk.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(AudioFileError, match="corrupt"):
        read_wav(bad)


def test_missing_wav(tmp_path):
    with pytest.raises(AudioFileError, match="not found"):
        read_wav(tmp_path / "nothing.wav")


def test_checksum_mismatch(tone):
    with pytest.raises(AudioFileError, match="checksum"):
        read_wav(tone, sha256="0" * 64)


def test_nan_audio_is_not_written(tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        write_wav(tmp_path / "x.wav", np.array([0.0, np.nan]), 22050)
    assert not (tmp_path / "x.wav").exists()
    with pytest.raises(ValueError, match="mono"):
        wav_bytes(np.zeros((2, 10)), 22050)


def test_atomic_write_leaves_nothing_half_written(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"b": 1, "a": [1, 2]})
    before = target.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file left behind
    assert before == b'{\n "a": [\n  1,\n  2\n ],\n "b": 1\n}\n'
