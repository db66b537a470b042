"""Distillation as a wrapper around any model's pure loss ``loss_fn(model, batch) -> (loss, logs)``.

:func:`distill` returns a new loss function with the same signature, so :func:`ttslab.train.fit`,
:func:`ttslab.train.train_step` and the federated client train a student exactly as they train
anything else::

    L_student(batch) = base_weight * loss_fn(student, batch) + sum_k w_k * term_k(out_s, out_t, batch)

How it sees the outputs without changing ``loss_fn``: while ``loss_fn`` runs, a forward hook on the
student records the arguments of its (single) forward call and the outputs ``out_s``; the teacher is
then called with the *same* arguments (teacher forcing included) under ``torch.no_grad()`` in eval
mode, giving ``out_t``. So a FastSpeech student and teacher both see the ground-truth durations, and
their mels are frame-aligned. With ``teacher=None`` the teacher's outputs are read from
``batch["teacher"]`` instead (precomputed once, e.g. a frozen classifier's logits: cheaper than a
teacher forward per step).

The terms (each a small object with a ``weight``):

* :class:`SoftTargetKD` -- the classic ``T^2 KL(p_T^t || p_T^s)`` on logits (:mod:`.losses`); with
  ``base_weight = 1 - alpha`` and ``weight = alpha`` it is Hinton et al.'s loss (:func:`classic_kd`);
* :class:`OutputKD` -- L1 or L2 between the student's and the teacher's outputs (the mel: "output KD";
  pitch and energy predictions too), over real positions only;
* :class:`FeatureKD` -- FitNets hints (Romero et al. 2015): ``|| W_k h_s^(a_k) - h_t^(b_k) ||^2`` for
  chosen pairs of hidden layers, with learned linear projections ``W_k`` (student width -> teacher width);
* :class:`DurationKD` -- the teacher's durations as targets: its predicted ``log(1 + d)`` ("log", soft),
  its rounded frame counts ("rounded"), or the softened distribution of the utterance's time over its
  phones, ``KL(softmax(logd_t / T) || softmax(logd_s / T))`` per utterance ("distribution").

Learned projections must be trained with the student: wrap them together, ``KDStudent(student, hints)``,
and give that to ``fit`` (it forwards to the student; ``.student`` is the model to keep).
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

import torch
from torch import nn

from ttslab.distill.losses import check_alpha, check_temperature, soft_kl

LossFn = Callable[[nn.Module, dict], "tuple[torch.Tensor, dict]"]


class KDStudent(nn.Module):
    """A student plus the trainable modules distillation adds (FitNets projections): one module for ``fit``.

    ``forward`` is the student's, so a model's ``loss_fn`` runs unchanged; save ``.student``.
    """

    def __init__(self, student: nn.Module, *extras: nn.Module):
        super().__init__()
        self.student = student
        self.extras = nn.ModuleList(extras)

    def forward(self, *args, **kwargs):
        return self.student(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# Terms


def _masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``x`` (B, L, ...) over the True positions of ``mask`` (B, L) and all trailing entries."""
    if mask is None:
        return x.mean()
    m = mask.to(x.dtype)
    while m.ndim < x.ndim:
        m = m[..., None]
    m = m.expand_as(x)
    return (x * m).sum() / m.sum().clamp(min=1)


def _get(out, key: str | None, who: str):
    if key is None:
        return out
    if not isinstance(out, dict) or key not in out:
        have = sorted(out) if isinstance(out, dict) else type(out).__name__
        raise KeyError(f"the {who}'s output has no {key!r} (it has {have})")
    return out[key]


class SoftTargetKD:
    """``weight * T^2 * KL(p_T(z_t) || p_T(z_s))`` on logits (``key``: where they sit in a dict output).

    ``mask_key`` names a bool (B, L) entry of the batch that marks real positions (None: all count).
    """

    def __init__(self, T: float = 4.0, weight: float = 1.0, key: str | None = None, mask_key: str | None = None):
        self.T, self.weight, self.key, self.mask_key = check_temperature(T), float(weight), key, mask_key

    def __call__(self, out_s, out_t, batch: dict) -> torch.Tensor:
        z_s, z_t = _get(out_s, self.key, "student"), _get(out_t, self.key, "teacher")
        mask = batch[self.mask_key] if self.mask_key else None
        return self.T ** 2 * soft_kl(z_s, z_t, self.T, mask)


#: Which mask of a FastSpeech output covers which output: frame-rate or phone-rate.
FASTSPEECH_MASKS = {"mel": "frame_mask", "mel_postnet": "frame_mask", "decoder_out": "frame_mask",
                    "pitch": "phone_mask", "energy": "phone_mask", "log_duration": "phone_mask",
                    "encoder_out": "phone_mask", "variance_out": "phone_mask"}


