"""Speaker adaptation of a multi-speaker FastSpeech: a new row in the speaker table, then one of five methods.

A new speaker ``s*`` with ``k`` recordings joins a trained model ``f(x; theta0)`` (the teacher) as a
new row ``e*`` of the speaker table. Every method minimises the FastSpeech loss on those ``k``
utterances over a different set of trainable parameters::

    finetune_all       theta, e*                        everything (5.9 M for the teacher)
    decoder_variance   decoder, mel head, postnet, duration/pitch/energy predictors and embeddings, e*
    speaker_embedding  e* only                          d_model numbers (192)
    lora               LoRA adapters on the decoder and predictors (base frozen, merged after), e*
    l2sp               like finetune_all, plus  (beta / 2) * || theta_shared - theta0 ||^2

L2-SP (Li, Grandvalet & Davoine 2018) pulls the shared weights back toward the teacher's instead of
toward zero (plain weight decay): its gradient is ``beta * (theta - theta0)``, so the further a weight
wanders, the harder it is pulled back, which limits *forgetting* of the source speakers.

**k = 0** (no training at all): the new row copies the embedding and pitch/energy statistics of the
*nearest* source speaker. "Nearest" is measured on a speaker signature, the mean log-mel spectrum
(80 bins, natural-log units) and the mean phone log-F0 of an enrolment recording::

    d(a, b) = sqrt( mean_b (mu_a,b - mu_b,b)^2 + (logF0_a - logF0_b)^2 )

(both terms in natural-log units: 0.06 of log-F0 is a semitone). With ``k >= 1`` the new row starts
from the same nearest speaker and is trained.

Optional extra losses during adaptation (the instance and relation kinds of transfer,
:mod:`ttslab.transfer.kinds`): ``source_items`` are source-speaker training items; with
``instance_weight > 0`` each step adds ``instance_weight * loss`` on a source batch drawn with
probabilities ``source_weights``; with ``relation_weight > 0`` it adds the relational-KD loss between
the adapting model's and the frozen teacher's utterance embeddings on a source batch.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import torch

from ttslab.models.fastspeech import FastSpeech, collate_fastspeech, fastspeech_items, fastspeech_loss
from ttslab.models.fastspeech.data import speaker_stats_from_items
from ttslab.transfer.adapters import add_lora, merge_lora

METHODS = ("finetune_all", "decoder_variance", "speaker_embedding", "lora", "l2sp")
#: Submodules method ``decoder_variance`` trains (besides the new speaker row).
DECODER_VARIANCE = ("decoder", "mel_head", "postnet", "duration_predictor", "pitch_predictor", "energy_predictor",
                    "pitch_embedding", "energy_embedding")
#: Learning rates per method (Adam): a lone embedding row or fresh adapters take larger steps than
#: pretrained weights, which a large step would wreck.
DEFAULT_LR = {"finetune_all": 5e-4, "decoder_variance": 5e-4, "speaker_embedding": 2e-2, "lora": 3e-3,
              "l2sp": 5e-4}


@dataclass
class AdaptConfig:
    """Settings of one adaptation run (the recipe :mod:`ttslab.train.adapt` picks them per mode)."""

    steps: int = 60
    batch_size: int = 8
    lr: float | None = None             # None: DEFAULT_LR[method]
    rank: int = 4                       # LoRA rank and scale alpha
    alpha: float = 8.0
    l2sp_beta: float = 1.0
    instance_weight: float = 0.0
    relation_weight: float = 0.0
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Data: k utterances, speaker signatures, the nearest speaker


def adaptation_utterances(corpus, speaker: str, k: int, split: str = "train") -> list:
    """The first ``k`` ``split`` utterances of ``speaker`` in corpus order (a clear error if there are fewer)."""
    utts = list(corpus.filter(speakers=speaker, split=split))
    if not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k is a number of utterances and must be >= 0, got {k!r}")
    if k > len(utts):
        raise ValueError(f"k={k} is more than the {len(utts)} {split!r} utterances of {speaker!r} in this corpus; "
                         f"use k <= {len(utts)} (or the full-mode corpus)")
    return utts[:k]


def speaker_signature(items: Sequence[dict]) -> np.ndarray:
    """``(81,)``: the mean log-mel over all frames (80) and the mean phone log-F0 of ``items``."""
    if not items:
        raise ValueError("a speaker signature needs at least one utterance")
    mel = np.concatenate([it["mel"] for it in items]).astype(np.float64).mean(0)
    pitch = np.concatenate([it["pitch"][it["durations"] > 0] for it in items]).astype(np.float64).mean()
    return np.r_[mel, pitch]


def signature_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``sqrt(mean_b (Δ mean log-mel_b)^2 + (Δ mean log-F0)^2)`` (see the module docstring).

    >>> signature_distance(np.r_[np.zeros(80), 0.0], np.r_[np.ones(80), 0.0])
    1.0
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.sqrt(np.mean((a[:-1] - b[:-1]) ** 2) + (a[-1] - b[-1]) ** 2))


def nearest_speaker(target: np.ndarray, signatures: dict[str, np.ndarray]) -> tuple[str, dict[str, float]]:
    """The speaker whose signature is closest to ``target``, and every distance."""
    if not signatures:
        raise ValueError("no source-speaker signatures to compare with")
    dist = {s: signature_distance(target, sig) for s, sig in signatures.items()}
    return min(dist, key=dist.get), dist


# ---------------------------------------------------------------------------------------------
# A model with a new speaker row, and what each method trains


def with_new_speaker(teacher: FastSpeech, name: str, items: Sequence[dict] = (), *,
                     init_from: str | None = None) -> FastSpeech:
    """A copy of ``teacher`` with a speaker row ``name`` copied from ``init_from`` (default: the mean row).

    The row's pitch/energy statistics come from ``items`` (the new speaker's items, indexed with
    ``teacher.speakers + (name,)``) when given, else from ``init_from``.
    """
    if name in teacher.speakers:
        raise ValueError(f"speaker {name!r} already exists in this model ({list(teacher.speakers)}); adapt to a "
                         f"new name (a speaker the model already has needs no new row)")
    model = copy.deepcopy(teacher)
    stats = speaker_stats_from_items(items, list(teacher.speakers) + [name]) if items else {}
    model.add_speakers([name], init_from=init_from, stats=stats)
    return model


def _trainable(model: FastSpeech, method: str, config: AdaptConfig) -> list[torch.nn.Parameter]:
    """Set ``requires_grad`` for ``method`` (adding adapters for ``lora``); return the trainable parameters."""
    if method == "lora":
        add_lora(model, rank=config.rank, alpha=config.alpha)
    else:
        for name, p in model.named_parameters():
            top = name.split(".")[0]
            p.requires_grad_(method in ("finetune_all", "l2sp")
                             or (method == "decoder_variance" and top in DECODER_VARIANCE))
    model.speaker_embedding.weight.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def count_trainable(model: FastSpeech, method: str) -> int:
    """Parameters that ``method`` actually changes: the new speaker row counts ``d_model``, not the table."""
    table = model.speaker_embedding.weight
    return sum(p.numel() for p in model.parameters() if p.requires_grad and p is not table) + table.shape[1]


def l2sp_penalty(model: torch.nn.Module, reference: dict[str, torch.Tensor], beta: float) -> torch.Tensor:
    """``(beta / 2) * sum ||theta - theta0||^2`` over the trainable parameters named in ``reference``
    whose shapes match (the grown speaker table is compared on its old rows only).

    Its gradient is ``beta * (theta - theta0)`` (``tests/test_transfer.py`` checks it).
    """
    total = torch.zeros(())
    for name, p in model.named_parameters():
        if not p.requires_grad or name not in reference:
            continue
        ref = reference[name].to(p.device, p.dtype)
        cur = p[: ref.shape[0]] if p.shape != ref.shape and p.shape[1:] == ref.shape[1:] else p
        total = total + ((cur - ref) ** 2).sum()
    return 0.5 * beta * total


# ---------------------------------------------------------------------------------------------
# The adaptation run


def adapt_speaker(teacher: FastSpeech, name: str, utterances: Sequence, method: str,
                  config: AdaptConfig | None = None, *, init_from: str | None = None,
                  items: Sequence[dict] | None = None, source_items: Sequence[dict] | None = None,
                  source_weights: Sequence[float] | None = None) -> tuple[FastSpeech, dict]:
    """Adapt ``teacher`` to a new speaker ``name`` from ``utterances`` by ``method``; return ``(model, info)``.

    ``teacher`` is left untouched. ``init_from`` names the speaker row to start from (the nearest one,
    :func:`nearest_speaker`). ``items`` may pass precomputed items of ``utterances`` (indexed with
    ``teacher.speakers + (name,)``). With no utterances (k = 0) the copy of ``init_from`` is returned
    untrained. The returned model is in eval mode with plain layers (adapters merged).
    ``info``: method, k, trainable parameters, seconds, first/last loss.
    """
    config = config or AdaptConfig()
    if method not in METHODS:
        raise ValueError(f"unknown adaptation method {method!r}; choose one of {METHODS}")
    speakers = list(teacher.speakers) + [name]
    if name in teacher.speakers:
        with_new_speaker(teacher, name)  # raises the clear error
    if items is None:
        items = fastspeech_items(utterances, speakers) if len(utterances) else []
    items = list(items)
    model = with_new_speaker(teacher, name, items, init_from=init_from)
    row = model.speaker_index(name)
    info = {"method": method, "k": len(items), "init_from": init_from, "steps": 0, "seconds": 0.0}
    if not items:
        info["trainable_parameters"] = 0
        return model.eval(), info

    params = _trainable(model, method, config)
    info["trainable_parameters"] = count_trainable(model, method)
    mask = torch.zeros_like(model.speaker_embedding.weight)
    mask[row] = 1.0  # only the new row of the table learns (other rows would drift on source batches)
    hook = model.speaker_embedding.weight.register_hook(lambda g: g * mask)
    reference = ({k: v.detach().clone() for k, v in teacher.state_dict().items()} if method == "l2sp" else None)
    frozen_teacher = copy.deepcopy(teacher).eval() if config.relation_weight > 0 else None
    if (config.instance_weight > 0 or config.relation_weight > 0) and not source_items:
        raise ValueError("instance_weight / relation_weight need source_items (source-speaker training items)")
    lr = config.lr if config.lr is not None else DEFAULT_LR[method]
    opt = torch.optim.Adam(params, lr=lr)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    probs = None
    if source_items and source_weights is not None:
        probs = np.asarray(source_weights, np.float64)
        if len(probs) != len(source_items) or (probs < 0).any() or probs.sum() <= 0:
            raise ValueError("source_weights must be one non-negative weight per source item, not all zero")
        probs = probs / probs.sum()
    losses = []
    model.train()
    t0 = time.perf_counter()
    for step in range(config.steps):
        pick = rng.choice(len(items), size=min(config.batch_size, len(items)), replace=False)
        loss, _ = fastspeech_loss(model, collate_fastspeech([items[i] for i in pick]))
        if reference is not None:
            loss = loss + l2sp_penalty(model, reference, config.l2sp_beta)
        if source_items and (config.instance_weight > 0 or config.relation_weight > 0):
            src = rng.choice(len(source_items), size=min(config.batch_size, len(source_items)), replace=False, p=probs)
            batch = collate_fastspeech([source_items[i] for i in src])
            if config.instance_weight > 0:
                loss = loss + config.instance_weight * fastspeech_loss(model, batch)[0]
            if config.relation_weight > 0:
                from ttslab.transfer.kinds import relational_kd_loss, utterance_embeddings

                with torch.no_grad():
                    t_emb = utterance_embeddings(frozen_teacher, batch)
                loss = loss + config.relation_weight * relational_kd_loss(utterance_embeddings(model, batch), t_emb)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(float(loss.detach()))
    info.update(steps=config.steps, seconds=round(time.perf_counter() - t0, 2), lr=lr,
                first_loss=losses[0], last_loss=losses[-1])
    hook.remove()
    if method == "lora":
        merge_lora(model)
    for p in model.parameters():
        p.requires_grad_(True)
    return model.eval(), info
