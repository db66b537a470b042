"""The device rule (ttslab.device) and its plumbing through the training loop and the loaders (issue 8 §5).

Everything here runs on a CPU-only machine: CUDA's absence (or presence) is simulated by patching
``torch.cuda``, and "moved to a device" is checked with the ``meta`` device, which every PyTorch
build has (tensors with a shape and no data).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
import torch

from ttslab import pretrained
from ttslab.device import DeviceError, module_device, resolve_device, to_device
from ttslab.train import Batches, TrainConfig, evaluate, fit, train_step


@pytest.fixture
def no_cuda(monkeypatch):
    """Pretend this machine has no CUDA GPU (it usually has none; this makes the tests hold on a GPU box too)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def one_gpu(monkeypatch):
    """Pretend there is exactly one CUDA GPU (nothing is ever allocated on it in these tests)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


# --- resolve_device ------------------------------------------------------------------------------

def test_auto_is_the_cpu_without_cuda(no_cuda):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")
    assert resolve_device(" AUTO ") == torch.device("cpu")


def test_auto_is_the_gpu_with_cuda(one_gpu):
    assert resolve_device("auto") == torch.device("cuda", 0)
    # "cuda" names the current GPU, so that it compares equal to a tensor's device
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)


def test_auto_on_this_machine_follows_torch():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_explicit_devices_pass_through(no_cuda):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("meta") == torch.device("meta")


@pytest.mark.parametrize("device", ["cuda", "cuda:1", torch.device("cuda", 0)])
def test_cuda_without_a_gpu_is_a_clear_error(no_cuda, device):
    with pytest.raises(DeviceError, match=r"asked for CUDA.*device='cpu'.*'auto'.*pytorch.org"):
        resolve_device(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_on_this_cpu_only_machine_is_a_clear_error():
    with pytest.raises(DeviceError, match="device='cpu'"):
        resolve_device("cuda")


def test_a_gpu_index_past_the_last_gpu_is_refused(one_gpu):
    with pytest.raises(DeviceError, match=r"only 1 CUDA device\(s\), cuda:0..cuda:0"):
        resolve_device("cuda:1")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", ""])
def test_unknown_device_names_are_refused(bad):
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device(bad)


def test_a_device_of_the_wrong_type_is_refused():
    with pytest.raises(TypeError, match="device must be"):
        resolve_device(0)


# --- to_device -------------------------------------------------------------------------------------

Pair = namedtuple("Pair", "a b")


def _nested():
    ids = np.arange(3)
    return {"mel": torch.zeros(2, 3), "utt_id": "u1", "n": 7, "ids": ids, "none": None,
            "parts": [torch.ones(1), "text", (torch.full((2,), 2.0), 1.5)], "pair": Pair(torch.zeros(1), "b")}


@pytest.mark.parametrize("device", ["meta", torch.device("meta"), "cpu"])
def test_to_device_moves_every_tensor_and_passes_the_rest(device):
    batch = _nested()
    moved = to_device(batch, device)
    want = torch.device(device)
    tensors = [moved["mel"], moved["parts"][0], moved["parts"][2][0], moved["pair"].a]
    assert all(t.device == want for t in tensors)
    assert [tuple(t.shape) for t in tensors] == [(2, 3), (1,), (2,), (1,)]
    # non-tensors are the very same objects; containers keep their kind
    assert moved["utt_id"] == "u1" and moved["n"] == 7 and moved["none"] is None
    assert moved["ids"] is batch["ids"] and moved["parts"][1] == "text" and moved["parts"][2][1] == 1.5
    assert type(moved["parts"]) is list and type(moved["parts"][2]) is tuple and type(moved["pair"]) is Pair
    assert batch["mel"].device == torch.device("cpu")  # the input is left as it was


def test_to_device_on_a_plain_tensor_and_a_scalar():
    assert to_device(torch.zeros(1), "meta").is_meta
    assert to_device(3, "meta") == 3


def test_module_device():
    assert module_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert module_device(torch.nn.Linear(2, 2).to("meta")) == torch.device("meta")
    assert module_device(torch.nn.ReLU()) == torch.device("cpu")  # no weights: the CPU


# --- the training loop ---------------------------------------------------------------------------

def _items(n=16):
    rng = np.random.default_rng(0)
    return [{"x": rng.normal(size=3).astype(np.float32), "id": f"u{i}"} for i in range(n)]


def _nested_collate(items):
    """A batch as recipes make them: CPU tensors, nested, with ids the model never sees."""
    x = torch.from_numpy(np.stack([it["x"] for it in items]))
    return {"inputs": {"x": x, "pair": (x * 2, [x * 3])}, "ids": [it["id"] for it in items], "n": len(items)}


class Recorder:
    """A loss that records where each batch's tensors were; it works on the meta device (no values needed)."""

    def __init__(self):
        self.devices, self.ids = [], []

    def __call__(self, model, batch):
        inputs = batch["inputs"]
        self.devices.append({inputs["x"].device, inputs["pair"][0].device, inputs["pair"][1][0].device,
                             next(model.parameters()).device})
        self.ids.append(batch["ids"])
        # a CPU scalar with a gradient, so backward and the optimizer step run without real values
        return torch.tensor(1.0, requires_grad=True), {"n": float(batch["n"])}