class OutputKD:
    """``weight * mean |y_s - y_t|^p`` (``kind`` "l1": p = 1, "l2": p = 2) over real positions, per key.

    ``keys``: outputs to match (FastSpeech: ``"mel"``, ``"mel_postnet"``, ``"pitch"``, ``"energy"``);
    ``None`` for a model whose output is a single tensor. The mask of each key comes from
    :data:`FASTSPEECH_MASKS` (``masks`` overrides: ``{key: mask key in the output}``).
    """

    def __init__(self, keys: Sequence[str | None] = ("mel",), kind: str = "l1", weight: float = 1.0,
                 masks: dict[str, str] | None = None):
        if kind not in ("l1", "l2"):
            raise ValueError(f"kind must be 'l1' or 'l2', got {kind!r}")
        self.keys, self.kind, self.weight = tuple(keys), kind, float(weight)
        self.masks = {**FASTSPEECH_MASKS, **(masks or {})}

    def __call__(self, out_s, out_t, batch: dict) -> torch.Tensor:
        total = 0.0
        for key in self.keys:
            y_s, y_t = _get(out_s, key, "student"), _get(out_t, key, "teacher").detach()
            if y_s.shape != y_t.shape:
                raise ValueError(f"output {key!r}: student {tuple(y_s.shape)} vs teacher {tuple(y_t.shape)}; both "
                                 f"must predict the same features on the same positions (same n_mels, same "
                                 f"durations: run both teacher-forced)")
            mask = out_s.get(self.masks.get(key)) if isinstance(out_s, dict) and key else None
            diff = (y_s - y_t).abs() if self.kind == "l1" else (y_s - y_t) ** 2
            total = total + _masked_mean(diff, mask)
        return total


LAYER = re.compile(r"^(?P<name>[a-z_]+)(?:\[(?P<index>-?\d+)\])?$")


def fastspeech_layers(config) -> dict[str, int]:
    """Hidden layers of a FastSpeech (``FastSpeech.forward``'s outputs) that :class:`FeatureKD` can match,
    with their widths: ``encoder_out``, ``variance_out``, ``decoder_out``, ``encoder_states[i]``,
    ``decoder_states[j]`` (also negative indices)."""
    d = config.d_model
    layers = {"encoder_out": d, "variance_out": d, "decoder_out": d}
    for name, n in (("encoder_states", config.encoder_layers), ("decoder_states", config.decoder_layers)):
        for i in range(n):
            layers[f"{name}[{i}]"] = layers[f"{name}[{i - n}]"] = d
    return layers


def _layer(out: dict, spec: str) -> torch.Tensor:
    m = LAYER.match(spec)
    value = out[m["name"]]
    return value[int(m["index"])] if m["index"] is not None else value


class FeatureKD(nn.Module):
    """FitNets hints: ``weight * sum_k mean || W_k h_s[a_k] + b_k - h_t[b_k] ||^2 / d_t`` over real positions.

    ``pairs``: ``[(student layer, teacher layer), ...]`` by name (``"decoder_states[-1]"``...);
    ``student_layers``/``teacher_layers``: ``{name: width}`` of what each model's forward returns
    (:func:`fastspeech_layers`; :meth:`for_fastspeech` fills them in). A name that is not there is
    refused at construction. The projections ``W_k`` are this module's parameters: train it with
    the student (:class:`KDStudent`). Each pair must be at the same rate (phones or frames); the mask
    is the one of the student's layer (``FASTSPEECH_MASKS``: ``encoder*``/``variance_out`` phones,
    ``decoder*`` frames).
    """

    def __init__(self, pairs: Sequence[tuple[str, str]], student_layers: dict[str, int],
                 teacher_layers: dict[str, int], weight: float = 1.0):
        super().__init__()
        if not pairs:
            raise ValueError("give at least one (student layer, teacher layer) pair")
        for who, layers, names in (("student", student_layers, [p[0] for p in pairs]),
                                   ("teacher", teacher_layers, [p[1] for p in pairs])):
            missing = [n for n in names if n not in layers]
            if missing:
                raise ValueError(f"the {who} has no layer(s) {missing}; it has {sorted(layers)}")
        self.pairs, self.weight = [tuple(p) for p in pairs], float(weight)
        self.projections = nn.ModuleList(nn.Linear(student_layers[a], teacher_layers[b]) for a, b in self.pairs)

    @classmethod
    def for_fastspeech(cls, student, teacher, pairs: Sequence[tuple[str, str]], weight: float = 1.0) -> "FeatureKD":
        """Hints between two :class:`~ttslab.models.fastspeech.FastSpeech` models (layers from their configs)."""
        return cls(pairs, fastspeech_layers(student.config), fastspeech_layers(teacher.config), weight)

    @staticmethod
    def _mask(out: dict, spec: str):
        rate = "frame_mask" if spec.startswith("decoder") else "phone_mask"
        return out.get(rate) if isinstance(out, dict) else None

    def forward(self, out_s, out_t, batch: dict) -> torch.Tensor:
        total = 0.0
        for (a, b), proj in zip(self.pairs, self.projections):
            h_s, h_t = _layer(out_s, a), _layer(out_t, b).detach()
            if h_s.shape[:-1] != h_t.shape[:-1]:
                raise ValueError(f"feature KD pair ({a!r}, {b!r}): student {tuple(h_s.shape)} and teacher "
                                 f"{tuple(h_t.shape)} are not on the same positions (match phone-rate layers "
                                 f"with phone-rate, frame-rate with frame-rate)")
            err = (proj(h_s) - h_t) ** 2
            total = total + _masked_mean(err, self._mask(out_s, a))
        return total


