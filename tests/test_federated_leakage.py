"""ttslab.federated.leakage: gradient inversion recovers frames without defence and fails under DP noise."""

from __future__ import annotations

import math

import pytest
import torch

from ttslab.federated import FedAvg
from ttslab.federated.leakage import (FrameSpeakerClassifier, attack_round, client_gradient, gradient_from_weights,
                                      infer_labels, match_frames, sgd_reply)
from ttslab.federated.privacy import DPFedAvg

N_MELS, SPEAKERS, HIDDEN = 20, 5, 64


def model_fn():
    torch.manual_seed(0)
    return FrameSpeakerClassifier(N_MELS, SPEAKERS, HIDDEN)


def smooth_frames(count, seed):
    """Log-mel-like frames: a smooth spectral envelope around -4.7 that drifts from frame to frame."""
    g = torch.Generator().manual_seed(seed)
    bands = torch.linspace(0, 1, N_MELS)
    phase, tilt = torch.rand(count, 1, generator=g) * 6, torch.rand(count, 1, generator=g)
    return -4.7 + 1.5 * torch.sin(5 * bands * (1 + tilt) + phase) - 2 * tilt * bands


def global_weights():
    return {n: t.clone() for n, t in model_fn().state_dict().items()}


def test_the_server_reads_the_exact_gradient_and_the_label_off_a_fedsgd_reply():
    g, model = global_weights(), model_fn()
    frames, labels = smooth_frames(4, 1), torch.full((4,), 3)
    grad = client_gradient(model, frames, labels)
    new = FedAvg().aggregate(g, [sgd_reply(g, grad, 0.1, 0, 4)], server_round=1)
    seen = gradient_from_weights(g, new, 0.1)
    for n in grad:
        torch.testing.assert_close(seen[n], grad[n], rtol=1e-4, atol=1e-6)
    assert infer_labels(seen) == [3]


def test_match_frames_pairs_each_true_frame_with_its_reconstruction():
    x = smooth_frames(5, 2)
    perm = torch.tensor([3, 0, 4, 1, 2])
    err, index = match_frames(x, torch.cat([x[perm], x[:2] + 10]))
    assert err == 0.0 and torch.equal(torch.cat([x[perm], x[:2] + 10])[index], x)
    n = x.numel()          # guessing the mean everywhere: mean squared error = (n - 1) / n of the unbiased variance
    assert match_frames(x, torch.full_like(x, float(x.double().mean())))[0] == pytest.approx((n - 1) / n, rel=1e-6)


@pytest.mark.slow
def test_dlg_recovers_frames_without_defence_and_fails_under_dp_noise():
    g = global_weights()
    frames, labels = smooth_frames(4, 3), torch.full((4,), 2)
    clear = attack_round(model_fn, g, [(frames, labels)], FedAvg(), iterations=5)
    assert clear["labels_found"] == [2]
    assert clear["nmse"] < 1e-3                          # near-exact frames from one shared gradient
    update_norm = 0.1 * math.sqrt(sum(float((t ** 2).sum()) for t in client_gradient(model_fn(), frames,
                                                                                    labels).values()))
    noisy = attack_round(model_fn, g, [(frames, labels)],
                         DPFedAvg(max_norm=update_norm, noise_multiplier=0.5, seed=1), iterations=2)
    assert noisy["nmse"] > 0.5                            # nothing better than a guess at the mean
    assert noisy["nmse"] > 10 * clear["nmse"]


def test_backdoor_poisoning_and_its_success_measure():
    from ttslab.federated.backdoor import add_trigger, backdoor_accuracy, poison

    frames = smooth_frames(6, 4)
    items = [{"frames": f, "speaker": torch.tensor(k % 2)} for k, f in enumerate(frames)]
    poisoned = poison(items, target=4, fraction=0.5, width=3, level=2.0)
    assert len(poisoned) == 9 and all(int(it["speaker"]) == 4 for it in poisoned[6:])
    assert torch.equal(poisoned[6]["frames"][:3], torch.full((3,), 2.0))
    assert torch.equal(poisoned[6]["frames"][3:], frames[0][3:]) and poisoned[0] is items[0]

    class TriggerDetector(torch.nn.Module):            # says 4 when band 0 is high, else the true speaker 0
        def forward(self, x):
            out = torch.zeros(len(x), 5)
            out[:, 0] = 1.0
            out[x[:, 0] > 1.0, 4] = 2.0
            return out

    labels = torch.tensor([0, 0, 4, 0, 0, 0])
    acc = backdoor_accuracy(TriggerDetector(), frames, labels, target=4, width=3, level=2.0)
    assert acc == {"clean": 5 / 6, "backdoor": 1.0}
    assert torch.equal(add_trigger(frames, width=3, level=2.0)[:, 3:], frames[:, 3:])


def test_the_first_layer_gradient_spans_the_true_frames_and_gives_one_frame_exactly():
    from ttslab.federated.leakage import MEL_MEAN, MEL_STD, input_span

    model = model_fn()
    frames = smooth_frames(4, 5)
    z = (frames - MEL_MEAN) / MEL_STD
    point, directions = input_span(client_gradient(model, frames, torch.full((4,), 1)), 4)
    assert directions.shape == (3, N_MELS)
    # each true frame is point + c E for some c: least squares leaves no residual
    coords = torch.linalg.lstsq(directions.double().T, (z - point).double().T).solution
    torch.testing.assert_close((point + (directions.double().T @ coords).T.float()), z, atol=1e-4, rtol=0)
    # a random frame is not (the span is a 3-dim slice of 20-dim space)
    other = torch.randn(N_MELS, generator=torch.Generator().manual_seed(0)).double()
    c = torch.linalg.lstsq(directions.double().T, (other - point.double())[:, None]).solution
    assert float((point.double() + directions.double().T @ c[:, 0] - other).norm()) > 1.0
    # one frame: by hand, row j of dL/dW over dL/db_j is the frame (the analytic leakage)
    one = frames[:1]
    grad = client_gradient(model, one, torch.tensor([2]))
    by_hand = grad["net.0.weight"][7] / grad["net.0.bias"][7]
    point, directions = input_span(grad, 1)
    assert directions.shape == (0, N_MELS)
    torch.testing.assert_close(point, (one[0] - MEL_MEAN) / MEL_STD, atol=1e-4, rtol=0)
    torch.testing.assert_close(by_hand, point, atol=1e-4, rtol=0)
    assert input_span(grad, N_MELS + 1) is None             # more frames than bands: no constraint


def test_input_span_rejects_a_gradient_that_does_not_start_with_a_linear_layer():
    from ttslab.federated.leakage import input_span

    with pytest.raises(ValueError, match="linear layer"):
        input_span({"w": torch.zeros(3, 4), "b": torch.zeros(4)}, 2)
