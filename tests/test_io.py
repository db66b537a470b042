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
    audio, sr = read_wav(tone, expected_sample_rate=22050, sha256=sha256_file(tone))
    assert sr == 22050 and audio.dtype == np.float32 and len(audio) == 22050
    assert abs(audio.max() - 0.5) < 1e-3


def test_wrong_sample_rate_names_the_fix(tone):
    with pytest.raises(SampleRateError, match="librosa.resample"):
        read_wav(tone, expected_sample_rate=16000)


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


def _float_wav(path, samples, channels=1):
    """A 32-bit float WAV: the one format that can hold NaN and samples beyond [-1, 1]."""
    import soundfile as sf

    data = np.asarray(samples, np.float32)
    sf.write(path, np.repeat(data[:, None], channels, axis=1), 22050, subtype="FLOAT", format="WAV")
    return path


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_float_wav_with_nan_or_inf_is_refused(tmp_path, bad):
    samples = np.zeros(100)
    samples[40] = bad
    path = _float_wav(tmp_path / "nan.wav", samples)
    with pytest.raises(AudioFileError, match=r"nan\.wav holds 1 NaN or infinite sample\(s\) \(the first at sample 40"):
        read_wav(path)
    for mode in ("scale", "clip"):  # no rule can repair a NaN
        with pytest.raises(AudioFileError, match="NaN"):
            read_wav(path, out_of_range=mode)


def test_float_wav_outside_unit_range(tmp_path):
    samples = np.array([0.0, 0.5, -2.0, 1.0, 0.25])
    path = _float_wav(tmp_path / "loud.wav", samples, channels=2)
    with pytest.raises(AudioFileError, match=r"loud\.wav holds float samples outside \[-1, 1\] \(peak 2 at sample 2\)"
                                             r".*out_of_range='scale'.*out_of_range='clip'"):
        read_wav(path)
    scaled, sr = read_wav(path, out_of_range="scale")
    assert sr == 22050 and scaled.dtype == np.float32
    np.testing.assert_array_equal(scaled, samples / 2)
    clipped, _ = read_wav(path, out_of_range="clip")
    np.testing.assert_array_equal(clipped, np.clip(samples, -1, 1))
    in_range = _float_wav(tmp_path / "ok.wav", [0.0, -1.0, 1.0])  # the bounds themselves are in range
    np.testing.assert_array_equal(read_wav(in_range)[0], [0.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="out_of_range must be one of"):
        read_wav(path, out_of_range="normalize")


def test_doctests():
    import doctest

    import ttslab.io

    result = doctest.testmod(ttslab.io)
    assert result.attempted > 0 and result.failed == 0
