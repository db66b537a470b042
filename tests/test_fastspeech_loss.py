"""The FastSpeech 2 loss (ttslab.models.fastspeech): padding never counts, the log(1 + d) duration target,
pooling over real positions, and phones that own zero frames. References are hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ttslab.data.datasets import MEL_PAD, phone_average
from ttslab.models.fastspeech import (FastSpeech, FastSpeechConfig, fastspeech_loss, loss_terms,
                                      speaker_stats_from_items)

LN2 = math.log(2.0)


def hand_out_and_batch(durations, frames_pad=0, phones_pad=0, garbage=0.0):
    """A teacher-forced ``out`` dict and its ``batch`` for one utterance, built by hand (no model).

    Prediction errors are chosen so each term is easy to compute: mel off by 0.5 everywhere (L1 = 0.5),
    postnet off by 0.25, log-duration predicted as 0 (error = log(1 + d)), pitch off by 1, energy off by 2.
    ``frames_pad`` / ``phones_pad`` extra positions outside the masks hold ``garbage`` everywhere.
    """
    d = torch.tensor(list(durations) + [0] * phones_pad)
    N, T = len(durations), int(sum(durations))
    N_all, T_all = N + phones_pad, T + frames_pad
    phone_mask = torch.arange(N_all) < N
    frame_mask = torch.arange(T_all) < T
    target = torch.linspace(-3.0, 1.0, T_all * 80).reshape(1, T_all, 80)
    on_frames, on_phones = frame_mask[None, :, None], phone_mask[None]
    out = {
        "frame_mask": frame_mask[None], "phone_mask": phone_mask[None],
        "mel": torch.where(on_frames, target + 0.5, garbage),
        "mel_postnet": torch.where(on_frames, target - 0.25, garbage),
        "log_duration": torch.where(on_phones, 0.0, garbage),
        "pitch": torch.where(on_phones, 1.0, garbage), "pitch_target": torch.where(on_phones, 0.0, -garbage),
        "energy": torch.where(on_phones, -1.0, garbage), "energy_target": torch.where(on_phones, 1.0, -garbage),
    }
    batch = {"mel": torch.where(on_frames, target, -garbage), "durations": d[None]}
    return out, batch


def test_loss_terms_equal_a_hand_computation():
    durations = [0, 1, 3, 7]                 # log(1 + d) = 0, ln 2, 2 ln 2, 3 ln 2
    terms = loss_terms(*hand_out_and_batch(durations))
    assert set(terms) == {"mel", "postnet", "duration", "pitch", "energy"}
    assert terms["mel"].item() == pytest.approx(0.5)
    assert terms["postnet"].item() == pytest.approx(0.25)
    # MSE of log(1 + d) against a prediction of 0, over all 4 phones (the 0-frame one counts, target 0)
    assert terms["duration"].item() == pytest.approx((0 + 1 + 4 + 9) * LN2**2 / 4, rel=1e-6)
    assert terms["pitch"].item() == pytest.approx(1.0)
    assert terms["energy"].item() == pytest.approx(4.0)


@pytest.mark.parametrize("garbage", [7.0, -1e4])
def test_padded_frames_and_phones_never_count(garbage):
    clean = loss_terms(*hand_out_and_batch([2, 0, 5]))
    padded = loss_terms(*hand_out_and_batch([2, 0, 5], frames_pad=6, phones_pad=3, garbage=garbage))
    for name in clean:
        assert padded[name].item() == pytest.approx(clean[name].item(), rel=1e-6), name


def test_terms_pool_real_positions_over_the_batch():
    """One mean over every real position of the batch, not a mean of per-utterance means. By hand:
    utterance 0 has phones with pitch errors 1, 3 and 3 frames; utterance 1 one phone (error 5), 1 frame."""
    phone_mask = torch.tensor([[True, True], [True, False]])
    frame_mask = torch.tensor([[True, True, True], [True, False, False]])
    mel_error = torch.tensor([[1.0, 2.0, 6.0], [3.0, 100.0, 100.0]])[..., None].expand(2, 3, 80)
    zeros = torch.zeros(2, 2)
    out = {"phone_mask": phone_mask, "frame_mask": frame_mask, "mel": mel_error, "mel_postnet": mel_error,
           "log_duration": torch.log1p(torch.tensor([[2.0, 1.0], [1.0, 0.0]])),   # exact: duration term 0
           "pitch": torch.tensor([[1.0, 3.0], [5.0, 100.0]]), "pitch_target": zeros,
           "energy": zeros, "energy_target": zeros}
    batch = {"mel": torch.zeros(2, 3, 80), "durations": torch.tensor([[2, 1], [1, 0]])}
    terms = loss_terms(out, batch)
    assert terms["pitch"].item() == pytest.approx((1 + 9 + 25) / 3)       # not ((1 + 9)/2 + 25)/2 = 15
    assert terms["mel"].item() == pytest.approx((1 + 2 + 6 + 3) / 4)      # not ((1 + 2 + 6)/3 + 3)/2 = 3
    assert terms["duration"].item() == pytest.approx(0.0, abs=1e-12)
    assert "postnet" not in terms                                          # no postnet: the same tensor


def test_mel_length_mismatch_is_an_error():
    out, batch = hand_out_and_batch([2, 3])
    batch["mel"] = batch["mel"][:, :-1]
    with pytest.raises(ValueError, match="durations must sum"):
        loss_terms(out, batch)


# ----------------------------------------------------------------------------- through the model


def tiny_model() -> FastSpeech:
    torch.manual_seed(0)
    return FastSpeech(FastSpeechConfig.tiny()).eval()


def two_utterance_batch(padding: str) -> dict:
    """A collate_acoustic-style batch: a 3-phone utterance (with 0-frame phones) padded to a 6-phone one.

    ``padding="standard"`` fills the short one's padding as collate_acoustic does; ``"garbage"`` with
    large random values (phone ids, durations and lengths stay valid: those say where padding is).
    """
    g = torch.Generator().manual_seed(1)
    phone_ids = torch.tensor([[5, 17, 9, 0, 0, 0], [3, 8, 21, 30, 12, 4]])
    durations = torch.tensor([[4, 0, 0, 0, 0, 0], [2, 3, 0, 1, 4, 2]])   # 0-frame phones inside and at the end
    B, N, T = 2, 6, 12
    batch = {
        "phone_ids": phone_ids, "speaker": torch.tensor([1, 0]), "phone_lengths": torch.tensor([3, 6]),
        "durations": durations, "mel_lengths": durations.sum(1),
        "pitch": 5.0 + 0.3 * torch.randn(B, N, generator=g), "energy": 1.0 + torch.randn(B, N, generator=g),
        "mel": -4.0 + torch.randn(B, T, 80, generator=g),
        "stress": torch.randint(0, 3, (B, N), generator=g), "word_position": torch.randint(0, 5, (B, N), generator=g),
    }
    pad_phones = torch.arange(N) >= 3
    pad_frames = torch.arange(T) >= 4
    if padding == "standard":
        fill = {"pitch": 0.0, "energy": 0.0, "mel": MEL_PAD, "stress": 0, "word_position": 0}
    else:
        fill = {k: 1e3 * torch.randn(batch[k][0].shape, generator=g) for k in ("pitch", "energy", "mel")}
        fill.update(stress=2, word_position=4)
    for key in ("pitch", "energy", "stress", "word_position"):
        batch[key][0] = torch.where(pad_phones, torch.as_tensor(fill[key], dtype=batch[key].dtype), batch[key][0])
    batch["mel"][0] = torch.where(pad_frames[:, None], torch.as_tensor(fill["mel"], dtype=torch.float32),
                                  batch["mel"][0])
    return batch


def test_fastspeech_loss_ignores_what_the_padding_holds():
    model = tiny_model()
    loss, logs = fastspeech_loss(model, two_utterance_batch("standard"))
    loss_garbage, logs_garbage = fastspeech_loss(model, two_utterance_batch("garbage"))
    assert loss_garbage.item() == pytest.approx(loss.item(), rel=1e-5)
    assert logs_garbage == pytest.approx(logs, rel=1e-5)


def test_zero_frame_phones_keep_the_loss_and_its_gradient_finite():
    model = tiny_model().train()
    loss, logs = fastspeech_loss(model, two_utterance_batch("standard"))
    loss.backward()
    assert math.isfinite(loss.item()) and all(math.isfinite(v) for v in logs.values())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_zero_frame_phones_take_the_boundary_frame_value():
    """phone_average: a 0-frame phone has no frames to average, so it reads the frame at its boundary
    (the next phone's first frame; the last frame at the very end); never NaN. By hand:"""
    frames = np.array([1.0, 3.0, 5.0, 7.0, 9.0])
    got = phone_average(frames, np.array([0, 2, 0, 3, 0]))
    np.testing.assert_allclose(got, [1.0, 2.0, 5.0, 7.0, 9.0])


def test_zero_frame_phones_do_not_count_in_the_pitch_and_energy_statistics():
    """The z-score statistics come from phones that own frames only: a 0-frame phone's value is a copy
    of a neighbour's frame, and counting it would weight that frame twice."""
    item = {"speaker": 0, "durations": np.array([2, 0, 3, 1]),
            "pitch": np.array([4.0, 100.0, 6.0, 8.0]), "energy_phone": np.array([1.0, -50.0, 2.0, 3.0])}
    stats = speaker_stats_from_items([item], ["a"])["a"]
    assert stats["pitch_mean"] == pytest.approx(6.0)
    assert stats["pitch_std"] == pytest.approx(math.sqrt(8 / 3) + 1e-5)
    assert stats["energy_mean"] == pytest.approx(2.0)
