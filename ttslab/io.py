"""Safe file input/output: atomic writes, checksums and checked WAV reading.

Every file ttslab writes goes through :func:`atomic_write_bytes` (write to a temporary file in
the same folder, ``fsync``, then ``os.replace``), so an interrupted run never leaves a
half-written file behind. WAV reading checks the sample rate and reports corrupt files clearly.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np


class AudioFileError(ValueError):
    """A WAV file is missing, corrupt, truncated or has the wrong format."""


class SampleRateError(ValueError):
    """Audio arrived at a sample rate other than the one required."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename).

    ``fsync=False`` skips flushing to disk: the rename still means no reader ever sees a partial
    file, but a power cut may lose it. Use it only for files whose checksum is recorded elsewhere
    (e.g. corpus audio listed in a manifest), where a lost file is detected and rebuilt.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj, *, fsync: bool = True) -> Path:
    """JSON with sorted keys and a trailing newline, so equal objects give equal bytes."""
    text = json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """Encode mono audio as a 16-bit PCM WAV (float input in [-1, 1] is clipped and scaled)."""
    import soundfile as sf

    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio (1-D array), got shape {audio.shape}")
    if audio.dtype != np.int16:
        if not np.all(np.isfinite(audio)):
            raise ValueError("audio contains NaN or infinite samples; fix the signal before writing it")
        audio = np.round(np.clip(audio, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, audio, sample_rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> Path:
    """Atomically write mono audio as a 16-bit WAV file."""
    return atomic_write_bytes(path, wav_bytes(audio, sample_rate))


def _wav_data_sizes(data: bytes) -> tuple[int | None, int]:
    """(bytes the WAV's ``data`` chunk announces, bytes actually present) by walking RIFF chunks."""
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if chunk == b"data":
            if size in (0, 0xFFFFFFFF):  # streamed WAVs leave the size unset
                return None, len(data) - pos - 8
            return size, len(data) - pos - 8
        pos += 8 + size + (size & 1)
    return None, 0


#: what :func:`read_wav` does with float samples outside [-1, 1]
OUT_OF_RANGE = ("raise", "scale", "clip")


def read_wav(path: str | os.PathLike, expected_sample_rate: int | None = None, *, sha256: str | None = None,
             out_of_range: str = "raise") -> tuple[np.ndarray, int]:
    """Read a mono WAV file as float32 in [-1, 1]; return ``(audio, sample_rate)``.

    Raises :class:`AudioFileError` for a missing, corrupt or truncated file (or a checksum
    mismatch when ``sha256`` is given) and :class:`SampleRateError` when ``expected_sr`` is given
    and differs. Multi-channel files are averaged to mono.

    Integer PCM always decodes into [-1, 1). Float WAVs can hold anything, so the promise is kept
    by checking: NaN or infinite samples always raise :class:`AudioFileError` (no choice can repair
    them), and samples outside [-1, 1] follow ``out_of_range``:

    * ``"raise"`` (default): :class:`AudioFileError` naming the peak, since silently changing the
      signal would hide a bug in whatever wrote the file;
    * ``"scale"``: divide by the peak ``p = max |x|``, i.e. ``x / p``, so the loudest sample is
      exactly +-1 and the waveform keeps its shape (what "normalize" in an audio editor does);
    * ``"clip"``: ``clip(x, -1, 1)``, keeping the level of everything in range but flattening
      the peaks (audible distortion).

    The check runs before multi-channel files are averaged to mono.
    """
    import soundfile as sf

    if out_of_range not in OUT_OF_RANGE:
        raise ValueError(f"out_of_range must be one of {OUT_OF_RANGE}, got {out_of_range!r}")

    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"audio file not found: {path}")
    data = path.read_bytes()
    if sha256 is not None and sha256_bytes(data) != sha256:
        raise AudioFileError(f"checksum mismatch for {path}: the file changed or is corrupt; rebuild or re-download it")
    try:
        info = sf.info(io.BytesIO(data))
        audio, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for bad headers
        raise AudioFileError(f"cannot decode {path} as audio ({exc}); the file is corrupt or not a WAV/FLAC file") from exc
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        declared, present = _wav_data_sizes(data)
        if declared is not None and declared > present:
            raise AudioFileError(f"{path} is truncated: its header announces {declared} bytes of audio but only "
                                 f"{present} are there; re-create or re-download the file")
    if len(audio) == 0:
        raise AudioFileError(f"{path} holds no samples")
    audio = _checked_range(audio, path, out_of_range)
    if expected_sample_rate is not None and sr != expected_sample_rate:
        raise SampleRateError(
            f"{path} has sample rate {sr} Hz but {expected_sample_rate} Hz is required; resample it first "
            f"(e.g. librosa.resample(y, orig_sr={sr}, target_sr={expected_sample_rate}))"
        )
    return audio.mean(axis=1).astype(np.float32), int(sr)


def _checked_range(audio: np.ndarray, path: Path, out_of_range: str) -> np.ndarray:
    """``audio`` (frames x channels) with the [-1, 1] promise of :func:`read_wav` enforced.

    >>> _checked_range(np.array([[0.5], [-2.0]], np.float32), Path("x.wav"), "scale").ravel().tolist()
    [0.25, -1.0]
    >>> _checked_range(np.array([[0.5], [-2.0]], np.float32), Path("x.wav"), "clip").ravel().tolist()
    [0.5, -1.0]
    """
    finite = np.isfinite(audio)
    if not finite.all():
        bad = np.flatnonzero(~finite.all(axis=1))
        raise AudioFileError(f"{path} holds {len(bad)} NaN or infinite sample(s) (the first at sample {bad[0]}, "
                             f"{bad[0] / max(len(audio), 1):.0%} into the file); it was written from a broken signal "
                             f"or is damaged: re-create it from the source audio")
    peak = float(np.abs(audio).max())
    if peak <= 1.0:
        return audio
    if out_of_range == "raise":
        at = int(np.argmax(np.abs(audio).max(axis=1)))
        raise AudioFileError(f"{path} holds float samples outside [-1, 1] (peak {peak:.4g} at sample {at}); ttslab "
                             f"works on audio in [-1, 1]. Re-export it at a lower level, or pass "
                             f"out_of_range='scale' to divide it by its peak (keeps the waveform's shape) or "
                             f"out_of_range='clip' to clip it (distorts the loud parts)")
    if out_of_range == "scale":
        return (audio / peak).astype(np.float32)
    return np.clip(audio, -1.0, 1.0)
