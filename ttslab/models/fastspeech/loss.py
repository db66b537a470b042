"""The pure training loss ``(model, batch) -> (loss, logs)`` that recipes, distillation and federated code share."""

from __future__ import annotations

import torch

from ttslab.models.fastspeech.model import FastSpeech


# ---------------------------------------------------------------------------------------------
# Loss


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the True positions of ``mask`` (broadcast over trailing dims)."""
    while mask.ndim < x.ndim:
        mask = mask[..., None]
    mask = mask.expand_as(x)
    return (x * mask).sum() / mask.sum().clamp(min=1)


def loss_terms(out: dict, batch: dict) -> dict[str, torch.Tensor]:
    """The five FastSpeech 2 loss terms from a teacher-forced forward ``out`` and its ``batch``:

    * ``mel``, ``postnet``: L1 between predicted and target log-mel on real frames;
    * ``duration``: MSE of ``log(1 + d)``;  ``pitch``, ``energy``: MSE of the per-speaker z-scores,
      all on real phones.
    """
    target = batch["mel"]
    if target.shape[:2] != out["mel"].shape[:2]:
        raise ValueError(f"target mel {tuple(target.shape)} does not match the regulated length "
                         f"{tuple(out['mel'].shape)}: the durations must sum to the mel lengths")
    fmask, pmask = out["frame_mask"], out["phone_mask"]
    terms = {"mel": _masked_mean((out["mel"] - target).abs(), fmask)}
    if out["mel_postnet"] is not out["mel"]:
        terms["postnet"] = _masked_mean((out["mel_postnet"] - target).abs(), fmask)
    log_d = torch.log1p(batch["durations"].float())
    terms["duration"] = _masked_mean((out["log_duration"] - log_d) ** 2, pmask)
    terms["pitch"] = _masked_mean((out["pitch"] - out["pitch_target"]) ** 2, pmask)
    terms["energy"] = _masked_mean((out["energy"] - out["energy_target"]) ** 2, pmask)
    return terms


def fastspeech_loss(model: FastSpeech, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """Pure training loss: teacher-forced forward on a :func:`~ttslab.data.datasets.collate_acoustic`
    batch, ``loss = mel + postnet + duration + pitch + energy`` (FastSpeech 2's unweighted sum).

    Returns ``(loss, {term: float})``. Raises ``ValueError`` when the durations do not sum to the
    mel lengths (features and labels out of step).
    """
    if not torch.equal(batch["durations"].sum(1), batch["mel_lengths"]):
        raise ValueError("durations do not sum to mel_lengths in this batch; rebuild the feature cache")
    out = model(batch["phone_ids"], batch["speaker"], batch["phone_lengths"], durations=batch["durations"],
                pitch=batch["pitch"], energy=batch["energy"], stress=batch.get("stress"),
                word_position=batch.get("word_position"))
    terms = loss_terms(out, batch)
    loss = sum(terms.values())
    return loss, {k: float(v.detach()) for k, v in terms.items()}