def test_train_step_moves_the_model_and_the_nested_batch():
    model, loss = torch.nn.Linear(3, 1), Recorder()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    logs = train_step(model, opt, loss, _nested_collate(_items(4)), device="meta")
    assert loss.devices == [{torch.device("meta")}]
    assert module_device(model) == torch.device("meta")
    assert loss.ids == [["u0", "u1", "u2", "u3"]] and logs["n"] == 4.0


def test_evaluate_moves_the_batches():
    model, loss = torch.nn.Linear(3, 1), Recorder()
    out = evaluate(model, loss, [_nested_collate(_items(4)), _nested_collate(_items(2))], device="meta")
    assert loss.devices == [{torch.device("meta")}] * 2 and out["n"] == 3.0


def test_fit_trains_where_it_is_told_and_batches_follow():
    model, loss = torch.nn.Linear(3, 1), Recorder()
    items = _items()
    fit(model, loss, Batches(items, 4, _nested_collate, seed=0), TrainConfig(steps=5, batch_size=4, valid_every=5),
        valid_batches=Batches(items[:4], 4, _nested_collate, shuffle=False), progress=False, device="meta")
    assert len(loss.devices) == 5 + 1  # five steps, one validation
    assert all(d == {torch.device("meta")} for d in loss.devices)
    assert module_device(model) == torch.device("meta")


def test_fit_without_a_device_leaves_the_model_where_it_is():
    model, loss = torch.nn.Linear(3, 1).to("meta"), Recorder()
    fit(model, loss, Batches(_items(), 4, _nested_collate), TrainConfig(steps=2, batch_size=4), progress=False)
    assert all(d == {torch.device("meta")} for d in loss.devices)


def test_fit_on_the_cpu_by_name_equals_fit_where_the_model_is():
    def mse(model, batch):
        x = batch["inputs"]["x"]
        err = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
        return err, {}

    weights = []
    for device in (None, "cpu", "auto" if not torch.cuda.is_available() else "cpu"):
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)
        fit(model, mse, Batches(_items(), 4, _nested_collate, seed=1), TrainConfig(steps=6, batch_size=4, seed=2),
            progress=False, device=device)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1]) and torch.equal(weights[0], weights[2])


def test_fit_on_a_missing_gpu_fails_before_training(no_cuda):
    loss = Recorder()
    with pytest.raises(DeviceError, match="device='cpu'"):
        fit(torch.nn.Linear(3, 1), loss, Batches(_items(), 4, _nested_collate), TrainConfig(steps=2, batch_size=4),
            progress=False, device="cuda")
    assert loss.devices == []


# --- loaders ---------------------------------------------------------------------------------------

TORCH_CHECKPOINTS = ["judge", "vocoder", "fastspeech_teacher", "dnn_en_us_m"]


