"""ttslab.transfer: LoRA merge equality and parameter counts, frozen weights, L2-SP's gradient, relations, errors."""

import numpy as np
import pytest
import torch
from torch import nn

from ttslab.models.fastspeech import FastSpeech, FastSpeechConfig, collate_fastspeech, fastspeech_items, stats_from_items
from ttslab.transfer import (AdaptConfig, LoRA, adapt_speaker, adaptation_utterances, add_lora, adapter_parameters,
                             distance_correlation, instance_weights, l2sp_penalty, merge_lora,
                             nearest_speaker, relational_kd_loss, signature_distance)

SOURCES = ("en_us_m", "en_us_f")
NEW = "tgt_us_f"


@pytest.fixture(scope="module")
def tiny(ci_corpus):
    """An (untrained) tiny two-speaker FastSpeech with real statistics, its items and the target's items."""
    torch.set_num_threads(1)  # tiny tensors: a second thread only waits on a shared 2-core box
    torch.manual_seed(0)
    model = FastSpeech(FastSpeechConfig.tiny(speakers=SOURCES, predictor_dropout=0.0))
    src = [u for s in SOURCES for u in adaptation_utterances(ci_corpus, s, 4)]
    items = fastspeech_items(src, SOURCES)
    model.set_stats(stats_from_items(items, SOURCES))
    target = fastspeech_items(adaptation_utterances(ci_corpus, NEW, 6), SOURCES + (NEW,))
    return model.eval(), items, target


def randomize_adapters(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRA):
                m.lora_B.copy_(0.1 * torch.randn(m.lora_B.shape, generator=g))


def test_lora_layer_counts_and_merges():
    torch.manual_seed(0)
    lin, conv = LoRA(nn.Linear(6, 4), rank=2, alpha=4.0), LoRA(nn.Conv1d(3, 5, 3, padding=1), rank=2)
    assert lin.num_adapter_parameters() == 2 * (6 + 4)
    assert conv.num_adapter_parameters() == 2 * (3 * 3 + 5)
    x = torch.randn(2, 6)
    assert torch.equal(lin(x), lin.base(x))  # B = 0: starts as the base layer
    randomize_adapters(nn.ModuleList([lin, conv]))
    # hand formula for the Linear: W + (alpha / r) B A
    W = lin.base.weight + 2.0 * lin.lora_B @ lin.lora_A
    assert torch.allclose(lin(x), x @ W.T + lin.base.bias, atol=1e-6)
    assert torch.allclose(lin(x), lin.merged()(x), atol=1e-6)
    xc = torch.randn(2, 3, 11)
    assert torch.allclose(conv(xc), conv.merged()(xc), atol=1e-5)
    assert not torch.allclose(conv(xc), conv.base(xc), atol=1e-3)


def test_fastspeech_adapters_count_and_merge_exactly(tiny):
    model, items, _ = tiny
    import copy

    m = copy.deepcopy(model)
    n = add_lora(m, rank=2, alpha=8.0)  # scaling alpha / r = 4: a forgotten scale would show
    # by hand, tiny config (d=32, FFN 64 with kernels 3/1, predictors 2 x conv k3 32->32 + Linear 32->1, 80 mels):
    block = 2 * (32 + 96) + 2 * (32 + 32) + 2 * (32 * 3 + 64) + 2 * (64 + 32)
    predictor = 2 * 2 * (32 * 3 + 32) + 2 * (32 + 1)
    assert n == adapter_parameters(m) == block + 3 * predictor + 2 * (32 + 80)
    assert all(not p.requires_grad for name, p in m.named_parameters() if "lora_" not in name)
    randomize_adapters(m)
    batch = collate_fastspeech(items[:3])
    args = dict(durations=batch["durations"], pitch=batch["pitch"], energy=batch["energy"], stress=batch["stress"],
                word_position=batch["word_position"])
    with torch.no_grad():
        before = m.eval()(batch["phone_ids"], batch["speaker"], batch["phone_lengths"], **args)["mel_postnet"]
        merge_lora(m)
        after = m(batch["phone_ids"], batch["speaker"], batch["phone_lengths"], **args)["mel_postnet"]
        teacher = model(batch["phone_ids"], batch["speaker"], batch["phone_lengths"], **args)["mel_postnet"]
    assert torch.allclose(before, after, atol=1e-4, rtol=1e-5)
    assert (before - teacher).abs().max() > 1e-2  # the adapters did change the output
    assert set(m.state_dict()) == set(model.state_dict())  # merged: the plain architecture again
    with pytest.raises(ValueError, match="no LoRA adapters"):
        merge_lora(m)


