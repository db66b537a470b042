"""Frame- and phone-level features for the neural models, cached on disk, and padded torch batches.

Per utterance (:func:`acoustic_features`):

* ``phone_ids`` (N,)  ids of :data:`ttslab.text.phoneset.PHONE_TO_ID` (0 is padding), pauses included;
* ``durations`` (N,)  frames per phone. Frame ``m`` of the centred STFT sits at sample ``m * hop``, so a
  phone ``[start, end)`` owns frames ``round(start/hop) .. round(end/hop) - 1``; the first boundary is
  0 and the last is ``T``, so ``durations.sum() == T`` always (a phone shorter than half a hop can get 0);
* ``mel`` (T, 80)     log-mel spectrogram (:func:`ttslab.dsp.log_mel`), what the acoustic models predict;
* ``f0`` (T,)         Hz per frame, 0 = unvoiced (WORLD DIO + StoneMask, the FastSpeech 2 recipe);
* ``energy`` (T,)     ``log ||X[:, m]||_2``, the log L2 norm of the STFT magnitude frame (FastSpeech 2);
* ``pitch`` (N,)      phone averages of the continuous log-F0 (unvoiced frames interpolated), and
  ``energy_phone`` (N,) phone averages of ``energy`` -- the phone-level variance targets of FastSpeech 2
  (as in ming024's implementation); a 0-frame phone takes its neighbours' frame value.

The frame arrays are cached with :class:`ttslab.dsp.cache.FeatureCache`, keyed by every setting above;
the phone-level ones are recomputed from them (cheap), so they always agree with the labels.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch

from ttslab.data.speakers import ENGLISH_SPEAKERS
from ttslab.dsp.cache import FeatureCache
from ttslab.dsp.f0 import f0_pyworld, log_f0_and_vuv
from ttslab.dsp.spectral import FMAX, HOP, LOG_FLOOR, N_FFT, N_MELS, SAMPLE_RATE, log_mel, num_frames, stft

FEATURE_SETTINGS = {"sr": SAMPLE_RATE, "n_fft": N_FFT, "hop": HOP, "n_mels": N_MELS, "fmax": FMAX,
                    "f0": "dio+stonemask", "f0_floor": 60.0, "f0_ceil": 500.0, "energy": "log-l2-stft"}
MEL_PAD = float(np.log(LOG_FLOOR))  # padding value of mel batches: the log-mel of silence


def frame_durations(boundaries_samples: Sequence[int], n_frames: int, hop: int = HOP) -> np.ndarray:
    """Frames per segment from sample boundaries ``[b_0, ..., b_N]``; the result sums to ``n_frames``.

    >>> frame_durations([0, 300, 1000, 1300], n_frames=6, hop=256).tolist()
    [1, 3, 2]
    """
    b = np.rint(np.asarray(boundaries_samples, dtype=np.float64) / hop).astype(np.int64)
    if b.ndim != 1 or len(b) < 2 or np.any(np.diff(b) < 0):
        raise ValueError("boundaries must be a non-decreasing list of at least two sample positions")
    b = np.clip(b, 0, n_frames)
    b[0], b[-1] = 0, n_frames
    return np.diff(b)


def phone_average(frame_values: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """Mean of ``frame_values`` over each phone's frames; a 0-frame phone takes the frame at its boundary.

    >>> phone_average(np.array([1., 3., 5., 7.]), np.array([2, 0, 2])).tolist()
    [2.0, 5.0, 6.0]
    """
    ends = np.cumsum(durations)
    starts = ends - durations
    sums = np.add.reduceat(np.append(frame_values, 0.0), np.minimum(starts, len(frame_values)))
    out = np.where(durations > 0, sums / np.maximum(durations, 1), 0.0)
    empty = durations == 0
    out[empty] = frame_values[np.clip(starts[empty], 0, len(frame_values) - 1)]
    return out


def _frame_features(audio: np.ndarray) -> np.ndarray:
    """``(T, 82)``: 80 log-mels, F0 (Hz) and log energy."""
    mel = log_mel(audio).T
    f0 = f0_pyworld(audio, method="dio", f0_floor=FEATURE_SETTINGS["f0_floor"],
                    f0_ceil=FEATURE_SETTINGS["f0_ceil"])
    mag = stft(audio).abs()
    energy = torch.log(torch.clamp(torch.linalg.vector_norm(mag, dim=0), min=LOG_FLOOR)).numpy()
    return np.concatenate([mel, f0[:, None], energy[:, None]], axis=1).astype(np.float32)


def _cache() -> FeatureCache:
    return FeatureCache(None, "acoustic", FEATURE_SETTINGS)


def acoustic_features(utterance, cache: FeatureCache | None = None) -> dict:
    """The arrays listed in the module docstring for one labelled utterance (frame arrays cached)."""
    from ttslab.text.phoneset import phone_id

    if utterance.segments is None:
        raise ValueError(f"utterance {utterance.id} has no phone timings; the neural models need labelled "
                         f"audio (the built-in corpus, or a real corpus aligned with ttslab.classical.align)")
    if utterance.sample_rate != SAMPLE_RATE:
        raise ValueError(f"utterance {utterance.id} is {utterance.sample_rate} Hz; the features are defined at "
                         f"{SAMPLE_RATE} Hz: resample the corpus first")
    cache = cache or _cache()
    frames = cache.get_or_compute(utterance.id, lambda: _frame_features(utterance.load_audio()))
    if not np.all(np.isfinite(frames)):
        raise ValueError(f"NaN/inf in the cached features of {utterance.id}; delete {cache.dir} and re-run")
    n = len(frames)
    if utterance.num_samples is not None and n != num_frames(utterance.num_samples):
        raise ValueError(f"cached features of {utterance.id} have {n} frames, the audio needs "
                         f"{num_frames(utterance.num_samples)}; delete {cache.dir} and re-run")
    durations = frame_durations(utterance.boundaries("samples"), n)
    f0, energy = frames[:, N_MELS].astype(np.float64), frames[:, N_MELS + 1].astype(np.float64)
    lf0, _ = log_f0_and_vuv(f0)
    return {
        "phone_ids": np.array([phone_id(s.label) for s in utterance.segments], dtype=np.int64),
        "durations": durations.astype(np.int64),
        "mel": np.ascontiguousarray(frames[:, :N_MELS]),
        "f0": frames[:, N_MELS].copy(),
        "energy": frames[:, N_MELS + 1].copy(),
        "pitch": phone_average(lf0, durations).astype(np.float32),
        "energy_phone": phone_average(energy, durations).astype(np.float32),
    }


def speaker_index(speaker: str, speakers: Sequence[str] = ENGLISH_SPEAKERS) -> int:
    try:
        return list(speakers).index(speaker)
    except ValueError:
        raise ValueError(f"speaker {speaker!r} is not in the model's speaker list {list(speakers)}") from None


class AcousticDataset(torch.utils.data.Dataset):
    """In-memory items ``{"utt_id", "speaker", "phone_ids", "durations", "mel", "f0", "energy", "pitch",
    "energy_phone"}`` for labelled utterances; ``speaker`` is the index in ``speakers``.

    ``stats[speaker_index]`` holds the mean and standard deviation of the phone-level pitch and energy
    of that speaker's (non-silent-weighted) phones, for per-speaker normalisation.
    """

    def __init__(self, utterances: Iterable, speakers: Sequence[str] = ENGLISH_SPEAKERS, progress: bool = True):
        from tqdm.auto import tqdm

        utterances = list(utterances)
        if not utterances:
            raise ValueError("no utterances given: check the corpus split / speaker filter "
                             "(and build the corpus with `python -m ttslab build-corpus`)")
        self.speakers = tuple(speakers)
        cache = _cache()
        self.items = []
        for utt in tqdm(utterances, desc="features", disable=not progress, leave=False):
            feats = acoustic_features(utt, cache)
            self.items.append({"utt_id": utt.id, "speaker": speaker_index(utt.speaker, self.speakers), **feats})
        self.stats = self._speaker_stats()

    def _speaker_stats(self) -> dict[int, dict[str, float]]:
        stats = {}
        for spk in sorted({it["speaker"] for it in self.items}):
            pitch = np.concatenate([it["pitch"][it["durations"] > 0] for it in self.items if it["speaker"] == spk])
            energy = np.concatenate([it["energy_phone"][it["durations"] > 0]
                                     for it in self.items if it["speaker"] == spk])
            stats[spk] = {"pitch_mean": float(pitch.mean()), "pitch_std": float(pitch.std() + 1e-5),
                          "energy_mean": float(energy.mean()), "energy_std": float(energy.std() + 1e-5)}
        return stats

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]

    def lengths(self) -> list[int]:
        """Frames per item (for length-bucketed :class:`ttslab.train.Batches`)."""
        return [len(it["mel"]) for it in self.items]


def _pad(arrays: list[np.ndarray], value: float = 0.0) -> torch.Tensor:
    longest = max(len(a) for a in arrays)
    out = np.full((len(arrays), longest) + arrays[0].shape[1:], value, dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i, :len(a)] = a
    return torch.from_numpy(out)


def collate_acoustic(items: list[dict]) -> dict:
    """Pad a list of items into a batch: ``phone_ids/durations/pitch/energy`` (B, N), ``mel`` (B, T, 80)
    padded with the log-mel of silence, ``f0``/``frame_energy`` (B, T), lengths, ``speaker`` (B,),
    ``utt_ids`` (list). ``energy`` in the batch is the phone-level energy."""
    if not items:
        raise ValueError("cannot collate an empty list of items")
    return {
        "utt_ids": [it["utt_id"] for it in items],
        "speaker": torch.tensor([it["speaker"] for it in items], dtype=torch.long),
        "phone_ids": _pad([it["phone_ids"] for it in items]),
        "phone_lengths": torch.tensor([len(it["phone_ids"]) for it in items], dtype=torch.long),
        "durations": _pad([it["durations"] for it in items]),
        "pitch": _pad([it["pitch"] for it in items]),
        "energy": _pad([it["energy_phone"] for it in items]),
        "mel": _pad([it["mel"] for it in items], MEL_PAD),
        "mel_lengths": torch.tensor([len(it["mel"]) for it in items], dtype=torch.long),
        "f0": _pad([it["f0"] for it in items]),
        "frame_energy": _pad([it["energy"] for it in items]),
    }
