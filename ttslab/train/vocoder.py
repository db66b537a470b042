"""Training recipe for the neural vocoder (:mod:`ttslab.vocoders.neural`).

Data: the English training utterances of the built-in corpus, each analysed once with
:func:`ttslab.dsp.log_mel` (exactly the features the acoustic models predict), then cut into
overlapping segments of ``segment_frames`` frames (start every ``stride`` frames). A segment is the
mel frames ``[a, a + S)`` and the audio samples ``[a * 256, (a + S) * 256)``: frame ``m`` is centred on
sample ``m * 256``, as in the analysis, so input and target line up. The segments are fixed, so the
batches depend only on the seed and the epoch (:class:`ttslab.train.Batches`), and a resumed run
sees what an uninterrupted one would.

Loss (no discriminator; :func:`vocoder_loss`), between the generated audio ``y`` and the original ``x``:

* full-band mel L1: ``mean |log mel(y) - log mel(x)|`` with 80 mel bands up to 11025 Hz, so the
  vocoder also learns the 8-11 kHz band the input mel does not describe;
* multi-resolution STFT loss (Yamamoto et al. 2020, Parallel WaveGAN), averaged over FFT sizes
  512/1024/2048: spectral convergence ``||  |Y| - |X|  ||_F / || |X| ||_F`` plus log-magnitude L1
  ``mean | log|Y| - log|X| |``;
* on the network's own STFT (before the inverse STFT), frame by frame against the STFT of ``x``
  with the same window and hop: log-magnitude L1, and the anti-wrapping phase losses of APNet
  (Ai & Ling 2023: instantaneous phase, group delay, instantaneous frequency; :func:`phase_losses`).
  Losses on the audio alone constrain the phase only indirectly (a wrong phase smears what the other
  window sizes see); measured, the direct phase supervision is worth ~1 dB of MCD at equal steps
  (see :mod:`ttslab.vocoders.neural`).

Distillation (issue 10; ``--teacher-vocoder``): the same loss, but the pairs are the *teacher's*, not
the recordings' (sequence-level knowledge distillation, :func:`teacher_pairs`). The input is the log-mel a
trained acoustic model generates from the utterance's phones (its own durations, as at synthesis) and
the target is what the teacher vocoder makes of that mel::

    mel   <- acoustic.infer(phones, speaker)["mel"]          (80, F)   what the vocoder will be fed
    audio <- teacher_vocoder.vocode(mel)                     (F * 256,)

So the student learns the teacher's mapping on generated (smoothed) mels, the inputs it meets end to
end, instead of recorded ones (the train/test mismatch HiFi-GAN fine-tunes away on ground-truth-aligned
mels), and its targets are outputs a vocoder can reach. Validation uses the same kind of pairs.

Commands (the shipped checkpoints; ~15 min on one thread for the full vocoder)::

    python -m ttslab.train.vocoder --mode full --out /tmp/ckpt/vocoder_full.pt
    python -m ttslab.train.vocoder --mode full --size small --steps 3000 --teacher-vocoder vocoder \
        --teacher-acoustic fastspeech_teacher --out /tmp/ckpt/vocoder_small_distilled.pt

writes the checkpoint (fp16), its ``.sha256`` and ``vocoder_full.json`` (configs, history, seconds,
threads) next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ttslab.data.speakers import is_adaptation
from ttslab.device import resolve_device
from ttslab.dsp.spectral import HOP, SAMPLE_RATE, LogMel, hann_window
from ttslab.train.loop import Batches, History, TrainConfig, fit, seed_everything
from ttslab.vocoders.neural import NeuralVocoder, VocoderConfig

#: (n_fft, hop, win) of the multi-resolution STFT loss.
STFT_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))
LOSS_FLOOR = 1e-5


@dataclass(frozen=True)
class DataConfig:
    """Which audio the vocoder trains on, how it is cut, and the loss weights."""

    utterances_per_speaker: int | None = 100  # None: every training utterance
    valid_per_speaker: int = 2                # held out of the training utterances for validation
    segment_frames: int = 64                  # 64 frames = 16384 samples = 0.74 s
    stride: int = 16                          # frames between segment starts (overlapping segments)
    mel_weight: float = 1.0                   # loss weights: see vocoder_loss
    stft_weight: float = 1.0
    spec_weight: float = 1.0
    phase_weight: float = 1.0
    ip_weight: float = 1.0

    def loss_weights(self) -> dict:
        return {"mel_weight": self.mel_weight, "stft_weight": self.stft_weight, "spec_weight": self.spec_weight,
                "phase_weight": self.phase_weight, "ip_weight": self.ip_weight}


# --- loss --------------------------------------------------------------------------------------

@lru_cache(maxsize=4)
def _full_band_mel(device: str) -> LogMel:
    return LogMel(fmax=SAMPLE_RATE / 2).to(device)


def stft_loss(y: torch.Tensor, x: torch.Tensor, resolutions=STFT_RESOLUTIONS) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-resolution ``(spectral convergence, log-magnitude L1)``, each averaged over resolutions."""
    sc, mag = y.new_zeros(()), y.new_zeros(())
    for n_fft, hop, win in resolutions:
        w = hann_window(win, device=y.device)
        Y = torch.stft(y, n_fft, hop, win, w, center=True, return_complex=True).abs()
        X = torch.stft(x, n_fft, hop, win, w, center=True, return_complex=True).abs()
        sc = sc + torch.linalg.norm(Y - X) / torch.linalg.norm(X).clamp(min=LOSS_FLOOR)
        mag = mag + (torch.log(Y.clamp(min=LOSS_FLOOR)) - torch.log(X.clamp(min=LOSS_FLOOR))).abs().mean()
    return sc / len(resolutions), mag / len(resolutions)