def test_adapters_twice_is_an_error(tiny):
    import copy

    m = copy.deepcopy(tiny[0])
    add_lora(m)
    with pytest.raises(ValueError, match="already has LoRA adapters"):
        add_lora(m)
    with pytest.raises(ValueError, match="no nn.Linear"):
        add_lora(copy.deepcopy(tiny[0]), targets=("speaker_embedding",))


@pytest.mark.parametrize("method", ["speaker_embedding", "decoder_variance", "lora"])
def test_frozen_parameters_stay_unchanged(tiny, method):
    model, _, target = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapted, info = adapt_speaker(model, NEW, [None] * len(target), method, AdaptConfig(steps=3, batch_size=3),
                                  init_from="en_us_f", items=target)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the teacher is untouched
    after = adapted.state_dict()
    grown = ("speaker_embedding.weight", "pitch_mean", "pitch_std", "energy_mean", "energy_std")
    assert all(torch.equal(after[k][:2], before[k]) for k in grown)  # per-speaker rows of the sources kept
    changed = {k for k, v in before.items() if k not in grown and not torch.equal(v, after[k])}
    table = after["speaker_embedding.weight"]
    assert torch.equal(table[:2], before["speaker_embedding.weight"])  # source rows never move
    assert not torch.equal(table[2], before["speaker_embedding.weight"][1])  # the new row (from en_us_f) learned
    if method == "speaker_embedding":
        assert changed == set() and info["trainable_parameters"] == 32
    else:
        assert changed and all(k.split(".")[0] in ("decoder", "mel_head", "postnet", "duration_predictor",
                                                   "pitch_predictor", "energy_predictor", "pitch_embedding",
                                                   "energy_embedding") for k in changed), changed
        assert not any(k.startswith(("encoder", "phone_embedding")) for k in changed)
    if method == "lora":
        assert info["trainable_parameters"] == 32 + add_lora(FastSpeech(model.config), rank=4)
    assert adapted.speakers == SOURCES + (NEW,) and adapted.pitch_mean.shape == (3,)


def test_l2sp_gradient_is_beta_times_the_displacement():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    ref = {k: v.detach().clone() + 0.1 * torch.randn_like(v) for k, v in net.state_dict().items()}
    beta = 0.7
    penalty = l2sp_penalty(net, ref, beta)
    penalty.backward()
    for name, p in net.named_parameters():
        assert torch.allclose(p.grad, beta * (p.detach() - ref[name]), atol=1e-6)
    # finite differences on one weight
    w = net[0].weight
    with torch.no_grad():
        w[1, 2] += 1e-3
        up = float(l2sp_penalty(net, ref, beta))
        w[1, 2] -= 2e-3
        down = float(l2sp_penalty(net, ref, beta))
        w[1, 2] += 1e-3
    assert abs((up - down) / 2e-3 - float(net[0].weight.grad[1, 2])) < 1e-3


def test_l2sp_keeps_weights_closer_to_the_teacher(tiny):
    model, _, target = tiny
    cfg = AdaptConfig(steps=3, batch_size=2, lr=1e-2)
    plain, _ = adapt_speaker(model, NEW, [None] * 6, "finetune_all", cfg, init_from="en_us_f", items=target)
    pulled, _ = adapt_speaker(model, NEW, [None] * 6, "l2sp", AdaptConfig(**{**cfg.to_dict(), "l2sp_beta": 50.0}),
                              init_from="en_us_f", items=target)
    ref = model.state_dict()
    dist = lambda m: sum(float(((v - ref[k]) ** 2).sum()) for k, v in m.state_dict().items()
                         if k in ref and v.shape == ref[k].shape and v.dtype.is_floating_point)
    assert dist(pulled) < dist(plain)


def test_clear_errors(tiny, ci_corpus):
    model, _, target = tiny
    with pytest.raises(ValueError, match="already exists"):
        adapt_speaker(model, "en_us_m", [None], "lora", items=target[:1])
    n = len(ci_corpus.filter(speakers=NEW, split="train"))
    with pytest.raises(ValueError, match=f"k={n + 1} is more than the {n}"):
        adaptation_utterances(ci_corpus, NEW, n + 1)
    with pytest.raises(ValueError, match="unknown adaptation method"):
        adapt_speaker(model, NEW, [None], "magic", items=target[:1])
    with pytest.raises(ValueError, match="need source_items"):
        adapt_speaker(model, NEW, [None], "finetune_all", AdaptConfig(steps=1, relation_weight=1.0), items=target[:1])


