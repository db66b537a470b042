"""The classic distillation experiment on speech: frame-level phone classification from log-mel.

Task: every 11.6 ms log-mel frame (80 bands) of the built-in corpus gets the phone it lies in (the
corpus' exact phone timings: ``np.repeat(phone_ids, durations)``). Utterances are cut into windows of
``window`` frames (100 frames, 1.16 s, as in the reference text's ``input_shape=(100, 80)``; the
last window of an utterance is padded and its padding masked), bands are z-scored with the training
set's mean and std.

Models (:class:`FrameClassifier`), the reference text's pair made frame-level and bidirectional
(a phone's identity depends on what follows it too)::

    teacher: BiLSTM(128) x 2 -> Dense(64) + ReLU -> Dropout(0.2) -> Dense(K)    ~0.6 M parameters
    student: BiGRU(64)       -> Dense(32) + ReLU -> Dropout(0.2) -> Dense(K)    ~0.06 M parameters

The teacher trains on the hard labels; its logits on the training windows are computed once and kept
(:func:`teacher_logits`), and every student trains for the same number of steps with
:func:`ttslab.distill.classic_kd` (``alpha * T^2 KL + (1 - alpha) CE``). With a label fraction ``f``
only a random ``f`` of the training windows keep their labels; the distilled student still gets the
teacher's soft labels on all of them, the scratch student trains on the labelled ones only.

"Dark knowledge" (:func:`soft_confusion`): ``M[i, j]`` = mean over frames whose true phone is ``i`` of
the teacher's ``p_T(z)_j``: the off-diagonal mass says which phones the teacher finds alike.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ttslab.distill.losses import soft_targets
from ttslab.distill.wrappers import classic_kd
from ttslab.dsp.spectral import N_MELS
from ttslab.text.phoneset import ID_TO_PHONE, NUM_PHONE_IDS
from ttslab.train.loop import Batches, TrainConfig, fit

IGNORE = -100  #: label of padded or unlabelled frames


# ---------------------------------------------------------------------------------------------
# Data


@dataclass
class FrameSet:
    """Windows of normalised log-mel ``x`` (N, W, 80) float32, phone ids ``y`` (N, W) (``IGNORE`` where
    padded), ``mask`` (N, W) True on real frames, and the ``utt_ids`` each window comes from."""

    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray
    utt_ids: list

    def __len__(self) -> int:
        return len(self.x)

    @property
    def frames(self) -> int:
        return int(self.mask.sum())


def frame_windows(items: Sequence[dict], window: int = 100) -> FrameSet:
    """Cut acoustic items (``mel`` (T, 80), ``phone_ids``, ``durations``: :class:`ttslab.data.datasets.AcousticDataset`)
    into windows of ``window`` frames with per-frame phone labels (not yet normalised)."""
    if window < 1:
        raise ValueError(f"window must be >= 1 frame, got {window}")
    xs, ys, masks, ids = [], [], [], []
    for it in items:
        mel = np.asarray(it["mel"], dtype=np.float32)
        labels = np.repeat(np.asarray(it["phone_ids"]), np.asarray(it["durations"]))
        if len(labels) != len(mel):
            raise ValueError(f"{it.get('utt_id')}: durations sum to {len(labels)} frames, the mel has {len(mel)}")
        for start in range(0, len(mel), window):
            n = min(window, len(mel) - start)
            x = np.zeros((window, mel.shape[1]), np.float32)
            y = np.full(window, IGNORE, np.int64)
            x[:n], y[:n] = mel[start:start + n], labels[start:start + n]
            xs.append(x), ys.append(y), masks.append(np.arange(window) < n), ids.append(it.get("utt_id"))
    if not xs:
        raise ValueError("no frames: give at least one item with a non-empty mel")
    return FrameSet(np.stack(xs), np.stack(ys), np.stack(masks), ids)


def band_stats(frames: FrameSet) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std of the real frames (the training set's: apply them to every split)."""
    real = frames.x[frames.mask].astype(np.float64)
    return real.mean(0).astype(np.float32), (real.std(0) + 1e-3).astype(np.float32)


def normalized(frames: FrameSet, mean: np.ndarray, std: np.ndarray) -> FrameSet:
    """``(x - mean) / std`` on real frames, 0 on padding."""
    x = np.where(frames.mask[..., None], (frames.x - mean) / std, 0.0).astype(np.float32)
    return replace(frames, x=x)