def anti_wrap(x: torch.Tensor) -> torch.Tensor:
    """``|x - 2 pi round(x / 2 pi)|``: the distance between two angles, whatever their wrapping.

    >>> round(float(anti_wrap(torch.tensor(2 * torch.pi + 0.1))), 4), round(float(anti_wrap(torch.tensor(-3.0))), 4)
    (0.1, 3.0)
    """
    return (x - 2 * torch.pi * torch.round(x / (2 * torch.pi))).abs()


def phase_losses(phase: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """Anti-wrapping phase losses of APNet (Ai & Ling 2023), each a ``weight``-weighted mean:

    * ``ip``  instantaneous phase        ``f(phi_hat - phi)``
    * ``gd``  group delay                ``f(D_f phi_hat - D_f phi)``  (difference across frequency)
    * ``iaf`` instantaneous frequency    ``f(D_t phi_hat - D_t phi)``  (difference across frames)

    with ``f`` = :func:`anti_wrap`. ``weight`` (the target magnitude) keeps the phase of near-silent
    bins, which is noise, from counting.
    """
    def mean(err: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return (err * w).sum() / w.sum().clamp(min=LOSS_FLOOR)

    gd_w = torch.minimum(weight[:, 1:], weight[:, :-1])
    iaf_w = torch.minimum(weight[..., 1:], weight[..., :-1])
    return {"ip": mean(anti_wrap(phase - target), weight),
            "gd": mean(anti_wrap(phase.diff(dim=1) - target.diff(dim=1)), gd_w),
            "iaf": mean(anti_wrap(phase.diff(dim=2) - target.diff(dim=2)), iaf_w)}


def vocoder_loss(model: NeuralVocoder, batch: dict, *, mel_weight: float = 1.0, stft_weight: float = 1.0,
                 spec_weight: float = 1.0, phase_weight: float = 1.0, ip_weight: float = 1.0
                 ) -> tuple[torch.Tensor, dict]:
    """Weighted sum of the vocoder's loss terms (module docstring); returns ``(loss, {term: float})``.

    ``batch``: ``"mel"`` (B, 80, S) log-mels, ``"audio"`` (B, S * 256) the matching original samples.
    """
    mel_in, x = batch["mel"], batch["audio"]
    log_mag, phase = model.log_magnitude_and_phase(mel_in)
    y = model.istft(torch.polar(torch.exp(log_mag), phase))
    if y.shape != x.shape:
        raise ValueError(f"vocoder output {tuple(y.shape)} does not match the target audio {tuple(x.shape)}")
    terms = {}
    mel = _full_band_mel(str(y.device))
    terms["mel_l1"] = (mel(y) - mel(x)).abs().mean()
    terms["sc"], terms["log_mag"] = stft_loss(y, x)
    # The head's own STFT against the original's, frame for frame (same n_fft, hop and centring).
    # The first and last frames of a segment see reflect padding instead of the real neighbours: skip them.
    c = model.config
    X = torch.stft(x, c.n_fft, c.hop, c.n_fft, model.window, center=True, return_complex=True)[..., 1:y.shape[-1] // c.hop - 1]
    log_mag, phase, mag = log_mag[..., 1:-1], phase[..., 1:-1], X.abs()
    terms["spec_l1"] = (log_mag - torch.log(mag.clamp(min=LOSS_FLOOR))).abs().mean()
    terms.update(phase_losses(phase, torch.angle(X), mag))
    loss = (mel_weight * terms["mel_l1"] + stft_weight * (terms["sc"] + terms["log_mag"])
            + spec_weight * terms["spec_l1"] + phase_weight * (ip_weight * terms["ip"] + terms["gd"] + terms["iaf"]))
    return loss, {k: float(v.detach()) for k, v in terms.items()}


# --- data ----------------------------------------------------------------------------------------

def analyse(utterances: Sequence, progress: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(log_mel (80, F), audio (F * 256,))`` per utterance, the audio zero-padded to whole frames."""
    from tqdm.auto import tqdm

    analysis = LogMel()  # = log_mel(), without building the filterbank again for every utterance
    out = []
    for utt in tqdm(utterances, desc="log-mels", disable=not progress):
        x = np.asarray(utt.load_audio(), dtype=np.float32)
        if getattr(utt, "sample_rate", SAMPLE_RATE) != SAMPLE_RATE:
            raise ValueError(f"utterance {utt.id} is not {SAMPLE_RATE} Hz; the vocoder is trained at {SAMPLE_RATE} Hz")
        with torch.no_grad():
            mel = analysis(torch.from_numpy(x)).numpy()
        audio = np.zeros(mel.shape[1] * HOP, dtype=np.float32)
        audio[:len(x)] = x
        out.append((mel, audio))
    return out


def segment_items(pairs: Sequence[tuple[np.ndarray, np.ndarray]], segment_frames: int,
                  stride: int) -> list[dict]:
    """Overlapping segments (numpy views, no copies): ``{"mel": (80, S), "audio": (S * 256,)}``.

    Utterances shorter than ``S`` frames are padded with the log floor (mel) and zeros (audio).

    >>> mel, audio = np.zeros((80, 100), np.float32), np.zeros(100 * 256, np.float32)
    >>> items = segment_items([(mel, audio)], 64, 16)
    >>> len(items), items[-1]["mel"].shape, items[-1]["audio"].shape
    (3, (80, 64), (16384,))
    """
    if segment_frames < 1 or stride < 1:
        raise ValueError(f"segment_frames and stride must be >= 1, got {segment_frames}, {stride}")
    items = []
    for mel, audio in pairs:
        frames = mel.shape[1]
        if frames < segment_frames:
            mel = np.pad(mel, [(0, 0), (0, segment_frames - frames)], constant_values=np.log(LOSS_FLOOR))
            audio = np.pad(audio, (0, (segment_frames - frames) * HOP))
            frames = segment_frames
        for a in range(0, frames - segment_frames + 1, stride):
            items.append({"mel": mel[:, a:a + segment_frames], "audio": audio[a * HOP:(a + segment_frames) * HOP]})
    return items


def collate_segments(items: list[dict]) -> dict:
    """Stack segments into ``{"mel": (B, 80, S), "audio": (B, S * 256)}`` float32 tensors."""
    return {"mel": torch.from_numpy(np.stack([it["mel"] for it in items])),
            "audio": torch.from_numpy(np.stack([it["audio"] for it in items]))}


@dataclass(frozen=True)
class VocoderTeacher:
    """What a distilled vocoder learns from (module docstring): ``acoustic`` (a FastSpeech) generates the
    input mels, ``vocoder`` (a trained :class:`NeuralVocoder`) turns them into the target audio."""

    acoustic: torch.nn.Module
    vocoder: NeuralVocoder


@torch.no_grad()
def teacher_pairs(utterances: Sequence, teacher: VocoderTeacher,
                  progress: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(generated log-mel (80, F), teacher audio (F * 256,))`` per utterance (objects with ``.speaker``
    and phone labels): the pairs of vocoder distillation, in the format of :func:`analyse`."""
    from tqdm.auto import tqdm

    from ttslab.models.fastspeech import utterance_inputs

    unknown = sorted({u.speaker for u in utterances} - set(teacher.acoustic.speakers))
    if unknown:
        raise ValueError(f"the teacher acoustic model does not know the speakers {unknown}; "
                         f"train on utterances of {list(teacher.acoustic.speakers)}")
    out = []
    for utt in tqdm(utterances, desc="teacher pairs", disable=not progress):
        mel = teacher.acoustic.infer(utterance_inputs(utt), utt.speaker)["mel"].T.float().numpy()
        audio = teacher.vocoder.vocode(mel, length=mel.shape[1] * HOP)
        out.append((np.ascontiguousarray(mel, dtype=np.float32), audio.astype(np.float32)))
    return out


def split_utterances(utterances: Sequence, data: DataConfig) -> tuple[list, list]:
    """``(train, valid)``: per speaker, the first ``valid_per_speaker`` (by id) for validation, then
    up to ``utterances_per_speaker`` for training."""
    by_speaker: dict[str, list] = {}
    for u in sorted(utterances, key=lambda u: u.id):
        by_speaker.setdefault(u.speaker, []).append(u)
    train, valid = [], []
    for utts in by_speaker.values():
        valid += utts[:data.valid_per_speaker]
        rest = utts[data.valid_per_speaker:]
        train += rest if data.utterances_per_speaker is None else rest[:data.utterances_per_speaker]
    if not train:
        raise ValueError("no training utterances left after holding out the validation ones")
    return train, valid


# --- training ------------------------------------------------------------------------------------

def default_train_config(mode: str = "full") -> tuple[TrainConfig, DataConfig]:
    """``(TrainConfig, DataConfig)`` for ``"full"`` (~15 min on one thread) or ``"ci"`` (seconds)."""
    if mode == "full":
        return (TrainConfig(steps=2000, batch_size=16, lr=2e-3, warmup=100, schedule="cosine",
                            min_lr_ratio=0.02, grad_clip=5.0, valid_every=500, log_every=25, threads=1),
                DataConfig())
    if mode == "ci":
        return (TrainConfig(steps=8, batch_size=4, lr=2e-3, warmup=0, schedule="constant", grad_clip=5.0,
                            valid_every=8, log_every=2, threads=1),
                DataConfig(utterances_per_speaker=2, valid_per_speaker=1, segment_frames=16, stride=16))
    raise ValueError(f"unknown mode {mode!r}; use 'full' or 'ci'")


def train_vocoder(utterances: Sequence, config: VocoderConfig | None = None,
                  train_config: TrainConfig | None = None, data_config: DataConfig | None = None, *,
                  ckpt_dir: str | Path | None = None, progress: bool = True,
                  device: str | torch.device = "auto",
                  teacher: VocoderTeacher | None = None) -> tuple[NeuralVocoder, History]:
    """Train a :class:`NeuralVocoder` on ``utterances`` (objects with ``.id .speaker .load_audio()``)
    on ``device`` (default ``"auto"``: the GPU when there is one; :mod:`ttslab.device`). With
    ``teacher`` it is distilled: trained and validated on :func:`teacher_pairs` instead of the recordings
    (the teacher runs on the CPU, once, before training).

    Returns the model with the best validation weights (eval mode, on ``device``) and the training history.
    """
    device = resolve_device(device)  # fail before the audio is analysed
    config = config or VocoderConfig.full()
    default_train, default_data = default_train_config("full")
    train_config, data_config = train_config or default_train, data_config or default_data
    train_utts, valid_utts = split_utterances(list(utterances), data_config)
    seg = data_config.segment_frames
    if teacher is not None:
        pairs = lambda utts: teacher_pairs(utts, teacher, progress)  # noqa: E731
    else:
        pairs = lambda utts: analyse(utts, progress)  # noqa: E731
    train_items = segment_items(pairs(train_utts), seg, data_config.stride)
    train_batches = Batches(train_items, train_config.batch_size, collate_segments, seed=train_config.seed,
                            drop_last=True)
    valid_batches = None
    if valid_utts:  # non-overlapping validation segments
        valid_items = segment_items(pairs(valid_utts), seg, seg)
        valid_batches = Batches(valid_items, train_config.batch_size, collate_segments, shuffle=False)
    seed_everything(train_config.seed)
    model = NeuralVocoder(config)

    def loss_fn(m, b):
        return vocoder_loss(m, b, **data_config.loss_weights())

    history = fit(model, loss_fn, train_batches, train_config, valid_batches=valid_batches, ckpt_dir=ckpt_dir,
                  progress=progress, desc="vocoder", model_config=asdict(config), device=device)
    return model, history


def load_teacher(vocoder: str, acoustic: str) -> VocoderTeacher:
    """The teacher pair on the CPU from registered names (``ttslab.pretrained``) or checkpoint paths."""
    from ttslab import pretrained
    from ttslab.models.fastspeech import FastSpeech

    def load(name: str, cls):
        if Path(name).is_file():
            return cls.from_checkpoint(name)
        if name not in pretrained.available():
            raise ValueError(f"{name!r} is neither a checkpoint file nor a registered model "
                             f"({', '.join(pretrained.available())})")
        model = pretrained.load(name)
        if not isinstance(model, cls):
            raise ValueError(f"{name!r} is a {type(model).__name__}, not a {cls.__name__}")
        return model

    return VocoderTeacher(acoustic=load(acoustic, FastSpeech).eval(), vocoder=load(vocoder, NeuralVocoder).eval())


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description="Train the neural vocoder on the built-in corpus.")
    parser.add_argument("--mode", choices=("ci", "full"), default=None, help="default: TTSLAB_CI")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint path (.pt)")
    parser.add_argument("--steps", type=int, default=None, help="override the number of steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", choices=("full", "small"), default="full",
                        help="full: the shipped vocoder; small: the compressed one for embedded use (full mode)")
    parser.add_argument("--device", default="auto", help="auto (GPU if any, else CPU), cpu, cuda or cuda:N")
    parser.add_argument("--teacher-vocoder", default=None, metavar="NAME_OR_PATH",
                        help="distil: train on this vocoder's audio from generated mels (a registered name, e.g. "
                             "vocoder, or a checkpoint); default: train on the recordings")
    parser.add_argument("--teacher-acoustic", default="fastspeech_teacher", metavar="NAME_OR_PATH",
                        help="with --teacher-vocoder: the acoustic model that generates the input mels")
    args = parser.parse_args(argv)

    from ttslab.config import mode as default_mode
    from ttslab.config import thread_limit
    from ttslab.data import load_builtin
    from ttslab.io import atomic_write_json

    mode = args.mode or default_mode()
    train_config, data_config = default_train_config(mode)
    train_config.threads = args.threads
    if args.steps:
        train_config.steps = args.steps
    config = getattr(VocoderConfig, args.size)() if mode == "full" else VocoderConfig.tiny()
    utterances = [u for u in load_builtin(mode).filter(split="train", language="en")
                  if not is_adaptation(u.speaker)]  # the adaptation speakers stay unheard
    t0, cpu0 = time.perf_counter(), time.process_time()
    teacher = load_teacher(args.teacher_vocoder, args.teacher_acoustic) if args.teacher_vocoder else None
    with thread_limit(args.threads):  # the teacher's pairs too, not only fit(), on the budget's threads
        model, history = train_vocoder(utterances, config, train_config, data_config,
                                       ckpt_dir=args.out.parent / (args.out.stem + "_run"), device=args.device,
                                       teacher=teacher)
        threads = torch.get_num_threads()  # what the run used (the caller's setting comes back on exit)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    log = {"mode": mode, "size": args.size, "model_config": asdict(config), "train_config": train_config.to_dict(),
           "data_config": asdict(data_config), "parameters": model.num_parameters(),
           "seconds_total": seconds, "seconds_training": history.seconds, "cpu_seconds_total": cpu_seconds,
           "load_average_1min_at_end": os.getloadavg()[0], "threads": threads,
           "torch": torch.__version__, "device": str(next(model.parameters()).device),
           "device_name": (torch.cuda.get_device_name(next(model.parameters()).device)
                           if next(model.parameters()).is_cuda else f"CPU ({platform.machine()})"),
           "history": history.to_dict(),
           "command": "python -m ttslab.train.vocoder " + " ".join(sys.argv[1:] if argv is None else argv),
           "teacher": ({"vocoder": args.teacher_vocoder, "acoustic": args.teacher_acoustic,
                        "vocoder_parameters": teacher.vocoder.num_parameters(),
                        "acoustic_parameters": teacher.acoustic.num_parameters()} if teacher else None)}
    digest = model.save(args.out, half=True, extra={"train_mode": mode, "steps": history.steps_done,
                                                     "best_step": history.best_step or -1})
    log["sha256"] = digest
    atomic_write_json(args.out.with_suffix(".json"), log)
    print(json.dumps({k: log[k] for k in ("parameters", "seconds_total", "threads", "sha256")}))
    return args.out


if __name__ == "__main__":
    main(sys.argv[1:])