DURATION_KINDS = ("log", "rounded", "distribution")


class DurationKD:
    """The teacher's durations as the student's duration targets (FastSpeech outputs).

    * ``"log"``: ``mean (logd_s - logd_t)^2``, the teacher's continuous ``log(1 + d)`` prediction (soft);
    * ``"rounded"``: the same against ``log(1 + round(exp(logd_t) - 1))``, the frame counts the teacher
      would synthesise (FastSpeech 1 took its durations from a teacher this way);
    * ``"distribution"``: per utterance, ``T^2 KL(softmax(logd_t / T) || softmax(logd_s / T))`` over its
      real phones -- which phones get more of the time, as a soft distribution at temperature ``T``.
    """

    def __init__(self, kind: str = "log", weight: float = 1.0, T: float = 1.0):
        if kind not in DURATION_KINDS:
            raise ValueError(f"kind must be one of {DURATION_KINDS}, got {kind!r}")
        self.kind, self.weight, self.T = kind, float(weight), check_temperature(T)

    def __call__(self, out_s, out_t, batch: dict) -> torch.Tensor:
        d_s, d_t = _get(out_s, "log_duration", "student"), _get(out_t, "log_duration", "teacher").detach()
        mask = _get(out_s, "phone_mask", "student")
        if d_s.shape != d_t.shape:
            raise ValueError(f"durations: student {tuple(d_s.shape)} vs teacher {tuple(d_t.shape)}; both must "
                             f"read the same phone sequence")
        if self.kind == "log":
            return _masked_mean((d_s - d_t) ** 2, mask)
        if self.kind == "rounded":
            frames = torch.round(torch.expm1(d_t).clamp(min=0))
            return _masked_mean((d_s - torch.log1p(frames)) ** 2, mask)
        # padded phones get no share of the time (a very negative logit; finite, so no 0 * inf = NaN)
        log_q = torch.log_softmax(d_s.masked_fill(~mask, -1e9) / self.T, dim=-1)
        log_p = torch.log_softmax(d_t.masked_fill(~mask, -1e9) / self.T, dim=-1)
        kl = torch.where(mask, log_p.exp() * (log_p - log_q), torch.zeros_like(log_q)).sum(-1)
        return self.T ** 2 * kl.mean()


# ---------------------------------------------------------------------------------------------
# The wrapper


def _check_vocabularies(student: nn.Module, teacher: nn.Module) -> None:
    """Models with a ``config`` must read the same phones (and speakers) to be distilled into each other."""
    cs, ct = getattr(student, "config", None), getattr(teacher, "config", None)
    for field in ("n_phones", "num_classes", "n_mels", "speakers"):
        a, b = getattr(cs, field, None), getattr(ct, field, None)
        if a is not None and b is not None and a != b:
            raise ValueError(f"teacher and student differ in {field}: {b} vs {a}; distillation needs the same "
                             f"vocabulary and outputs (train the student with the teacher's {field})")


