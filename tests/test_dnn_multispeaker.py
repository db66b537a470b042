"""The multi-speaker DNN-SPSS: speaker codes change the output, the hidden layers are one set of
weights for every speaker, a tiny training lowers the loss, and bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ttslab.models.dnn_multispeaker import (MultiSpeakerDNN, SpeakerBound, SpeakerCodedNet, build_nets,
                                            multispeaker_acoustic_loss, multispeaker_duration_loss)
from ttslab.models.dnn_spss import LINGUISTIC_DIM, DNNConfig


def _net(code="onehot", n=3):
    torch.manual_seed(0)
    return SpeakerCodedNet(6, 2, hidden=8, layers=3, n_speakers=n, code=code, code_dim=4)


@pytest.mark.parametrize("code", ["onehot", "embedding"])
def test_the_speaker_code_changes_the_output_and_only_the_first_layer_sees_it(code):
    net = _net(code)
    x = torch.randn(1, 5, 6)
    a, b = net(x, torch.tensor([0])), net(x, torch.tensor([1]))
    assert not torch.allclose(a, b)
    # By hand: the code enters as W_s s, an extra bias on the first layer, nothing else.
    s = net.codes(torch.tensor([1]))
    pre = x @ net.first.weight[:, :6].T + s @ net.first.weight[:, 6:].T + net.first.bias
    assert torch.allclose(net.out(net.shared(pre)), b, atol=1e-6)
    if code == "onehot":
        assert torch.equal(s, torch.tensor([[0.0, 1.0, 0.0]]))


def test_hidden_layers_are_shared_one_set_of_weights_for_every_speaker():
    net = _net()
    hidden = [m for m in net.shared if isinstance(m, torch.nn.Linear)]
    assert len(hidden) == 2
    # A gradient from speaker 0's loss and one from speaker 2's reach the same hidden tensors.
    x = torch.randn(2, 4, 6)
    for spk in (0, 2):
        net.zero_grad()
        net(x, torch.tensor([spk, spk])).sum().backward()
        assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in hidden)
        # only that speaker's code column of the first layer gets a gradient (one-hot input)
        code_grad = net.first.weight.grad[:, 6:].abs().sum(0)
        assert code_grad[spk] > 0 and float(code_grad.sum() - code_grad[spk]) == 0.0
    # Two speakers' voices of one model hold the very same hidden-layer tensors (no copies).
    config = DNNConfig.tiny()
    dur, ac = build_nets(config, 2)
    from ttslab.dsp.normalize import Normalizer

    norms = {"duration": Normalizer().fit([np.random.default_rng(0).normal(size=(9, 1))]),
             "acoustic": Normalizer().fit([np.random.default_rng(1).normal(size=(9, config.n_static))])}
    model = MultiSpeakerDNN(["a", "b"], config, dur, ac, norms)
    va, vb = model.voice("a"), model.voice("b")
    assert va.acoustic["ff"].net.shared[1].weight is vb.acoustic["ff"].net.shared[1].weight
    assert sum(p.numel() for p in model.parameters()) == sum(model.num_parameters().values())


def test_phone_level_forward_equals_the_frame_level_one():
    config = DNNConfig.tiny()
    torch.manual_seed(1)
    _, net = build_nets(config, 4, code="embedding", code_dim=3)
    ling = torch.rand(2, 3, LINGUISTIC_DIM)
    index = torch.tensor([[0, 0, 1, 2, 2], [0, 1, 1, 1, 2]])
    pos = torch.rand(2, 5, 3)
    spk = torch.tensor([3, 1])
    frames = torch.cat([torch.gather(ling, 1, index[..., None].expand(-1, -1, LINGUISTIC_DIM)), pos], -1)
    assert torch.allclose(net.forward_phones(ling, index, pos, spk), net(frames, spk), atol=1e-5)


def test_a_tiny_training_decreases_both_losses():
    config = DNNConfig.tiny()
    torch.manual_seed(0)
    dur, ac = build_nets(config, 2)
    g = torch.Generator().manual_seed(0)
    # two "speakers" whose targets differ by an offset: only the code can tell them apart
    x = torch.rand(4, 20, config.in_dim, generator=g)
    spk = torch.tensor([0, 1, 0, 1])
    y = torch.randn(4, 20, config.n_static, generator=g) * 0.1 + (2.0 * spk - 1.0)[:, None, None]
    batch = {"x": x, "y": y, "vuv": (torch.rand(4, 20, generator=g) > 0.5).float(), "speaker": spk}
    dbatch = {"x": torch.rand(4, 7, LINGUISTIC_DIM, generator=g), "y": (2.0 * spk - 1.0)[:, None].expand(4, 7),
              "speaker": spk}
    for net, loss_fn, b in ((ac, lambda m, bb: multispeaker_acoustic_loss(m, bb, config), batch),
                            (dur, multispeaker_duration_loss, dbatch)):
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        first = float(loss_fn(net, b)[0].detach())
        for _ in range(60):
            opt.zero_grad()
            loss_fn(net, b)[0].backward()
            opt.step()
        assert float(loss_fn(net, b)[0].detach()) < 0.5 * first


def test_bad_input_is_refused_early():
    with pytest.raises(ValueError, match="code must be one of"):
        SpeakerCodedNet(4, 1, 8, 1, 2, code="ivector")
    net = _net()
    with pytest.raises(ValueError, match="speaker indices must lie in 0..2"):
        net(torch.zeros(1, 2, 6), torch.tensor([3]))
    with pytest.raises(ValueError, match=r"shape \(batch, time, 6\)"):
        net(torch.zeros(1, 2, 5), torch.tensor([0]))
    with pytest.raises(ValueError, match="2 speaker indices for a batch of 1"):
        net(torch.zeros(1, 2, 6), torch.tensor([0, 1]))
    config = DNNConfig.tiny()
    dur, ac = build_nets(config, 3)
    with pytest.raises(ValueError, match="give as many distinct names"):
        MultiSpeakerDNN(["a", "b"], config, dur, ac, {})
    model = MultiSpeakerDNN(["a", "b", "c"], config, dur, ac, {})
    with pytest.raises(ValueError, match="unknown speaker 'd'"):
        model.voice("d")
    assert isinstance(SpeakerBound(net, 0, config), torch.nn.Module)


@pytest.mark.slow
def test_recipe_trains_saves_and_loads_on_the_ci_corpus(ci_corpus, tmp_path):
    from ttslab.checkpoint import CheckpointError
    from ttslab.train.dnn_multispeaker import train_multispeaker_dnn
    from ttslab.train.loop import TrainConfig

    tc = TrainConfig(steps=15, batch_size=4, valid_every=15, lr=3e-3)
    model = train_multispeaker_dnn(ci_corpus, ["en_us_m", "en_us_f"], DNNConfig.tiny(), {"duration": tc, "ff": tc},
                                   mode="ci", per_speaker=3, progress=False, device="cpu")
    assert model.info["n_utterances"] == 4 and model.info["n_valid_utterances"] == 2
    path = tmp_path / "multi.pt"
    model.save(path, half=False)
    loaded = MultiSpeakerDNN.load(path)
    utt = next(u for u in ci_corpus.filter(speakers="en_us_f", split="test"))
    voice = model.voice("en_us_f")
    oracle = voice.oracle_durations(utt)
    a = voice.generate_features(utt, oracle)["mcep"]
    b = loaded.voice("en_us_f").generate_features(utt, oracle)["mcep"]
    assert np.allclose(a, b, atol=1e-5)
    assert not np.allclose(a, loaded.voice("en_us_m").generate_features(utt, oracle)["mcep"])
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CheckpointError):
        MultiSpeakerDNN.load(path)
    with pytest.raises(ValueError, match="at least 2 speakers"):
        train_multispeaker_dnn(ci_corpus, ["en_us_m"], DNNConfig.tiny(), mode="ci", progress=False)