def collate_frames(batch: list[tuple[np.ndarray, ...]]) -> dict:
    """``[(x, y, mask[, teacher_logits]), ...]`` -> ``{"x", "y", "mask"[, "teacher"]}`` tensors."""
    out = {"x": torch.from_numpy(np.stack([b[0] for b in batch])),
           "y": torch.from_numpy(np.stack([b[1] for b in batch])),
           "mask": torch.from_numpy(np.stack([b[2] for b in batch]))}
    if len(batch[0]) > 3:
        out["teacher"] = torch.from_numpy(np.stack([b[3] for b in batch]).astype(np.float32))
    return out


def label_subset(frames: FrameSet, fraction: float, seed: int = 0) -> np.ndarray:
    """Indices of a random ``fraction`` of the windows (at least one) that keep their labels."""
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    n = max(1, int(round(fraction * len(frames))))
    return np.sort(rng.permutation(len(frames))[:n])


# ---------------------------------------------------------------------------------------------
# Models


@dataclass
class FrameModelConfig:
    """A recurrent frame classifier: ``rnn`` ("lstm" | "gru") layers -> Dense + ReLU -> Dropout -> Dense."""

    rnn: str = "lstm"
    hidden: int = 128
    layers: int = 2
    bidirectional: bool = True
    dense: int = 64
    dropout: float = 0.2
    n_mels: int = N_MELS
    num_classes: int = NUM_PHONE_IDS

    def __post_init__(self):
        if self.rnn not in ("lstm", "gru"):
            raise ValueError(f"rnn must be 'lstm' or 'gru', got {self.rnn!r}")
        if min(self.hidden, self.layers, self.dense, self.n_mels, self.num_classes) < 1:
            raise ValueError("hidden, layers, dense, n_mels and num_classes must be >= 1")

    @classmethod
    def teacher(cls, **kw) -> "FrameModelConfig":
        """BiLSTM(128) x 2 -> Dense(64) -> Dense(K): the reference text's teacher, bidirectional."""
        return cls(**{**dict(rnn="lstm", hidden=128, layers=2, dense=64), **kw})

    @classmethod
    def student(cls, **kw) -> "FrameModelConfig":
        """BiGRU(64) -> Dense(32) -> Dense(K): the reference text's student (halved sizes), bidirectional."""
        return cls(**{**dict(rnn="gru", hidden=64, layers=1, dense=32), **kw})

    def to_dict(self) -> dict:
        return asdict(self)


