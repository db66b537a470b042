"""A multi-speaker DNN-SPSS voice: hidden layers shared by every speaker, a speaker code on the input.

The per-speaker DNNs of :mod:`ttslab.models.dnn_spss` each learn the whole text -> speech mapping
from one speaker's data. Most of that mapping (which phone sounds how, in which context) is the same
for every speaker; only the voice differs. Fan et al. (2015) and Hojo et al. (2018) share the hidden
layers among speakers and tell the network who speaks by a **speaker code** ``s`` concatenated to
the input -- the "shared hidden layers" form of model transfer: each speaker's voice is learnt with
every other speaker's data behind it::

    h1 = act(W [x ; s] + b) = act(W_x x + W_s s + b)       x: 498 linguistic (+ 3 position) features
    h2 .. hL shared, y = V hL + c                           (the same outputs as the per-speaker DNN)

* ``code="onehot"``: ``s`` is the one-hot vector of the speaker, so ``W_s s`` is one learnt bias
  vector per speaker on the first layer (``n_speakers x hidden`` weights: all that is per speaker);
* ``code="embedding"``: ``s = E[speaker]``, a learnt ``code_dim``-vector; ``W_s E`` is then a rank
  ``code_dim`` family of speaker biases (fewer weights, and speakers that sound alike can share).

There is one duration net and one feed-forward acoustic net, both coded this way; the targets are
z-scored over all speakers together (the code carries each speaker's offsets, e.g. its mean log-F0).
:meth:`MultiSpeakerDNN.voice` returns a :class:`~ttslab.models.dnn_spss.DNNVoice` for one speaker
that shares the weights, so synthesis, MLPG, GV (each speaker's own GV statistics) and vocoding are
exactly the per-speaker voice's.

>>> net = SpeakerCodedNet(in_dim=4, out_dim=2, hidden=8, layers=2, n_speakers=3)
>>> tuple(net(torch.zeros(1, 5, 4), torch.tensor([2])).shape), net.code_dim
((1, 5, 2), 3)
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ttslab.device import resolve_device
from ttslab.dsp.normalize import Normalizer
from ttslab.models.dnn_spss import LINGUISTIC_DIM, DNNConfig, DNNVoice, acoustic_loss, duration_loss

__all__ = ["CODES", "SpeakerCodedNet", "SpeakerBound", "MultiSpeakerDNN", "multispeaker_duration_loss",
           "multispeaker_acoustic_loss", "build_nets", "FORMAT"]

CODES = ("onehot", "embedding")
FORMAT = "dnn-multispeaker-1"


class SpeakerCodedNet(nn.Module):
    """Feed-forward net over ``[x ; s]``: ``layers`` hidden layers of ``hidden`` units, shared by all speakers.

    ``forward(x, speaker)``: ``x`` (B, T, in_dim), ``speaker`` (B,) indices -> (B, T, out_dim).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int, layers: int, n_speakers: int, *,
                 code: str = "onehot", code_dim: int = 8, activation: str = "relu"):
        super().__init__()
        if code not in CODES:
            raise ValueError(f"code must be one of {CODES}, got {code!r}")
        if n_speakers < 1 or layers < 1 or hidden < 1:
            raise ValueError(f"n_speakers, layers and hidden must be >= 1, got {n_speakers}, {layers}, {hidden}")
        self.in_dim, self.n_speakers, self.code = in_dim, n_speakers, code
        self.code_dim = n_speakers if code == "onehot" else int(code_dim)
        self.embedding = nn.Embedding(n_speakers, self.code_dim) if code == "embedding" else None
        act = nn.ReLU if activation == "relu" else nn.Tanh
        self.first = nn.Linear(in_dim + self.code_dim, hidden)
        mods: list[nn.Module] = [act()]
        for _ in range(layers - 1):
            mods += [nn.Linear(hidden, hidden), act()]
        self.shared = nn.Sequential(*mods)
        self.out = nn.Linear(hidden, out_dim)

    def codes(self, speaker: torch.Tensor) -> torch.Tensor:
        """``(B, code_dim)`` speaker codes for indices ``(B,)``."""
        speaker = torch.as_tensor(speaker, dtype=torch.long, device=self.first.weight.device).reshape(-1)
        if speaker.numel() and (int(speaker.min()) < 0 or int(speaker.max()) >= self.n_speakers):
            raise ValueError(f"speaker indices must lie in 0..{self.n_speakers - 1}, got {speaker.tolist()}")
        if self.embedding is not None:
            return self.embedding(speaker)
        return nn.functional.one_hot(speaker, self.n_speakers).to(self.first.weight.dtype)

    def forward(self, x: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != self.in_dim:
            raise ValueError(f"input must have shape (batch, time, {self.in_dim}), got {tuple(x.shape)}")
        s = self.codes(speaker)
        if len(s) != len(x):
            raise ValueError(f"{len(s)} speaker indices for a batch of {len(x)}")
        s = s[:, None, :].expand(-1, x.shape[1], -1)
        return self.out(self.shared(self.first(torch.cat([x, s], -1))))

    def forward_phones(self, ling: torch.Tensor, phone_index: torch.Tensor, positions: torch.Tensor,
                       speaker: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` on frame inputs ``[ling[phone(t)] ; positions_t]``, with the first layer split
        per phone as :meth:`ttslab.models.dnn_spss.AcousticModel.forward_phones` does."""
        W, L = self.first.weight, ling.shape[-1]
        per_phone = ling @ W[:, :L].T
        h = torch.gather(per_phone, 1, phone_index[..., None].expand(-1, -1, per_phone.shape[-1]))
        h = h + positions @ W[:, L:self.in_dim].T + (self.codes(speaker) @ W[:, self.in_dim:].T)[:, None, :]
        return self.out(self.shared(h + self.first.bias))


class SpeakerBound(nn.Module):
    """A :class:`SpeakerCodedNet` with its speaker fixed: the interface of the per-speaker
    :class:`~ttslab.models.dnn_spss.DurationModel` (``squeeze=True``: ``(B, P)``) or
    :class:`~ttslab.models.dnn_spss.AcousticModel` (``forward(x, lengths)``, ``forward_phones``).
    ``speaker`` is one index or one per batch row (training)."""

    def __init__(self, net: SpeakerCodedNet, speaker, config: DNNConfig, squeeze: bool = False):
        super().__init__()
        self.net, self.config, self.squeeze = net, config, squeeze
        self.speaker = speaker

    def _rows(self, batch: int) -> torch.Tensor:
        s = torch.as_tensor(self.speaker, dtype=torch.long).reshape(-1)
        return s.expand(batch) if s.numel() == 1 else s

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        y = self.net(x, self._rows(len(x)))
        return y.squeeze(-1) if self.squeeze else y

    def forward_phones(self, ling, phone_index, positions, lengths=None) -> torch.Tensor:
        return self.net.forward_phones(ling, phone_index, positions, self._rows(len(ling)))


def multispeaker_duration_loss(net: SpeakerCodedNet, batch: Mapping) -> tuple[torch.Tensor, dict]:
    """:func:`~ttslab.models.dnn_spss.duration_loss` with each batch row's speaker (``batch["speaker"]`` (B,))."""
    return duration_loss(SpeakerBound(net, batch["speaker"], None, squeeze=True), batch)


def multispeaker_acoustic_loss(net: SpeakerCodedNet, batch: Mapping, config: DNNConfig | None = None):
    """:func:`~ttslab.models.dnn_spss.acoustic_loss` with each batch row's speaker."""
    return acoustic_loss(SpeakerBound(net, batch["speaker"], config or DNNConfig.full()), batch)


class MultiSpeakerDNN(nn.Module):
    """Shared duration and feed-forward acoustic nets for ``speakers``, with their normalizers, each
    speaker's GV statistics and front-end settings. :meth:`voice` gives one speaker's voice."""

    def __init__(self, speakers: Sequence[str], config: DNNConfig, duration: SpeakerCodedNet,
                 acoustic: SpeakerCodedNet, normalizers: Mapping[str, Normalizer],
                 gv: Mapping[str, tuple] | None = None, frontends: Mapping[str, Mapping] | None = None,
                 phones: Sequence[str] = (), info: Mapping | None = None):
        super().__init__()
        self.speakers = tuple(speakers)
        if len(set(self.speakers)) != len(self.speakers) or duration.n_speakers != len(self.speakers) \
                or acoustic.n_speakers != len(self.speakers):
            raise ValueError(f"the nets code {duration.n_speakers}/{acoustic.n_speakers} speakers; "
                             f"give as many distinct names, got {self.speakers}")
        self.config, self.duration, self.acoustic = config, duration, acoustic
        self.normalizers = dict(normalizers)
        self.gv = {k: (np.asarray(v[0], np.float64), np.asarray(v[1], np.float64)) for k, v in (gv or {}).items()}
        self.frontends = {k: dict(v) for k, v in (frontends or {}).items()}
        self.phones, self.info = sorted(phones), dict(info or {})
        self.eval()

    def speaker_index(self, speaker: str) -> int:
        if speaker not in self.speakers:
            raise ValueError(f"unknown speaker {speaker!r}; this model codes {list(self.speakers)}")
        return self.speakers.index(speaker)

    def voice(self, speaker: str) -> DNNVoice:
        """A :class:`DNNVoice` of ``speaker`` (kind ``"ff"``) that shares this model's weights."""
        i = self.speaker_index(speaker)
        return DNNVoice(speaker, self.config.with_kind("ff"), SpeakerBound(self.duration, i, self.config, True),
                        {"ff": SpeakerBound(self.acoustic, i, self.config)}, self.normalizers, self.gv.get(speaker),
                        self.frontends.get(speaker), self.phones, {**self.info, "multispeaker": True})

    def num_parameters(self) -> dict[str, int]:
        return {"duration": sum(p.numel() for p in self.duration.parameters()),
                "ff": sum(p.numel() for p in self.acoustic.parameters())}

    def save(self, path, half: bool = True) -> str:
        """A checksummed checkpoint (:func:`ttslab.checkpoint.save_checkpoint`); returns its SHA-256."""
        from ttslab.checkpoint import save_checkpoint

        nets = {name: {"in_dim": n.in_dim, "out_dim": n.out.out_features, "hidden": n.first.out_features,
                       "layers": 1 + len(n.shared) // 2, "code": n.code, "code_dim": n.code_dim}
                for name, n in (("duration", self.duration), ("acoustic", self.acoustic))}
        extra = {"format": FORMAT, "speakers": list(self.speakers), "frontends": self.frontends, "phones": self.phones,
                 "info": plain(self.info), "normalizers": {k: n.to_dict() for k, n in self.normalizers.items()},
                 "gv": {k: [v[0].tolist(), v[1].tolist()] for k, v in self.gv.items()}}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return save_checkpoint(path, self, model_config={"config": asdict(self.config), "nets": nets},
                               extra=extra, half=half)

    @classmethod
    def load(cls, path, sha256: str | None = None, *, verify: bool = True,
             device: str | torch.device = "cpu") -> "MultiSpeakerDNN":
        """Read a model written by :meth:`save` (checksum verified) onto ``device``."""
        from ttslab.checkpoint import CheckpointError, load_checkpoint

        device = resolve_device(device)
        payload = load_checkpoint(path, sha256=sha256, verify=verify)
        extra = payload["extra"]
        if extra.get("format") != FORMAT:
            raise CheckpointError(f"{path} is not a multi-speaker DNN of format {FORMAT!r} "
                                  f"(found {extra.get('format')!r}); train it again")
        n = len(extra["speakers"])
        nets = {k: SpeakerCodedNet(d["in_dim"], d["out_dim"], d["hidden"], d["layers"], n, code=d["code"],
                                   code_dim=d["code_dim"]) for k, d in payload["model_config"]["nets"].items()}
        model = cls(extra["speakers"], DNNConfig.from_dict(payload["model_config"]["config"]), nets["duration"],
                    nets["acoustic"], {k: Normalizer.from_dict(d) for k, d in extra["normalizers"].items()},
                    extra["gv"], extra["frontends"], extra["phones"], extra["info"])
        model.load_state_dict(payload["model"])
        return model.to(device).eval()


def build_nets(config: DNNConfig, n_speakers: int, code: str = "onehot", code_dim: int = 8):
    """``(duration, acoustic)`` coded nets of the per-speaker DNN's sizes (duration 2 x 64, FF 3 x 256)."""
    duration = SpeakerCodedNet(LINGUISTIC_DIM, 1, config.duration_hidden, config.duration_layers, n_speakers,
                               code=code, code_dim=code_dim, activation=config.activation)
    acoustic = SpeakerCodedNet(config.in_dim, config.out_dim, config.ff_hidden, config.ff_layers, n_speakers,
                               code=code, code_dim=code_dim, activation=config.activation)
    return duration, acoustic


def plain(obj):
    """``obj`` with numpy values turned into Python ones (checkpoints store plain values)."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
