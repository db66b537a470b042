"""A real leakage attack: gradient inversion recovers a client's mel frames from what it shares.

In FedSGD (one local SGD step per round, or FedAvg with ``local_steps=1``) a client's reply is
``w_k = w - lr * g_k``, so the server knows the gradient ``g_k = (w - w_k) / lr`` of the client's loss
on its private batch. *Deep leakage from gradients* (DLG, Zhu et al. 2019) looks for inputs whose
gradient matches it::

    x^ = argmin_x  sum_layers || grad_w L(f_w(x), y) - g_k ||^2          (L-BFGS on x, labels y fixed)

and iDLG (Zhao et al. 2020) reads the labels off first: with softmax cross-entropy the gradient of the
last layer's bias is ``(1/B) sum_i (p_i - onehot(y_i))``, negative only at labels present in the batch
(:func:`infer_labels`).

Plain DLG recovers a handful of frames but stalls at a guess of the mean on 32 full-size frames
(measured: NMSE 0.98). What makes it work is the first layer: its weight and bias gradients are
``sum_i d_i [z_i, 1]`` over the batch, so they span exactly the batch's (normalised) frames
(:func:`input_span`; for one frame this alone gives the frame, the analytic leakage of a linear
layer). The search then runs only inside that span (``B (B-1)`` unknowns instead of ``80 B``) with
tight L-BFGS tolerances, keeping the iterate of smallest gradient distance (the attacker's own
criterion): 32 frames come back at NMSE 0.004. This was chosen over the alternatives (cosine loss as in
Geiping et al. 2020: no better here; fewer frames: less to hear; attacking the first layer alone:
ambiguous beyond one frame) because it uses nothing but the shared gradient, is exact in the limit
and stays cheap (seconds per attack). It needs at most ``n_mels`` frames per round: with more (secure
aggregation of several clients) the span is all of space and the search is plain DLG.

The victim here is a small speaker classifier on single log-mel frames
(:class:`FrameSpeakerClassifier`: 80 bands -> 256 -> 256 -> speakers, sigmoid activations, smooth
as DLG needs), trained federatedly on each client's recordings; a batch is ``B`` consecutive frames of
one utterance, so the reconstruction is a spectrogram one can look at and, through the shipped
neural vocoder, hear.

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
  shows). The span is then read off a noisy first-layer gradient: noise of a tiny fraction of the
  update's norm already moves it off the frames (benchmarks/privacy.py sweeps sigma from 1e-5 up).
"""

from __future__ import annotations

import math
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
#: What a log-mel frame can hold: the front end's floor ``log(1e-5)`` up to 2 (the built-in corpus peaks at 1.13).
MEL_RANGE = (math.log(1e-5), 2.0)


class FrameSpeakerClassifier(torch.nn.Module):
    """Speaker logits from one log-mel frame: ``(x - MEL_MEAN) / MEL_STD``, then ``Linear(n_mels, h) -
    sigmoid - Linear(h, h) - sigmoid - Linear(h, speakers)``. Twice differentiable everywhere (gradient
    matching differentiates the gradient), as the networks DLG was shown on.

    ``gain`` multiplies PyTorch's default initial weights. Measured (benchmarks/privacy.py, 32 frames):
    at ``gain=1`` the sigmoids work in their almost-linear middle and the later layers' gradients pin the
    frames down less (NMSE about 0.08 without defence; plain DLG without :func:`input_span`: about 1);
    at ``gain=4`` (weights of the size training produces) the attack is near-exact (about 0.004).
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


def input_span(gradient: Mapping[str, torch.Tensor], count: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The affine set the normalised inputs ``z_i = (x_i - MEL_MEAN) / MEL_STD`` of a batch of ``count``
    examples must lie in, read off the first layer's gradient; ``None`` when it says nothing.

    For a first layer ``a = W z + b`` and a mean loss over the batch, ``dL/dW = sum_i d_i z_i^T`` and
    ``dL/db = sum_i d_i`` (``d_i = dL/da_i``), so ``[dL/dW | dL/db] = D^T [Z | 1]``: every row of that
    ``h x (n+1)`` matrix is a combination of the ``count`` vectors ``[z_i, 1]``, and (for ``count <= n``
    and generic data) its top ``count`` right singular vectors ``V`` span exactly them. Each ``[z_i, 1]``
    is then ``a_i^T V`` with last coordinate 1: ``z_i = z_p + c_i^T E`` with ``z_p`` the point of the span
    with last coordinate 1 closest to the origin and ``E`` the ``count - 1`` directions of the span with
    last coordinate 0. Returns ``(z_p, E)`` (shapes ``(n,)`` and ``(count - 1, n)``). For ``count = 1`` the
    frame is determined exactly (``z = (dL/dW)_j / (dL/db)_j`` for any unit ``j``): the analytic leakage
    of a linear layer's input (Phong et al. 2017). With ``count > n`` the span is all of space: ``None``.
    The first two tensors of ``gradient`` must be the first layer's weight and bias.

    >>> z = torch.tensor([[1., 2., 3.]])
    >>> z_p, e = input_span({"w": torch.tensor([[0.5], [-2.]]) * z, "b": torch.tensor([0.5, -2.])}, 1)
    >>> z_p, e.shape
    (tensor([1., 2., 3.]), torch.Size([0, 3]))
    """
    weight, bias = list(gradient.values())[:2]
    if weight.dim() != 2 or bias.shape != weight.shape[:1]:
        raise ValueError(f"the first two gradients must be a linear layer's weight and bias, got shapes "
                         f"{tuple(weight.shape)} and {tuple(bias.shape)}")
    n = weight.shape[1]
    if count > n or count > weight.shape[0]:
        return None
    rows = torch.cat([weight.double(), bias.double()[:, None]], 1)
    span = torch.linalg.svd(rows, full_matrices=False)[2][:count]          # count x (n + 1)
    last = span[:, -1]
    point = (last / (last @ last)) @ span[:, :-1]
    directions = torch.linalg.svd(last[None, :], full_matrices=True)[2][1:] @ span[:, :-1]
    return point.float(), directions.float()