class FrameClassifier(nn.Module):
    """``x`` (B, W, n_mels) normalised log-mel -> logits (B, W, num_classes)."""

    def __init__(self, config: FrameModelConfig):
        super().__init__()
        self.config = c = config
        rnn = nn.LSTM if c.rnn == "lstm" else nn.GRU
        self.rnn = rnn(c.n_mels, c.hidden, num_layers=c.layers, batch_first=True, bidirectional=c.bidirectional)
        width = c.hidden * (2 if c.bidirectional else 1)
        self.head = nn.Sequential(nn.Linear(width, c.dense), nn.ReLU(), nn.Dropout(c.dropout),
                                  nn.Linear(c.dense, c.num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != self.config.n_mels:
            raise ValueError(f"expected (batch, frames, {self.config.n_mels}) log-mels, got {tuple(x.shape)}")
        return self.head(self.rnn(x)[0])

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def frame_ce_loss(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
    """Cross-entropy over the labelled frames (``y != IGNORE``) of a :func:`collate_frames` batch."""
    z = model(batch["x"])
    y = batch["y"].masked_fill(~batch["mask"], IGNORE)
    labelled = (y != IGNORE).sum()
    ce = F.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1), ignore_index=IGNORE,
                         reduction="sum") / labelled.clamp(min=1)
    return ce, {"ce": float(ce.detach())}


# ---------------------------------------------------------------------------------------------
# Training, evaluation, dark knowledge


def _items(frames: FrameSet, indices=None, logits: np.ndarray | None = None, keep_labels=None) -> list:
    idx = np.arange(len(frames)) if indices is None else np.asarray(indices)
    keep = None if keep_labels is None else set(np.asarray(keep_labels).tolist())
    out = []
    for i in idx:
        y = frames.y[i] if keep is None or i in keep else np.full_like(frames.y[i], IGNORE)
        item = (frames.x[i], y, frames.mask[i])
        out.append(item + (logits[i],) if logits is not None else item)
    return out


def train_classifier(config: FrameModelConfig, train: FrameSet, train_config: TrainConfig, *,
                     teacher_logits: np.ndarray | None = None, T: float = 1.0, alpha: float = 0.0,
                     labelled: np.ndarray | None = None, seed: int = 0, progress: bool = False,
                     desc: str = "frames") -> tuple[FrameClassifier, float]:
    """Train a :class:`FrameClassifier`; return ``(model, seconds)``.

    Without ``teacher_logits`` (or with ``alpha == 0``): cross-entropy on the labelled windows
    (``labelled``: their indices; None: all). With them: :func:`ttslab.distill.classic_kd` at
    ``(T, alpha)`` on every window, hard labels on the ``labelled`` ones only.
    """
    distilled = teacher_logits is not None and alpha > 0
    if distilled:
        if teacher_logits.shape[:2] != train.y.shape or teacher_logits.shape[2] != config.num_classes:
            raise ValueError(f"teacher logits {teacher_logits.shape} do not fit {len(train)} windows x "
                             f"{train.y.shape[1]} frames x {config.num_classes} classes")
        items = _items(train, logits=teacher_logits, keep_labels=labelled)
        loss_fn = classic_kd(frame_ce_loss, T=T, alpha=alpha, mask_key="mask")
    else:
        items = _items(train, indices=labelled)
        loss_fn = frame_ce_loss
    torch.manual_seed(seed)
    model = FrameClassifier(config)
    batches = Batches(items, train_config.batch_size, collate_frames, seed=train_config.seed)
    history = fit(model, loss_fn, batches, train_config, progress=progress, desc=desc, device="cpu")
    return model.eval(), history.seconds


@torch.no_grad()
def predict_logits(model: nn.Module, frames: FrameSet, batch_size: int = 64) -> np.ndarray:
    """Logits (N, W, K) of ``model`` on every window (eval mode)."""
    model.eval()
    out = [model(torch.from_numpy(frames.x[i:i + batch_size])).numpy() for i in range(0, len(frames), batch_size)]
    return np.concatenate(out)


def teacher_logits(model: nn.Module, frames: FrameSet, batch_size: int = 64) -> np.ndarray:
    """The frozen teacher's logits on the training windows, computed once for every student (float16 to save memory:
    the rounding, ~1e-3 relative, is far below what a temperature changes)."""
    return predict_logits(model, frames, batch_size).astype(np.float16)


def accuracy(logits: np.ndarray, frames: FrameSet) -> float:
    """Fraction of real frames whose argmax is the true phone."""
    real = frames.mask & (frames.y != IGNORE)
    return float((logits.argmax(-1)[real] == frames.y[real]).mean())


@torch.no_grad()
def seconds_per_second_of_speech(model: nn.Module, frames: FrameSet, frame_rate: float, batch_size: int = 64,
                                 repeats: int = 1) -> float:
    """Real-time factor of classifying ``frames``: compute seconds per second of audio (best of ``repeats``)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        predict_logits(model, frames, batch_size)
        best = min(best, time.perf_counter() - start)
    return best / (frames.frames / frame_rate)


def soft_confusion(logits: np.ndarray, frames: FrameSet, T: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``(M, counts)``: ``M[i, j]`` mean ``p_T(z)_j`` over the real frames of true phone ``i`` (rows of unseen
    phones are 0), ``counts[i]`` how many frames that is."""
    real = frames.mask & (frames.y != IGNORE)
    p = soft_targets(torch.from_numpy(logits[real].astype(np.float64)), T).numpy()
    y = frames.y[real]
    K = logits.shape[-1]
    M = np.zeros((K, K))
    np.add.at(M, y, p)
    counts = np.bincount(y, minlength=K)
    return M / np.maximum(counts, 1)[:, None], counts


def top_confusions(M: np.ndarray, counts: np.ndarray, k: int = 10, min_frames: int = 50) -> list[dict]:
    """The ``k`` largest off-diagonal entries of a :func:`soft_confusion` matrix, as phone pairs."""
    off = M.copy()
    np.fill_diagonal(off, 0.0)
    off[counts < min_frames] = 0.0
    order = np.argsort(off, axis=None)[::-1][:k]
    return [{"phone": ID_TO_PHONE[i], "confused_with": ID_TO_PHONE[j], "mean_prob": float(off[i, j])}
            for i, j in zip(*np.unravel_index(order, off.shape))]


# ---------------------------------------------------------------------------------------------
# The experiment


@dataclass
class ClassicSettings:
    """What :func:`run_classic_experiment` trains: the grid, the label fraction and the step budgets."""

    temperatures: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    alphas: tuple[float, ...] = (0.0, 0.5, 0.9)
    label_fraction: float = 0.1
    few_label_runs: tuple[tuple[float, float], ...] = ((4.0, 0.5), (4.0, 0.9))  # (T, alpha), fixed a priori
    teacher_train: TrainConfig = None
    student_train: TrainConfig = None
    confusion_T: float = 4.0
    seed: int = 0

    def __post_init__(self):
        # one CPU thread: the teacher ~0.25 s a step (batch 32 x 100 frames), a student ~0.08 s
        self.teacher_train = self.teacher_train or TrainConfig(steps=600, batch_size=32, lr=3e-3, warmup=30,
                                                               grad_clip=5.0, log_every=50, seed=self.seed, threads=1)
        self.student_train = self.student_train or TrainConfig(steps=250, batch_size=32, lr=5e-3, warmup=15,
                                                               grad_clip=5.0, log_every=50, seed=self.seed, threads=1)


def _row(name: str, model: FrameClassifier, seconds: float, test: FrameSet, frame_rate: float, **extra) -> dict:
    logits = predict_logits(model, test)
    return {"model": name, **extra, "accuracy": accuracy(logits, test), "parameters": model.num_parameters(),
            "train_seconds": round(seconds, 1),
            "rtf": seconds_per_second_of_speech(model, test, frame_rate, repeats=2)}


def run_classic_experiment(train: FrameSet, test: FrameSet, settings: ClassicSettings | None = None, *,
                           frame_rate: float, teacher_config: FrameModelConfig | None = None,
                           student_config: FrameModelConfig | None = None, progress: bool = False) -> dict:
    """Teacher, then same-size students: scratch, the ``T x alpha`` grid, and few labels (scratch vs distilled).

    ``train``/``test``: normalised :class:`FrameSet`s. Returns ``{"rows": [...], "teacher": model,
    "students": {name: model}, "confusion": M, "counts": counts, "top_confusions": [...]}``; each row
    has accuracy on ``test``, parameters, training seconds and the real-time factor (compute seconds
    per second of speech, this process' threads). ``alpha = 0`` is the scratch student (CE only, ``T``
    plays no part), so it is trained once.
    """
    s = settings or ClassicSettings()
    tc, sc = teacher_config or FrameModelConfig.teacher(), student_config or FrameModelConfig.student()
    teacher, secs = train_classifier(tc, train, s.teacher_train, seed=s.seed, progress=progress, desc="teacher")
    rows = [_row("teacher (BiLSTM)", teacher, secs, test, frame_rate, T=None, alpha=None, labels=1.0)]
    z_t = teacher_logits(teacher, train)
    students = {}

    def student(name, **kw):
        model, secs = train_classifier(sc, train, s.student_train, seed=s.seed, progress=progress, desc=name, **kw)
        students[name] = model
        T, alpha = (kw.get("T"), kw.get("alpha", 0.0)) if kw.get("alpha", 0.0) > 0 else (None, 0.0)
        frac = s.label_fraction if kw.get("labelled") is not None else 1.0
        rows.append(_row(name, model, secs, test, frame_rate, T=T, alpha=alpha, labels=frac))

    student("student scratch")
    for T in s.temperatures:
        for alpha in s.alphas:
            if alpha > 0:
                student(f"student KD T={T:g} a={alpha:g}", teacher_logits=z_t, T=T, alpha=alpha)
    few = label_subset(train, s.label_fraction, s.seed)
    student(f"student scratch {s.label_fraction:.0%} labels", labelled=few)
    for T, alpha in s.few_label_runs:
        student(f"student KD T={T:g} a={alpha:g} {s.label_fraction:.0%} labels", teacher_logits=z_t, T=T,
                alpha=alpha, labelled=few)
    M, counts = soft_confusion(z_t.astype(np.float32), train, s.confusion_T)
    return {"rows": rows, "teacher": teacher, "students": students, "confusion": M, "counts": counts,
            "top_confusions": top_confusions(M, counts), "train_frames": train.frames, "test_frames": test.frames,
            "train_windows": len(train), "labelled_windows": len(few)}
