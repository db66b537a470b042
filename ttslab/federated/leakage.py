"""A real leakage attack: gradient inversion recovers a client's mel frames from what it shares.

In FedSGD (one local SGD step per round, or FedAvg with ``local_steps=1``) a client's reply is
``w_k = w - lr * g_k``, so the server knows the gradient ``g_k = (w - w_k) / lr`` of the client's loss
on its private batch. *Deep leakage from gradients* (DLG, Zhu et al. 2019) looks for inputs whose
gradient matches it::

    x^ = argmin_x  sum_layers || grad_w L(f_w(x), y) - g_k ||^2          (L-BFGS on x, labels y fixed)

and iDLG (Zhao et al. 2020) reads the labels off first: with softmax cross-entropy the gradient of the
last layer's bias is ``(1/B) sum_i (p_i - onehot(y_i))``, negative only at labels present in the batch
(:func:`infer_labels`). The victim here is a small speaker classifier on single log-mel frames
(:class:`FrameSpeakerClassifier`: 80 bands -> 256 -> 256 -> speakers, sigmoid activations, smooth
as DLG needs), trained federatedly on each client's recordings; a batch is ``B`` consecutive frames of
one utterance, so the reconstruction is a spectrogram one can look at and, through Griffin-Lim, hear.

Success is measured after matching reconstructed to true frames (the order inside a batch does not
change the gradient; :func:`match_frames`, Hungarian assignment) as the normalised error
``NMSE = mean (x^ - x)^2 / var(x)`` (0: perfect, about 1 or more: no better than the frames' mean).

Defences, each run through the real server code:

* **secure aggregation** (:func:`~ttslab.federated.secure.secure_fedavg`): the server only sees the
  mean of ``K`` clients' replies, i.e. the gradient of all their ``K B`` frames; the attacker then
  inverts ``K B`` frames and we score the target client's ``B`` frames against the closest of them;
* **DP-FedAvg** (:class:`~ttslab.federated.privacy.DPFedAvg`): the update clipped to norm ``C`` and
  ``N(0, sigma^2 C^2)`` added; the attacker sees the noisy update (in the worst case for the defence
  it knows every other client's update and subtracts it, which is what a round with the target alone
  shows).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ttslab.federated.strategies import Reply

#: Default size of the attacked model's hidden layers.
HIDDEN = 256
#: The fixed input normalisation of the classifier: typical log-mel mean and spread of the built-in corpus.
MEL_MEAN, MEL_STD = -4.7, 2.0


class FrameSpeakerClassifier(torch.nn.Module):
    """Speaker logits from one log-mel frame: ``(x - MEL_MEAN) / MEL_STD``, then ``Linear(n_mels, h) -
    sigmoid - Linear(h, h) - sigmoid - Linear(h, speakers)``. Twice differentiable everywhere (gradient
    matching differentiates the gradient), as the networks DLG was shown on.

    ``gain`` multiplies PyTorch's default initial weights. Measured (benchmarks/privacy.py): at
    ``gain=1`` the sigmoids work in their almost-linear middle, many batches of frames share the same
    gradient and DLG recovers nothing (NMSE about 1); at ``gain=4`` (weights of the size training
    produces) the gradient pins the frames down and DLG recovers them.
    """

    def __init__(self, n_mels: int = 80, speakers: int = 8, hidden: int = HIDDEN, gain: float = 4.0):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(n_mels, hidden), torch.nn.Sigmoid(),
                                       torch.nn.Linear(hidden, hidden), torch.nn.Sigmoid(),
                                       torch.nn.Linear(hidden, speakers))
        with torch.no_grad():
            for p in self.net.parameters():
                p.mul_(gain)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net((frames - MEL_MEAN) / MEL_STD)


def frame_loss(model: torch.nn.Module, batch: Mapping) -> tuple[torch.Tensor, dict]:
    """Mean cross-entropy of ``model(batch["frames"])`` against ``batch["speaker"]`` (a pure loss_fn)."""
    loss = F.cross_entropy(model(batch["frames"]), batch["speaker"])
    return loss, {"ce": float(loss.detach())}


def client_gradient(model: torch.nn.Module, frames: torch.Tensor, labels: torch.Tensor,
                    create_graph: bool = False) -> OrderedDict:
    """``{name: d loss / d w}`` of :func:`frame_loss` on one batch: what a FedSGD client reveals."""
    params = OrderedDict((n, p) for n, p in model.named_parameters() if p.requires_grad)
    loss, _ = frame_loss(model, {"frames": frames, "speaker": labels})
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
    return OrderedDict((n, g if create_graph else g.detach()) for n, g in zip(params, grads))


def sgd_reply(global_weights: Mapping[str, torch.Tensor], gradient: Mapping[str, torch.Tensor], lr: float,
              client_id, num_examples: int) -> Reply:
    """The reply of a client that took one SGD step: ``w - lr * g`` (FedSGD)."""
    return Reply(client_id, OrderedDict((n, (w - lr * gradient[n].to(w.dtype))) for n, w in global_weights.items()),
                 num_examples)


def gradient_from_weights(global_weights: Mapping[str, torch.Tensor], new_weights: Mapping[str, torch.Tensor],
                          lr: float) -> OrderedDict:
    """What the server reads off a round: ``(w - w_new) / lr`` per tensor (float32)."""
    return OrderedDict((n, ((w.double() - new_weights[n].double()) / lr).float()) for n, w in global_weights.items())


def infer_labels(gradient: Mapping[str, torch.Tensor], count: int = 1) -> list[int]:
    """iDLG: the ``count`` classes whose last-layer bias gradient is most negative (the labels in the
    batch; with softmax cross-entropy only they can be negative). The last tensor of ``gradient`` must
    be the output layer's bias.

    >>> infer_labels({"w": torch.zeros(1), "bias": torch.tensor([0.1, -0.3, 0.2])})
    [1]
    """
    bias = list(gradient.values())[-1]
    if bias.dim() != 1:
        raise ValueError(f"the last gradient must be the output bias (1-D), got shape {tuple(bias.shape)}")
    return torch.argsort(bias)[:count].tolist()


def invert_gradient(model: torch.nn.Module, target: Mapping[str, torch.Tensor], labels: torch.Tensor, *,
                    n_mels: int = 80, iterations: int = 40, init_mean: float = MEL_MEAN, init_std: float = MEL_STD,
                    seed: int = 0) -> tuple[torch.Tensor, float]:
    """DLG: frames ``x^`` (``len(labels)`` x ``n_mels``) whose gradient matches ``target``; returns
    ``(x^, final squared gradient distance)``. Starts from ``N(init_mean, init_std^2)`` noise (the attacker
    knows typical log-mel statistics, nothing about the client) and runs ``iterations`` L-BFGS outer
    steps of up to 20 evaluations each, on ``sum ||grad(x^) - target||^2`` over all tensors."""
    gen = torch.Generator().manual_seed(int(seed))
    dummy = (init_mean + init_std * torch.randn(len(labels), n_mels, generator=gen)).requires_grad_(True)
    names = list(target)
    optimizer = torch.optim.LBFGS([dummy], lr=1.0, max_iter=20, history_size=50, line_search_fn="strong_wolfe")
    scale = 1.0 / max(sum(float((target[n] ** 2).sum()) for n in names), 1e-30)   # a distance of order 1

    def closure():
        optimizer.zero_grad()
        grads = client_gradient(model, dummy, labels, create_graph=True)
        distance = scale * sum(((grads[n] - target[n]) ** 2).sum() for n in names)
        distance.backward()
        return distance

    distance = float("nan")
    for _ in range(iterations):
        distance = float(optimizer.step(closure).detach())
        if not np.isfinite(distance):
            break
    return dummy.detach(), distance / scale


def match_frames(true: torch.Tensor, reconstructed: torch.Tensor) -> tuple[float, np.ndarray]:
    """``(NMSE, index)``: each true frame paired with a distinct reconstructed one (Hungarian
    assignment on squared distance; ``reconstructed`` may hold more frames than ``true``), and
    ``mean (x^ - x)^2 / var(x)`` over the pairs. ``index[i]`` is the frame matched to ``true[i]``.

    >>> x = torch.tensor([[0., 0.], [2., 2.]])
    >>> match_frames(x, x.flip(0))
    (0.0, array([1, 0]))
    """
    from scipy.optimize import linear_sum_assignment

    if reconstructed.shape[0] < true.shape[0]:
        raise ValueError(f"need at least as many reconstructed frames ({reconstructed.shape[0]}) as true ones "
                         f"({true.shape[0]})")
    cost = (torch.cdist(true.double(), reconstructed.double()) ** 2).numpy()
    rows, cols = linear_sum_assignment(cost)
    index = cols[np.argsort(rows)]
    err = float(((true.double() - reconstructed.double()[index]) ** 2).mean() / true.double().var())
    return err, index


def attack_round(model_fn, global_weights: Mapping[str, torch.Tensor], batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
                 strategy, *, lr: float = 0.1, iterations: int = 40, seed: int = 0, secure: bool = False) -> dict:
    """One FedSGD round of the clients holding ``batches`` (``(frames, labels)`` each; client 0 is the
    target), aggregated by ``strategy`` (``secure=True``: through :func:`~ttslab.federated.secure.secure_fedavg`
    instead), then DLG on the gradient the server reads off the new weights.

    The attacker inverts as many frames as the round holds (``sum B_k``) with the labels iDLG finds
    (one speaker per client; the sign rule is exact for one-label batches only, so with several clients
    it can miss). Returns ``{"nmse": target's NMSE, "nmse_start": the NMSE of the random frames the
    search started from, "reconstruction": x^ matched to the target's frames, "labels_found", "distance"}``.
    """
    from ttslab.federated.secure import secure_fedavg

    model = model_fn()
    model.load_state_dict(global_weights, strict=False)
    replies = []
    for k, (frames, labels) in enumerate(batches):
        replies.append(sgd_reply(global_weights, client_gradient(model, frames, labels), lr, k, len(frames)))
    if secure:
        new, _, _ = secure_fedavg(global_weights, replies, seed=seed, server_round=1)
    else:
        new = strategy.aggregate(global_weights, replies, server_round=1)
    seen = gradient_from_weights(global_weights, new, lr)
    speakers = infer_labels(seen, count=len(batches))
    total = sum(len(f) for f, _ in batches)
    per = [len(f) for f, _ in batches]
    # one speaker per client; the attacker guesses each client's share of frames as equal
    labels = torch.tensor([s for s, count in zip(sorted(speakers), per) for _ in range(count)][:total])
    recon, distance = invert_gradient(model, seen, labels, n_mels=batches[0][0].shape[1], iterations=iterations,
                                      seed=seed)
    true = batches[0][0]
    nmse, index = match_frames(true, recon)
    start = MEL_MEAN + MEL_STD * torch.randn(total, true.shape[1], generator=torch.Generator().manual_seed(int(seed)))
    return {"nmse": nmse, "nmse_start": match_frames(true, start)[0], "reconstruction": recon[index],
            "labels_found": sorted(speakers),
            "true_labels": sorted({int(lab[0]) for _, lab in batches}), "distance": distance}
