"""ttslab.distill losses and wrappers: parity with hand computations and torch.nn.functional.kl_div, the
T^2 factor, the logit-matching limit, gradients that reach only the student, and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ttslab.distill import (DurationKD, FeatureKD, KDStudent, OutputKD, SoftTargetKD, centred, classic_kd, distill,
                            duration_kd, fastspeech_layers, feature_kd, kd_loss, logit_matching_loss, output_kd,
                            soft_kl, soft_targets)
from ttslab.models.fastspeech import FastSpeech, FastSpeechConfig, fastspeech_loss

SPEAKERS = ("a", "b")


def np_softmax(z, T):
    e = np.exp((z - z.max(-1, keepdims=True)) / T)
    return e / e.sum(-1, keepdims=True)


def logits(seed, shape=(6, 5), scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------
# soft targets and the classic loss


def test_soft_targets_match_a_hand_softmax_and_flatten_with_T():
    z = logits(0)
    for T in (0.5, 1.0, 3.0, 10.0):
        assert np.allclose(soft_targets(z, T).numpy(), np_softmax(z.numpy(), T), atol=1e-12)
    # entropy grows with T: the soft targets are flatter
    ent = [float(-(p * p.log()).sum(-1).mean()) for p in (soft_targets(z, T) for T in (1, 2, 4, 8))]
    assert ent == sorted(ent) and ent[-1] < math.log(5)


def test_kd_loss_equals_a_hand_computation():
    z_s, z_t, y = logits(1), logits(2), torch.tensor([0, 1, 2, 3, 4, 0])
    T, alpha = 3.0, 0.7
    loss, terms = kd_loss(z_s, z_t, y, T=T, alpha=alpha)
    p, q = np_softmax(z_t.numpy(), T), np_softmax(z_s.numpy(), T)
    kl = (p * (np.log(p) - np.log(q))).sum(-1).mean()
    ce = -np.log(np_softmax(z_s.numpy(), 1.0)[np.arange(6), y.numpy()]).mean()
    assert terms["soft"].item() == pytest.approx(T * T * kl, rel=1e-10)
    assert terms["hard"].item() == pytest.approx(ce, rel=1e-10)
    assert loss.item() == pytest.approx(alpha * T * T * kl + (1 - alpha) * ce, rel=1e-10)


def test_kd_loss_matches_torch_kl_div_and_cross_entropy():
    z_s, z_t, y = logits(3, (4, 7, 11)), logits(4, (4, 7, 11)), torch.randint(0, 11, (4, 7))
    T, alpha = 2.5, 0.4
    loss, _ = kd_loss(z_s, z_t, y, T=T, alpha=alpha)
    flat_s, flat_t = z_s.reshape(-1, 11), z_t.reshape(-1, 11)
    kl = F.kl_div(F.log_softmax(flat_s / T, -1), F.softmax(flat_t / T, -1), reduction="batchmean")
    ref = alpha * T**2 * kl + (1 - alpha) * F.cross_entropy(flat_s, y.reshape(-1))
    assert loss.item() == pytest.approx(ref.item(), rel=1e-10)


def test_mask_and_unlabelled_positions():
    """Padding counts for neither term; ignore_index labels drop out of CE only (soft term still sees them)."""
    z_s, z_t, y = logits(5, (2, 4, 3)), logits(6, (2, 4, 3)), torch.tensor([[0, 1, 2, 1], [2, 2, 0, 1]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    _, terms = kd_loss(z_s, z_t, y, T=2.0, alpha=0.5, mask=mask)
    real_s, real_t, real_y = z_s[mask], z_t[mask], y[mask]
    _, ref = kd_loss(real_s, real_t, real_y, T=2.0, alpha=0.5)
    assert terms["soft"].item() == pytest.approx(ref["soft"].item(), rel=1e-12)
    assert terms["hard"].item() == pytest.approx(ref["hard"].item(), rel=1e-12)
    unlabelled = y.clone()
    unlabelled[0, :2] = -100
    _, part = kd_loss(z_s, z_t, unlabelled, T=2.0, alpha=0.5, mask=mask)
    keep = mask.clone()
    keep[0, :2] = False
    assert part["soft"].item() == pytest.approx(terms["soft"].item(), rel=1e-12)
    assert part["hard"].item() == pytest.approx(F.cross_entropy(z_s[keep], y[keep]).item(), rel=1e-12)


def soft_grad(T, scaled=True):
    z_s, z_t = logits(7, (32, 10)).requires_grad_(), logits(8, (32, 10))
    kl = soft_kl(z_s, z_t, T)
    ((T * T if scaled else 1.0) * kl).backward()
    return z_s.grad.norm().item()


def test_the_T_squared_factor_keeps_the_soft_gradient_stable():
    temps = [1, 2, 4, 8, 16, 32]
    scaled = [soft_grad(T) for T in temps]
    plain = [soft_grad(T, scaled=False) for T in temps]
    # with T^2 the gradient stays within a factor ~2 over a 32x range of T ...
    assert max(scaled) / min(scaled) < 2.5, scaled
    # ... while without it, it falls like 1/T^2 at high T (16 -> 32: a factor of 4)
    assert plain[-2] / plain[-1] == pytest.approx(4.0, rel=0.05)
    assert plain[0] / plain[-1] > 100


def test_high_temperature_limit_is_centred_logit_matching():
    """T^2 KL -> ||c_s - c_t||^2 / 2K and its gradient -> (c_s - c_t) / (K N), both with an O(1/T) error."""
    z_s, z_t = logits(9, (5, 8), 1.0), logits(10, (5, 8), 1.0)
    N, K = z_s.shape
    c_diff = (z_s - z_s.mean(-1, keepdim=True)) - (z_t - z_t.mean(-1, keepdim=True))  # by hand, not via centred()
    limit = (c_diff**2).sum(-1).mean() / (2 * K)
    assert logit_matching_loss(z_s, z_t).item() == pytest.approx(limit.item(), rel=1e-12)
    errors, grad_errors = [], []
    for T in (10.0, 100.0, 1000.0):
        zs = z_s.clone().requires_grad_()
        value = T * T * soft_kl(zs, z_t, T)
        value.backward()
        errors.append(abs(value.item() - limit.item()))
        grad_errors.append((zs.grad - c_diff / (K * N)).abs().max().item())
    scale = (c_diff / (K * N)).abs().max().item()
    assert errors[-1] < 1e-3 * limit.item() and grad_errors[-1] < 1e-2 * scale, (errors, grad_errors, scale)
    for errs in (errors, grad_errors):  # each 10x in T cuts the error about 10x
        assert errs[0] / errs[1] > 5 and errs[1] / errs[2] > 5
    # a shift of all logits changes nothing: softmax and the centred limit both ignore it
    assert torch.allclose(centred(z_s + 3.0), centred(z_s))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "hot"])
def test_bad_temperatures_are_refused(bad):
    with pytest.raises(ValueError, match="temperature T"):
        soft_targets(logits(0), bad)
    with pytest.raises(ValueError, match="temperature T"):
        kd_loss(logits(0), logits(1), torch.zeros(6, dtype=torch.long), T=bad)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_alpha_outside_0_1_is_refused(bad):
    with pytest.raises(ValueError, match="alpha"):
        kd_loss(logits(0), logits(1), torch.zeros(6, dtype=torch.long), alpha=bad)
    with pytest.raises(ValueError, match="alpha"):
        classic_kd(lambda m, b: (torch.zeros(()), {}), alpha=bad)


def test_mismatched_vocabularies_and_shapes_are_refused():
    with pytest.raises(ValueError, match="one vocabulary"):
        kd_loss(logits(0, (6, 5)), logits(1, (6, 7)), torch.zeros(6, dtype=torch.long))
    with pytest.raises(ValueError, match="same batch"):
        soft_kl(logits(0, (6, 5)), logits(1, (4, 5)))
    with pytest.raises(ValueError, match="targets are needed|targets \\(hard labels\\)"):
        kd_loss(logits(0), logits(1), None, alpha=0.5)
    assert kd_loss(logits(0), logits(1), None, alpha=1.0)[0].item() > 0


# ---------------------------------------------------------------------------------------------
# The wrapper on a classifier: classic KD


class Frames(torch.nn.Module):
    def __init__(self, d_in=4, k=3, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(torch.nn.Linear(d_in, 8), torch.nn.Tanh(), torch.nn.Linear(8, k))

    def forward(self, x):
        return self.net(x)


def ce_loss(model, batch):
    z = model(batch["x"])
    ce = F.cross_entropy(z, batch["y"])
    return ce, {"ce": float(ce.detach())}


def test_classic_kd_wrapper_equals_kd_loss_and_only_the_student_learns():
    teacher, student = Frames(seed=1), Frames(seed=2)
    batch = {"x": torch.randn(10, 4), "y": torch.randint(0, 3, (10,))}
    loss_fn = classic_kd(ce_loss, T=3.0, alpha=0.8, teacher=teacher)
    loss, logs = loss_fn(student, batch)
    ref, terms = kd_loss(student(batch["x"]), teacher(batch["x"]), batch["y"], T=3.0, alpha=0.8)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    assert logs["kd_SoftTargetKD"] == pytest.approx(terms["soft"].item(), rel=1e-6)
    before = [p.detach().clone() for p in teacher.parameters()]
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    from ttslab.train import train_step

    train_step(student, torch.optim.SGD(student.parameters(), lr=0.1), loss_fn, batch)
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))
    # precomputed teacher outputs in the batch give the same loss as a live teacher
    cached = classic_kd(ce_loss, T=3.0, alpha=0.8)
    live = classic_kd(ce_loss, T=3.0, alpha=0.8, teacher=teacher)
    with torch.no_grad():
        batch["teacher"] = teacher(batch["x"])
    assert cached(student, batch)[0].item() == pytest.approx(live(student, batch)[0].item(), rel=1e-6)


def test_wrapper_refuses_a_loss_that_does_not_call_the_model_once():
    twice = lambda m, b: (m(b["x"]).sum() + m(b["x"]).sum(), {})  # noqa: E731
    with pytest.raises(RuntimeError, match="2 times"):
        classic_kd(twice, teacher=Frames())(Frames(), {"x": torch.randn(2, 4)})


# ---------------------------------------------------------------------------------------------
# Sequence losses on FastSpeech


def fs_batch(seed=0, B=3):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([7, 5, 3][:B])
    N = int(lengths.max())
    phone_ids = torch.randint(1, 40, (B, N), generator=g) * (torch.arange(N) < lengths[:, None])
    durations = torch.randint(0, 4, (B, N), generator=g) * (torch.arange(N) < lengths[:, None])
    durations[:, 0] += 1
    frames = durations.sum(1)
    mel = torch.randn(B, int(frames.max()), 80, generator=g) - 4.0
    return {"phone_ids": phone_ids, "phone_lengths": lengths, "speaker": torch.tensor([0, 1, 0][:B]),
            "durations": durations, "mel_lengths": frames, "mel": mel,
            "pitch": torch.randn(B, N, generator=g) + 5.0, "energy": torch.randn(B, N, generator=g),
            "stress": torch.randint(0, 3, (B, N), generator=g), "word_position": torch.randint(0, 4, (B, N), generator=g)}


def fs_models():
    torch.manual_seed(0)
    teacher = FastSpeech(FastSpeechConfig.tiny(speakers=SPEAKERS, d_model=48, encoder_layers=2, decoder_layers=2))
    student = FastSpeech(FastSpeechConfig.tiny(speakers=SPEAKERS))
    return teacher, student


def forward_both(teacher, student, batch):
    kw = dict(durations=batch["durations"], pitch=batch["pitch"], energy=batch["energy"], stress=batch["stress"],
              word_position=batch["word_position"])
    with torch.no_grad():
        out_t = teacher.eval()(batch["phone_ids"], batch["speaker"], batch["phone_lengths"], **kw)
    return student(batch["phone_ids"], batch["speaker"], batch["phone_lengths"], **kw), out_t


def test_output_and_duration_kd_equal_hand_computations():
    teacher, student = fs_models()
    batch = fs_batch()
    base, _ = fastspeech_loss(student, batch)
    out_s, out_t = forward_both(teacher, student, batch)
    fm, pm = out_s["frame_mask"], out_s["phone_mask"]
    mel_l1 = (out_s["mel"] - out_t["mel"]).abs()[fm].mean()
    loss, logs = output_kd(fastspeech_loss, teacher, kind="l1", weight=0.5)(student, batch)
    assert loss.item() == pytest.approx(base.item() + 0.5 * mel_l1.item(), rel=1e-5)
    mse = ((out_s["pitch"] - out_t["pitch"]) ** 2)[pm].mean()
    two = OutputKD(("pitch",), kind="l2")(out_s, out_t, batch)
    assert two.item() == pytest.approx(mse.item(), rel=1e-5)
    d_s, d_t = out_s["log_duration"], out_t["log_duration"]
    loss, logs = duration_kd(fastspeech_loss, teacher, kind="log", weight=2.0)(student, batch)
    assert logs["kd_DurationKD"] == pytest.approx(((d_s - d_t) ** 2)[pm].mean().item(), rel=1e-5)
    rounded = torch.log1p(torch.round(torch.expm1(d_t).clamp(min=0)))
    assert DurationKD("rounded")(out_s, out_t, batch).item() == pytest.approx(
        ((d_s - rounded) ** 2)[pm].mean().item(), rel=1e-5)
    # the distribution form, one utterance at a time with numpy, padding left out
    T, kls = 2.0, []
    for b in range(3):
        n = int(batch["phone_lengths"][b])
        p = np_softmax(d_t[b, :n].double().numpy(), T)
        q = np_softmax(d_s[b, :n].detach().double().numpy(), T)
        kls.append((p * (np.log(p) - np.log(q))).sum())
    assert DurationKD("distribution", T=T)(out_s, out_t, batch).item() == pytest.approx(T * T * np.mean(kls), rel=1e-4)


def test_feature_kd_learns_projections_and_gradients_reach_only_the_student():
    teacher, student = fs_models()
    batch = fs_batch(1)
    hints = FeatureKD.for_fastspeech(student, teacher, [("encoder_out", "encoder_states[1]"),
                                                        ("decoder_states[-1]", "decoder_out")], weight=0.3)
    assert [tuple(p.weight.shape) for p in hints.projections] == [(48, 32), (48, 32)]
    model = KDStudent(student, hints)
    loss_fn = distill(fastspeech_loss, [hints, OutputKD(("mel",)), DurationKD()], teacher=teacher)
    loss, logs = loss_fn(model, batch)
    out_s, out_t = forward_both(teacher, student, batch)
    by_hand = 0.0
    for proj, (hs, ht, mask) in zip(hints.projections, [(out_s["encoder_out"], out_t["encoder_states"][1], "phone_mask"),
                                                        (out_s["decoder_states"][-1], out_t["decoder_out"], "frame_mask")]):
        by_hand += ((proj(hs) - ht) ** 2)[out_s[mask]].mean()
    assert logs["kd_FeatureKD"] == pytest.approx(by_hand.item(), rel=1e-5)
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in hints.parameters())
    assert sum(p.grad.abs().sum() for p in student.parameters() if p.grad is not None) > 0
    # the bare student would leave the projections untrained: refused
    with pytest.raises(RuntimeError, match="KDStudent"):
        feature_kd(fastspeech_loss, teacher, hints)(student, batch)


def test_kd_student_trains_with_fit():
    from ttslab.train import Batches, TrainConfig, fit

    teacher, student = fs_models()
    hints = FeatureKD.for_fastspeech(student, teacher, [("decoder_out", "decoder_out")])
    items = [fs_batch(s, B=1) for s in range(4)]
    batches = Batches(items, 1, lambda xs: xs[0])
    model = KDStudent(student, hints)
    first = [p.detach().clone() for p in hints.parameters()]
    fit(model, feature_kd(fastspeech_loss, teacher, hints), batches, TrainConfig(steps=3, batch_size=1),
        progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(first, hints.parameters()))


def test_feature_kd_on_missing_layers_and_mismatched_models_is_refused():
    teacher, student = fs_models()
    with pytest.raises(ValueError, match=r"student has no layer\(s\) \['encoder_states\[1\]'\]"):
        FeatureKD.for_fastspeech(student, teacher, [("encoder_states[1]", "encoder_out")])
    with pytest.raises(ValueError, match="teacher has no layer"):
        FeatureKD.for_fastspeech(student, teacher, [("encoder_out", "postnet_out")])
    assert "decoder_states[-2]" in fastspeech_layers(teacher.config)
    hints = FeatureKD.for_fastspeech(student, teacher, [("encoder_out", "decoder_out")])
    out_s, out_t = forward_both(teacher, student, fs_batch())
    with pytest.raises(ValueError, match="same positions"):
        hints(out_s, out_t, {})
    other = FastSpeech(FastSpeechConfig.tiny(speakers=SPEAKERS, n_phones=60))
    with pytest.raises(ValueError, match="n_phones"):
        output_kd(fastspeech_loss, other)(student, fs_batch())
    with pytest.raises(ValueError, match="kind"):
        OutputKD(kind="l3")
    with pytest.raises(ValueError, match="kind"):
        DurationKD("gaussian")
    with pytest.raises(ValueError, match="temperature"):
        SoftTargetKD(T=0)


def test_sequence_level_items_hold_the_teachers_output_and_train_a_student():
    from ttslab.distill.sequence import teacher_generated_items
    from ttslab.models.fastspeech import collate_fastspeech

    teacher, student = fs_models()
    b = fs_batch(2)
    items = []
    for i in range(3):
        n, t = int(b["phone_lengths"][i]), int(b["mel_lengths"][i])
        items.append({"utt_id": f"u{i}", "speaker": int(b["speaker"][i]), "phone_ids": b["phone_ids"][i, :n].numpy(),
                      "durations": b["durations"][i, :n].numpy(), "mel": b["mel"][i, :t].numpy(),
                      "pitch": b["pitch"][i, :n].numpy(), "energy_phone": b["energy"][i, :n].numpy(),
                      "f0": np.zeros(t, np.float32), "energy": np.zeros(t, np.float32),
                      "stress": b["stress"][i, :n].numpy(), "word_position": b["word_position"][i, :n].numpy()})
    generated = teacher_generated_items(teacher, items)
    for it, g in zip(items, generated):
        ref = teacher.infer({k: it[k] for k in ("phone_ids", "stress", "word_position")}, it["speaker"])
        assert np.array_equal(g["mel"], ref["mel"].numpy()) and np.array_equal(g["durations"], ref["durations"].numpy())
        assert g["durations"].sum() == len(g["mel"]) == len(g["f0"]) and np.allclose(np.exp(g["pitch"]), ref["pitch"])
        assert np.array_equal(g["phone_ids"], it["phone_ids"]) and it["mel"] is not g["mel"]  # inputs kept, copies
    forced = teacher_generated_items(teacher, items, teacher_durations=False)
    assert all(np.array_equal(f["durations"], it["durations"]) for f, it in zip(forced, items))
    loss, logs = fastspeech_loss(student, collate_fastspeech(generated))
    assert torch.isfinite(loss) and set(logs) >= {"mel", "duration", "pitch", "energy"}
    with pytest.raises(KeyError, match="stress"):
        teacher_generated_items(teacher, [{k: v for k, v in items[0].items() if k != "stress"}])