def distill(loss_fn: LossFn, terms: Sequence, *, teacher: nn.Module | None = None,
            base_weight: float = 1.0) -> LossFn:
    """``loss_fn`` plus distillation ``terms``: ``base_weight * loss_fn(model, batch) + sum_k w_k term_k``.

    ``teacher``: a frozen model called with the student's forward arguments (None: its outputs are in
    ``batch["teacher"]``). Logs gain ``"base"`` and one ``"kd_<Term>"`` entry per term (unweighted).
    Raises ``ValueError`` for mismatched teacher/student vocabularies (models with a ``config``),
    ``RuntimeError`` when ``loss_fn`` did not call the model exactly once, or when a term's learned
    parameters are not part of the model being trained (wrap them: :class:`KDStudent`).
    """
    if base_weight < 0:
        raise ValueError(f"base_weight must be >= 0, got {base_weight}")
    terms = list(terms)
    if not terms:
        raise ValueError("give at least one distillation term")
    if teacher is not None:
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    checked: set[int] = set()

    def wrapped(model: nn.Module, batch: dict):
        if id(model) not in checked:
            inner = model.student if isinstance(model, KDStudent) else model
            if teacher is not None:
                _check_vocabularies(inner, teacher)
            own = {id(p) for p in model.parameters()}
            for term in terms:
                if isinstance(term, nn.Module) and any(id(p) not in own for p in term.parameters()):
                    raise RuntimeError(f"{type(term).__name__} has learned parameters the optimizer of this model "
                                       f"will not see: train KDStudent(student, term) instead of the bare student")
            checked.add(id(model))
        calls = []
        handle = model.register_forward_hook(lambda m, args, kwargs, out: calls.append((args, kwargs, out)),
                                             with_kwargs=True)
        try:
            base, logs = loss_fn(model, batch)
        finally:
            handle.remove()
        if len(calls) != 1:
            raise RuntimeError(f"loss_fn called the model {len(calls)} times; distill() needs exactly one forward "
                               f"per batch to pair the student's outputs with the teacher's")
        args, kwargs, out_s = calls[0]
        if teacher is None:
            if "teacher" not in batch:
                raise KeyError("no teacher model and no batch['teacher'] (precomputed teacher outputs)")
            out_t = batch["teacher"]
        else:
            device = next((a.device for a in args if torch.is_tensor(a)), None)
            if device is not None and next(teacher.parameters()).device != device:
                teacher.to(device)
            with torch.no_grad():
                out_t = teacher(*args, **kwargs)
        loss = base_weight * base
        logs = {**logs, "base": float(base.detach())}
        for term in terms:
            value = term(out_s, out_t, batch)
            loss = loss + term.weight * value
            logs[f"kd_{type(term).__name__}"] = float(value.detach())
        return loss, logs

    return wrapped


def classic_kd(loss_fn: LossFn, *, T: float = 4.0, alpha: float = 0.5, teacher: nn.Module | None = None,
               key: str | None = None, mask_key: str | None = None) -> LossFn:
    """Hinton's loss around a classifier's cross-entropy ``loss_fn``:
    ``alpha * T^2 KL(p_T^t || p_T^s) + (1 - alpha) * loss_fn`` (see :func:`ttslab.distill.kd_loss`)."""
    alpha = check_alpha(alpha)
    return distill(loss_fn, [SoftTargetKD(T, alpha, key, mask_key)], teacher=teacher, base_weight=1.0 - alpha)


def output_kd(loss_fn: LossFn, teacher: nn.Module, keys: Sequence[str | None] = ("mel",), kind: str = "l1",
              weight: float = 1.0, base_weight: float = 1.0) -> LossFn:
    """``base_weight * loss_fn + weight * |y_s - y_t|`` on the outputs ``keys`` (:class:`OutputKD`)."""
    return distill(loss_fn, [OutputKD(keys, kind, weight)], teacher=teacher, base_weight=base_weight)


def duration_kd(loss_fn: LossFn, teacher: nn.Module, kind: str = "log", weight: float = 1.0, T: float = 1.0,
                base_weight: float = 1.0) -> LossFn:
    """``base_weight * loss_fn + weight * DurationKD(kind)`` (:class:`DurationKD`)."""
    return distill(loss_fn, [DurationKD(kind, weight, T)], teacher=teacher, base_weight=base_weight)


def feature_kd(loss_fn: LossFn, teacher: nn.Module, hints: FeatureKD, base_weight: float = 1.0) -> LossFn:
    """``base_weight * loss_fn + hints.weight * FitNets hints``; train ``KDStudent(student, hints)``."""
    return distill(loss_fn, [hints], teacher=teacher, base_weight=base_weight)


__all__ = ["KDStudent", "SoftTargetKD", "OutputKD", "FeatureKD", "DurationKD", "DURATION_KINDS", "FASTSPEECH_MASKS",
           "fastspeech_layers", "distill", "classic_kd", "output_kd", "duration_kd", "feature_kd"]