@pytest.mark.parametrize("name", TORCH_CHECKPOINTS)
def test_shipped_checkpoints_load_onto_the_cpu_by_default_and_by_name(name):
    for model in (pretrained.load(name), pretrained.load(name, device="cpu")):
        assert {p.device for p in model.parameters()} == {torch.device("cpu")}
        assert {b.device for b in model.buffers()} <= {torch.device("cpu")}


@pytest.mark.parametrize("name", TORCH_CHECKPOINTS)
def test_shipped_checkpoints_load_onto_the_device_asked_for(name):
    model = pretrained.load(name, device="meta")  # meta: "another device" that every build has
    assert {p.device for p in model.parameters()} == {torch.device("meta")}


@pytest.mark.parametrize("name", TORCH_CHECKPOINTS)
def test_loading_onto_a_missing_gpu_is_the_clear_error(no_cuda, name):
    with pytest.raises(DeviceError, match="device='cpu'"):
        pretrained.load(name, device="cuda")


def test_every_loader_takes_a_device(no_cuda, tmp_path):
    from ttslab.checkpoint import load_checkpoint, save_checkpoint
    from ttslab.models.dnn_spss import DNNVoice
    from ttslab.models.fastspeech import FastSpeech, load_fastspeech
    from ttslab.models.judge import PhoneRecognizer, from_checkpoint
    from ttslab.vocoders.neural import NeuralVocoder

    path = tmp_path / "m.pt"
    save_checkpoint(path, torch.nn.Linear(2, 2))
    assert load_checkpoint(path, map_location="auto")["model"]["weight"].device == torch.device("cpu")
    assert load_checkpoint(path, map_location=torch.device("meta"))["model"]["weight"].is_meta
    for load in (FastSpeech.from_checkpoint, load_fastspeech, PhoneRecognizer.from_checkpoint, from_checkpoint,
                 DNNVoice.load, NeuralVocoder.from_checkpoint):
        with pytest.raises(DeviceError):  # the device is checked first, before the file is even read
            load(tmp_path / "missing.pt", device="cuda")
    with pytest.raises(DeviceError):
        load_checkpoint(path, map_location="cuda")


def test_the_hmm_voice_runs_on_the_cpu_only(no_cuda):
    assert pretrained.load("hmm_en_us_m", device="auto") is not None
    with pytest.raises(ValueError, match="numpy model that runs on the CPU"):
        pretrained.load("hmm_en_us_m", device="cuda")


# --- inference on the model's device ----------------------------------------------------------------

@pytest.mark.parametrize("training", [False, True])
def test_the_judge_moves_cpu_inputs_to_its_device(training):
    """The recognizer's masks, normalisation and SpecAugment noise follow the mel onto the model's device;
    the lengths stay on the CPU (packing and CTC want them there)."""
    from dataclasses import replace

    from ttslab.models.judge import JudgeConfig, PhoneRecognizer

    judge = PhoneRecognizer(replace(JudgeConfig.tiny(), rnn_layers=0)).to("meta").train(training)
    log_probs, lengths = judge(torch.randn(2, 30, 80), torch.tensor([30, 20]))
    assert log_probs.is_meta and log_probs.shape == (2, 15, judge.config.num_classes)
    assert lengths.device == torch.device("cpu") and lengths.tolist() == [15, 10]


def test_a_dnn_voice_feeds_each_network_on_its_own_device():
    """Networks of one voice may sit on different devices (a notebook moves one to the CPU to look at it)."""
    voice = pretrained.load("dnn_en_us_m")
    ling = np.zeros((3, 498), np.float32)
    voice.duration.to("meta")  # the duration net elsewhere: the acoustic net must still get CPU inputs
    means, vuv = voice.predict_frames(ling, np.array([2, 3, 1]))
    assert means.shape == (6, voice.config.n_static) and np.isfinite(means).all() and vuv.shape == (6,)
    with pytest.raises(NotImplementedError):  # and the duration net gets its input on its (meta) device
        voice.predict_durations(ling)