def test_k0_copies_the_nearest_row(tiny):
    model, _, _ = tiny
    adapted, info = adapt_speaker(model, NEW, [], "finetune_all", init_from="en_us_f")
    assert info["trainable_parameters"] == 0
    w = adapted.speaker_embedding.weight
    assert torch.equal(w[2], w[1]) and float(adapted.pitch_mean[2]) == float(adapted.pitch_mean[1])


def test_nearest_speaker_and_instance_weights_by_hand():
    a, b, t = np.zeros(81), np.r_[np.full(80, 2.0), 0.0], np.r_[np.full(80, 0.5), 0.3]
    # d(t, a) = sqrt(0.25 + 0.09) = 0.583;  d(t, b) = sqrt(2.25 + 0.09) = 1.530
    assert signature_distance(t, a) == pytest.approx(np.sqrt(0.34))
    name, dist = nearest_speaker(t, {"a": a, "b": b})
    assert name == "a" and dist["b"] == pytest.approx(np.sqrt(2.34))
    w = instance_weights(["a", "b"], {"a": a, "b": b}, t, tau=0.5)
    ratio = np.exp(-(np.sqrt(0.34) - np.sqrt(2.34)) / 0.5)
    assert w.sum() == pytest.approx(1.0) and w[0] / w[1] == pytest.approx(ratio)


def test_relational_kd_loss():
    torch.manual_seed(0)
    t = torch.randn(5, 8)
    q, _ = torch.linalg.qr(torch.randn(8, 8))
    assert float(relational_kd_loss(3.0 * t @ q + 1.0, t)) < 1e-10  # rotations, shifts and scale keep relations
    s = torch.randn(5, 8, requires_grad=True)
    loss = relational_kd_loss(s, t)
    loss.backward()
    assert float(loss.detach()) > 0 and s.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=">= 2"):
        relational_kd_loss(t[:1], t[:1])
    x = np.random.default_rng(0).normal(size=(6, 3))
    assert distance_correlation(x, 2 * x) == pytest.approx(1.0)


def test_recipe_command_line_writes_a_plain_checkpoint(ci_corpus, tmp_path):
    """python -m ttslab.train.adapt: a loadable checkpoint with the new speaker and a log with the command."""
    import json

    from ttslab.models.fastspeech import FastSpeech
    from ttslab.train import adapt as recipe

    out = tmp_path / "a.pt"
    assert recipe.main(["--mode", "ci", "--speaker", NEW, "--k", "2", "--method", "lora", "--steps", "1",
                        "--out", str(out)]) == 0
    model = FastSpeech.from_checkpoint(out)
    assert model.speakers[-1] == NEW and not any(isinstance(m, LoRA) for m in model.modules())
    log = json.loads(out.with_name(out.name + ".log.json").read_text())
    assert log["k"] == 2 and log["method"] == "lora" and log["nearest"] in model.speakers[:-1]
    with pytest.raises(ValueError, match="already exists"):
        recipe.main(["--mode", "ci", "--speaker", "en_us_m", "--k", "1", "--method", "lora", "--out", str(out)])


def test_benchmark_goal_summary_and_table():
    """benchmarks/adaptation.py: the k = 20 goal picks the lowest MCD and compares it with the full-data row."""
    import importlib.util
    import sys
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location("adaptation_bench", folder / "adaptation.py")
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
    finally:
        sys.path.remove(str(folder))
    row = lambda m, k, mcd: {"method": m, "k": k, "mcd_dtw_db": mcd, "f0_rmse_hz": 10.0, "per": 0.05,
                             "trainable_parameters": 192, "seconds": 1.0}
    res = {"speaker": NEW, "nearest": "en_rp_f", "n_test": 2, "full_data": row("full_data", 330, 6.5),
           "rows": [row("nearest", 0, 8.0), row("lora", 20, 7.1), row("finetune_all", 20, 6.9), row("lora", 5, 6.0)]}
    s = bench.summarize(res, 20)
    assert s["best_method"] == "finetune_all" and s["gap_db"] == pytest.approx(0.4) and s["within_0_5_db"]
    res["summary"] = s
    md = bench.to_markdown({"meta": {"mode": "ci", "teacher": "t", "steps": 1, "batch_size": 1, "f0": "dio",
                                     "forget_k": 20, "forget_speakers": ["en_us_f"]}, "speakers": [res]})
    assert "| finetune_all | 20 | 192 | 6.90 |" in md and "+0.40 dB (within 0.5 dB)" in md