def invert_gradient(model: torch.nn.Module, target: Mapping[str, torch.Tensor], labels: torch.Tensor, *,
                    n_mels: int = 80, iterations: int = 40, init_mean: float = MEL_MEAN, init_std: float = MEL_STD,
                    seed: int = 0, use_span: bool = True) -> tuple[torch.Tensor, float]:
    """DLG: frames ``x^`` (``len(labels)`` x ``n_mels``) whose gradient matches ``target``; returns
    ``(x^, its squared gradient distance)`` for the best iterate (by that distance: the attacker's own
    criterion; it never sees the true frames). Starts from ``N(init_mean, init_std^2)`` noise (the
    attacker knows typical log-mel statistics, nothing about the client) and runs ``iterations`` L-BFGS
    outer steps of up to 20 evaluations each on ``sum ||grad(x^) - target||^2 / ||target||^2``.

    ``use_span`` (default): the frames are searched only inside :func:`input_span`, the affine set the
    first layer's gradient pins them to (``z = z_p + c E``, L-BFGS on ``c``), a start projected there.
    Measured on 32 full-mode frames (80 bands): plain DLG stalls at NMSE ~1 (a guess at the mean),
    the span-restricted search reaches 0.004-0.006; it is what makes the attack work beyond a handful of
    frames. Tight L-BFGS tolerances: the distance keeps falling well below float32's default stopping
    point, and the frames sharpen with it."""
    gen = torch.Generator().manual_seed(int(seed))
    start = init_mean + init_std * torch.randn(len(labels), n_mels, generator=gen)
    names = list(target)
    span = input_span(target, len(labels)) if use_span else None
    if span is None:
        param = start.clone().requires_grad_(True)

        def frames():
            return param
    else:
        point, directions = span
        coords = ((start - MEL_MEAN) / MEL_STD - point) @ torch.linalg.pinv(directions) if len(directions) else \
            torch.zeros(len(labels), 0)
        param = coords.clone().requires_grad_(True)

        def frames():
            return MEL_MEAN + MEL_STD * (point + param @ directions)
    if param.shape[1] == 0:                      # one frame: the span is a single point, nothing to search
        x = frames().detach()
        return x, float(sum(((g - target[n]) ** 2).sum() for n, g in client_gradient(model, x, labels).items()))
    optimizer = torch.optim.LBFGS([param], lr=1.0, max_iter=20, history_size=50, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-12, tolerance_change=1e-15)
    scale = 1.0 / max(sum(float((target[n] ** 2).sum()) for n in names), 1e-30)   # a distance of order 1

    def closure():
        optimizer.zero_grad()
        grads = client_gradient(model, frames(), labels, create_graph=True)
        distance = scale * sum(((grads[n] - target[n]) ** 2).sum() for n in names)
        distance.backward()
        return distance

    best = (float("inf"), None)
    for step in range(iterations + 1):
        before = frames().detach().clone()
        if step == iterations:                   # the last iterate: its distance, without a step
            grads = client_gradient(model, before, labels)
            distance = scale * float(sum(((grads[n] - target[n]) ** 2).sum() for n in names))
        else:                                    # step() returns the distance at the point it started from
            distance = float(optimizer.step(closure).detach())
        if not np.isfinite(distance):
            break
        if distance < best[0]:
            best = (distance, before)
    if best[1] is None:
        return start, math.inf
    return best[1], best[0] / scale


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
                 strategy, *, lr: float = 0.1, iterations: int = 40, seed: int = 0, secure: bool = False,
                 use_span: bool = True) -> dict:
    """One FedSGD round of the clients holding ``batches`` (``(frames, labels)`` each; client 0 is the
    target), aggregated by ``strategy`` (``secure=True``: through :func:`~ttslab.federated.secure.secure_fedavg`
    instead), then DLG on the gradient the server reads off the new weights.

    The attacker inverts as many frames as the round holds (``sum B_k``) with the labels iDLG finds
    (one speaker per client; the sign rule is exact for one-label batches only, so with several clients
    it can miss), restricted to :func:`input_span` when ``use_span`` and the round holds at most ``n_mels``
    frames, and clips the result to ``MEL_RANGE`` (the attacker knows what a log-mel can be). Returns
    ``{"nmse": target's NMSE, "nmse_start": the NMSE of random frames drawn as the search's start (no
    information), "reconstruction": x^ matched to the target's frames, "labels_found", "distance"}``.
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
                                      seed=seed, use_span=use_span)
    recon = recon.clamp(*MEL_RANGE)           # a search that ran off (noise) is brought back to what a log-mel can be
    true = batches[0][0]
    nmse, index = match_frames(true, recon)
    start = MEL_MEAN + MEL_STD * torch.randn(total, true.shape[1], generator=torch.Generator().manual_seed(int(seed)))
    return {"nmse": nmse, "nmse_start": match_frames(true, start)[0], "reconstruction": recon[index],
            "labels_found": sorted(speakers),
            "true_labels": sorted({int(lab[0]) for _, lab in batches}), "distance": distance}
