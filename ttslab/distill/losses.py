"""Soft targets with a temperature and the classic distillation loss (Hinton, Vinyals & Dean 2015).

A classifier's logits ``z`` (K classes) become a distribution at temperature ``T``::

    p_T(z)_i = exp(z_i / T) / sum_j exp(z_j / T)                        (soft_targets)

``T = 1`` is the ordinary softmax; a larger ``T`` flattens it, so the small probabilities the teacher
gives to wrong classes (which phones it finds *similar*: the "dark knowledge") become visible to the
student's gradient. The classic loss mixes the soft and the hard labels ``y``::

    L = alpha * T^2 * KL(p_T(z_t) || p_T(z_s)) + (1 - alpha) * CE(p_1(z_s), y)          (kd_loss)
    KL(p || q) = sum_i p_i (log p_i - log q_i)

Why ``T^2``: the gradient of the KL term with respect to a student logit is
``dKL/dz_s,i = (p_T(z_s)_i - p_T(z_t)_i) / T``, and for large ``T`` the difference of the two softmaxes
itself shrinks like ``1/T`` (``p_T(z)_i ~ (1 + (z_i - mean(z)) / T) / K``), so the soft gradient falls
like ``1/T^2``. Multiplying by ``T^2`` keeps its size about the same whatever ``T``, so ``alpha`` means
the same share of the gradient at every temperature.

The high-temperature limit is logit matching: with the centred logits ``c = z - mean(z)``::

    T^2 * KL(p_T(z_t) || p_T(z_s))  ->  ||c_s - c_t||^2 / (2 K)      as T -> inf   (logit_matching_loss)

(expand ``log p_T`` to second order in ``1/T``), whose gradient is ``(c_s - c_t) / K``; Caruana's
logit regression (Ba & Caruana 2014) is the same up to the centring and the ``1/K``.

Reductions: every loss here sums over classes and averages over *positions*: the batch rows, or the
real frames of a padded sequence batch (``mask``). That is PyTorch's ``kl_div(..., "batchmean")`` on
flattened positions.

Where the reference text (this project's seed document) is loose: its Keras example divides the
teacher's *probabilities* (the model ends in a softmax) by ``T`` and applies a softmax again, which is
not ``p_T``; ``T`` must divide the logits. It also drops the ``T^2`` factor, so its 50/50 weighting at
``T = 5`` gives the soft term about 1/25 of the intended weight.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def check_temperature(T: float) -> float:
    """``T`` as a float, or a ``ValueError`` when it is not a finite number > 0."""
    try:
        T = float(T)
    except (TypeError, ValueError):
        raise ValueError(f"temperature T must be a number > 0, got {T!r}") from None
    if not (math.isfinite(T) and T > 0):
        raise ValueError(f"temperature T must be finite and > 0 (T = 1 is the plain softmax; 2-8 is usual), got {T}")
    return T


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float, or a ``ValueError`` when it is outside ``[0, 1]``."""
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}") from None
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha is the weight of the soft-target term and must lie in [0, 1] "
                         f"(0: hard labels only, 1: teacher only), got {alpha}")
    return alpha


def check_same_classes(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    """Teacher and student must score the same classes over the same positions."""
    if student_logits.shape[-1] != teacher_logits.shape[-1]:
        raise ValueError(f"the teacher scores {teacher_logits.shape[-1]} classes and the student "
                         f"{student_logits.shape[-1]}: distillation needs one vocabulary (the same phone set "
                         f"and class order for both models)")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ in shape: give both the same batch (same positions)")


def soft_targets(logits: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """``p_T(z)_i = exp(z_i / T) / sum_j exp(z_j / T)`` over the last dimension.

    >>> [round(p, 4) for p in soft_targets(torch.tensor([2.0, 0.0]), T=1.0).tolist()]
    [0.8808, 0.1192]
    >>> [round(p, 4) for p in soft_targets(torch.tensor([2.0, 0.0]), T=4.0).tolist()]  # flatter
    [0.6225, 0.3775]
    """
    return torch.softmax(logits / check_temperature(T), dim=-1)


def _position_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of per-position ``values`` (...,) over the True entries of ``mask`` (all when None)."""
    if mask is None:
        return values.mean()
    if mask.shape != values.shape:
        raise ValueError(f"mask {tuple(mask.shape)} must have the positions' shape {tuple(values.shape)}")
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1)


def soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float = 1.0,
            mask: torch.Tensor | None = None) -> torch.Tensor:
    """``KL(p_T(z_t) || p_T(z_s))`` summed over classes, averaged over positions (``mask``: real ones).

    The teacher's logits are detached: no gradient ever flows into the teacher.
    """
    T = check_temperature(T)
    check_same_classes(student_logits, teacher_logits)
    log_q = torch.log_softmax(student_logits / T, dim=-1)
    log_p = torch.log_softmax(teacher_logits.detach() / T, dim=-1)
    return _position_mean((log_p.exp() * (log_p - log_q)).sum(-1), mask)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor | None = None, *,
            T: float = 4.0, alpha: float = 0.5, mask: torch.Tensor | None = None,
            ignore_index: int = -100) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The classic loss ``alpha * T^2 * KL(p_T(z_t) || p_T(z_s)) + (1 - alpha) * CE(z_s, y)``.

    ``student_logits``/``teacher_logits`` (..., K); ``targets`` (...) class ids (``ignore_index`` marks
    positions without a label: the soft term still uses them, which is how unlabelled data helps);
    ``mask`` (...) True on real positions (padding is ignored by both terms). Returns
    ``(loss, {"soft": T^2 KL, "hard": CE})``; ``targets`` may be None only when ``alpha == 1``.
    """
    T, alpha = check_temperature(T), check_alpha(alpha)
    soft = T * T * soft_kl(student_logits, teacher_logits, T, mask)
    terms = {"soft": soft}
    loss = alpha * soft
    if alpha < 1.0:
        if targets is None:
            raise ValueError("targets (hard labels) are needed when alpha < 1; pass alpha=1 to learn from the "
                             "teacher alone")
        if targets.shape != student_logits.shape[:-1]:
            raise ValueError(f"targets {tuple(targets.shape)} must have the logits' positions "
                             f"{tuple(student_logits.shape[:-1])}")
        y = targets.long()
        if mask is not None:
            y = y.masked_fill(~mask.bool(), ignore_index)
        labelled = y != ignore_index
        ce = F.cross_entropy(student_logits.reshape(-1, student_logits.shape[-1]), y.reshape(-1),
                             ignore_index=ignore_index, reduction="sum") / labelled.sum().clamp(min=1)
        terms["hard"] = ce
        loss = loss + (1.0 - alpha) * ce
    return loss, terms


def centred(logits: torch.Tensor) -> torch.Tensor:
    """Logits minus their mean over classes (softmax cannot see a shift, so only these matter)."""
    return logits - logits.mean(-1, keepdim=True)


def logit_matching_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                        mask: torch.Tensor | None = None) -> torch.Tensor:
    """The ``T -> inf`` limit of ``T^2 KL``: ``||c_s - c_t||^2 / (2K)`` per position, averaged.

    >>> z_s, z_t = torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([[0.5, 0.2, 0.0]])
    >>> float(logit_matching_loss(z_s, z_t)) - float(100.0**2 * soft_kl(z_s, z_t, T=100.0)) < 1e-3
    True
    """
    check_same_classes(student_logits, teacher_logits)
    diff = centred(student_logits) - centred(teacher_logits.detach())
    return _position_mean(diff.pow(2).sum(-1) / (2 * diff.shape[-1]), mask)
