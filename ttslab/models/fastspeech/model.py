"""The model (:class:`FastSpeech`): encoder, speaker embedding, variance adaptor, length regulator, decoder."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ttslab.models.fastspeech.config import FastSpeechConfig
from ttslab.data.datasets import MEL_PAD
from ttslab.models.fastspeech.layers import (FFTStack, Postnet, VarianceEmbedding, VariancePredictor, length_regulate,
                                             lengths_to_mask, round_durations, zero_padding)
from ttslab.text.frontend import N_STRESS, WORD_POSITIONS

#: Predicted utterances longer than this many frames (about 3 minutes) are refused as a runaway.
MAX_FRAMES = 16000
LN2_OVER_12 = math.log(2.0) / 12.0


# ---------------------------------------------------------------------------------------------
# The model


class FastSpeech(nn.Module):
    """FastSpeech-2-style acoustic model (see the module docstring for the equations).

    Buffers (saved with the weights): per-speaker ``pitch_mean/pitch_std`` (phone log-F0) and
    ``energy_mean/energy_std`` (phone log energy) for the z-scores, and ``mel_mean/mel_std`` (80,)
    that scale the linear head's output, so the decoder starts near the data's average spectrum.
    Set them from training data with :meth:`set_stats` before training.
    """

    #: Normalisation buffers: four per speaker (S,), two per mel bin (80,).
    STAT_NAMES = ("pitch_mean", "pitch_std", "energy_mean", "energy_std", "mel_mean", "mel_std")

    def __init__(self, config: FastSpeechConfig | None = None):
        super().__init__()
        self.config = c = config or FastSpeechConfig()
        self.phone_embedding = nn.Embedding(c.n_phones, c.d_model, padding_idx=0)
        nn.init.normal_(self.phone_embedding.weight, 0.0, c.d_model ** -0.5)
        with torch.no_grad():
            self.phone_embedding.weight[0].zero_()
        if c.phone_context:
            self.stress_embedding = nn.Embedding(N_STRESS, c.d_model)
            self.word_position_embedding = nn.Embedding(len(WORD_POSITIONS), c.d_model)
            for table in (self.stress_embedding, self.word_position_embedding):
                nn.init.normal_(table.weight, 0.0, c.d_model ** -0.5)
        self.encoder = FFTStack(c, c.encoder_layers)
        self.speaker_embedding = nn.Embedding(c.n_speakers, c.d_model)
        nn.init.normal_(self.speaker_embedding.weight, 0.0, c.d_model ** -0.5)
        pred = (c.d_model, c.predictor_channels, c.predictor_kernel, c.predictor_layers, c.predictor_dropout)
        self.duration_predictor = VariancePredictor(*pred)
        self.pitch_predictor = VariancePredictor(*pred)
        self.energy_predictor = VariancePredictor(*pred)
        self.pitch_embedding = VarianceEmbedding(c.d_model, c.variance_embedding, c.n_bins, c.bin_range)
        self.energy_embedding = VarianceEmbedding(c.d_model, c.variance_embedding, c.n_bins, c.bin_range)
        self.decoder = FFTStack(c, c.decoder_layers)
        self.mel_head = nn.Linear(c.d_model, c.n_mels)
        self.postnet = (Postnet(c.n_mels, c.postnet_channels, c.postnet_kernel, c.postnet_layers, c.dropout)
                        if c.postnet_layers > 0 else None)
        S = c.n_speakers
        for name, value in (("pitch_mean", 0.0), ("pitch_std", 1.0), ("energy_mean", 0.0), ("energy_std", 1.0)):
            self.register_buffer(name, torch.full((S,), value))
        self.register_buffer("mel_mean", torch.zeros(c.n_mels))
        self.register_buffer("mel_std", torch.ones(c.n_mels))

    # --- speakers and statistics ----------------------------------------------------------------
    @property
    def speakers(self) -> tuple[str, ...]:
        return self.config.speakers

    def speaker_index(self, speaker: str | int) -> int:
        """Row of ``speaker`` (a name or an index) in the speaker table; a clear error if unknown."""
        if isinstance(speaker, (int, np.integer)) and not isinstance(speaker, bool):
            if not 0 <= int(speaker) < self.config.n_speakers:
                raise ValueError(f"speaker index {speaker} out of range 0..{self.config.n_speakers - 1}")
            return int(speaker)
        if speaker not in self.speakers:
            raise ValueError(f"unknown speaker {speaker!r}; this model knows {list(self.speakers)} "
                             f"(add new ones with model.add_speakers)")
        return self.speakers.index(speaker)

    def set_stats(self, stats: dict) -> None:
        """Set normalisation statistics: ``{"pitch_mean": (S,), "pitch_std", "energy_mean", "energy_std",
        "mel_mean": (80,), "mel_std"}`` (any subset; numbers, lists, arrays or tensors)."""
        for name, value in stats.items():
            buf = getattr(self, name, None)
            if name not in self.STAT_NAMES or buf is None:
                raise KeyError(f"unknown statistic {name!r}; expected some of {self.STAT_NAMES}")
            value = torch.as_tensor(np.asarray(value, dtype=np.float32))
            if value.shape != buf.shape:
                raise ValueError(f"{name} must have shape {tuple(buf.shape)}, got {tuple(value.shape)}")
            if not torch.isfinite(value).all() or (name.endswith("std") and (value <= 0).any()):
                raise ValueError(f"{name} must be finite (and > 0 for a std), got {value}")
            buf.copy_(value)

    def speaker_stats(self) -> dict[str, dict[str, float]]:
        """Per-speaker pitch/energy statistics as plain floats (what a checkpoint's ``extra`` keeps)."""
        return {s: {k: float(getattr(self, k)[i]) for k in self.STAT_NAMES[:4]} for i, s in enumerate(self.speakers)}

    def add_speakers(self, names: Sequence[str], *, init_from: str | None = None,
                     stats: dict[str, dict[str, float]] | None = None) -> list[int]:
        """Append rows to the speaker table for adaptation; return their indices.

        Each new row starts as a copy of ``init_from``'s embedding (default: the mean of all rows),
        and its pitch/energy statistics come from ``stats[name]`` (keys ``pitch_mean`` ... as
        :meth:`speaker_stats`) or else from ``init_from`` / the mean over speakers. Compute real
        statistics from the new speaker's data (:func:`speaker_stats_from_items`) when you have it.
        """
        names = [str(n) for n in names]
        clash = [n for n in names if n in self.speakers] or ([] if len(set(names)) == len(names) else names)
        if not names or clash:
            raise ValueError(f"give new, distinct speaker names (already known or repeated: {clash})")
        stats = stats or {}
        old = self.speaker_embedding.weight.data
        src = self.speaker_index(init_from) if init_from is not None else None
        rows = old[src] if src is not None else old.mean(0)
        table = nn.Embedding(len(old) + len(names), old.shape[1]).to(old.device)
        with torch.no_grad():
            table.weight[: len(old)] = old
            table.weight[len(old):] = rows
        self.speaker_embedding = table
        for key in self.STAT_NAMES[:4]:
            buf = getattr(self, key)
            default = float(buf[src]) if src is not None else float(buf.mean())
            new = [float(stats.get(n, {}).get(key, default)) for n in names]
            setattr(self, key, torch.cat([buf, torch.tensor(new, dtype=buf.dtype, device=buf.device)]))
        self.config = replace(self.config, speakers=self.speakers + tuple(names))
        return [self.speakers.index(n) for n in names]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # --- normalisation ----------------------------------------------------------------------------
    def normalize_variances(self, pitch: torch.Tensor, energy: torch.Tensor,
                            speaker: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Phone log-F0 and log energy (B, N) -> per-speaker z-scores."""
        s = speaker[:, None]
        return ((pitch - self.pitch_mean[s]) / self.pitch_std[s], (energy - self.energy_mean[s]) / self.energy_std[s])

    def denormalize_variances(self, pitch_z: torch.Tensor, energy_z: torch.Tensor,
                              speaker: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inverse of :meth:`normalize_variances`: z-scores -> log-F0 and log energy."""
        s = speaker[:, None]
        return pitch_z * self.pitch_std[s] + self.pitch_mean[s], energy_z * self.energy_std[s] + self.energy_mean[s]

    # --- forward ----------------------------------------------------------------------------------
    def forward(self, phone_ids: torch.Tensor, speaker: torch.Tensor, phone_lengths: torch.Tensor | None = None,
                durations: torch.Tensor | None = None, pitch: torch.Tensor | None = None,
                energy: torch.Tensor | None = None, *, stress: torch.Tensor | None = None,
                word_position: torch.Tensor | None = None, rate: float = 1.0, pitch_shift_semitones: float = 0.0,
                energy_scale: float = 1.0) -> dict:
        """Run the model on a padded batch; return a dict of every intermediate output.

        ``phone_ids`` (B, N) long (0 = padding), ``speaker`` (B,) long, ``phone_lengths`` (B,) (default:
        non-zero ids). ``stress`` and ``word_position`` (B, N) long (:func:`phone_context`) are required
        when ``config.phone_context``. Optional teacher forcing: ``durations`` (B, N) frames, ``pitch`` (B, N) phone
        log-F0, ``energy`` (B, N) phone log energy (natural units, as batches of
        :func:`ttslab.data.datasets.collate_acoustic` hold them). Controls (``rate`` etc.) act on the
        values fed forward, predicted or given.

        Returns ``mel`` and ``mel_postnet`` (B, T, 80) log-mel (equal without a postnet),
        ``log_duration`` (B, N) predicted ``log(1 + frames)``, ``pitch``/``energy`` (B, N) predicted
        z-scores, ``pitch_target``/``energy_target`` (the z-scores of the given ones, if given),
        ``durations`` (B, N) the integer durations used, ``encoder_out`` (B, N, d) (speaker added),
        ``variance_out`` (B, N, d) (pitch and energy embeddings added), ``decoder_out`` (B, T, d),
        ``encoder_states``/``decoder_states`` (lists, one per block), ``phone_mask`` (B, N) and
        ``frame_mask`` (B, T) (True on real positions), ``frame_lengths`` (B,).
        """
        phone_ids, speaker, phone_lengths = self._check_inputs(phone_ids, speaker, phone_lengths)
        if not rate > 0:
            raise ValueError(f"rate is a speed multiplier and must be > 0, got {rate}")
        if not energy_scale > 0:
            raise ValueError(f"energy_scale multiplies the energy and must be > 0, got {energy_scale}")
        phone_mask = lengths_to_mask(phone_lengths, phone_ids.shape[1])
        x = self.phone_embedding(phone_ids)
        if self.config.phone_context:
            stress, word_position = self._check_context(phone_ids, stress, word_position)
            x = x + self.stress_embedding(stress) + self.word_position_embedding(word_position)
        x = zero_padding(x * math.sqrt(self.config.d_model), phone_mask)
        enc, enc_states = self.encoder(x, phone_mask)
        h = zero_padding(enc + self.speaker_embedding(speaker)[:, None, :], phone_mask)
        out = {"phone_mask": phone_mask, "encoder_out": h, "encoder_states": enc_states}

        log_d = self.duration_predictor(h, phone_mask)
        p_pred = self.pitch_predictor(h, phone_mask)
        out.update(log_duration=log_d, pitch=p_pred)
        if pitch is not None or energy is not None:
            if pitch is None or energy is None:
                raise ValueError("give both pitch and energy targets, or neither")
            p_z, e_z = self.normalize_variances(pitch.float(), energy.float(), speaker)
            out.update(pitch_target=p_z.masked_fill(~phone_mask, 0.0), energy_target=e_z.masked_fill(~phone_mask, 0.0))
        s = speaker[:, None]
        p_used = (out["pitch_target"] if pitch is not None else p_pred) + pitch_shift_semitones * LN2_OVER_12 / self.pitch_std[s]
        h = h + self.pitch_embedding(p_used, phone_mask)
        e_pred = self.energy_predictor(h, phone_mask)
        e_used = (out["energy_target"] if energy is not None else e_pred) + math.log(energy_scale) / self.energy_std[s]
        h = h + self.energy_embedding(e_used, phone_mask)
        out.update(energy=e_pred, pitch_used=p_used, energy_used=e_used, variance_out=h)

        if durations is None:
            frames = (torch.exp(log_d.detach()) - 1.0) / rate
            durations = round_durations(frames, phone_mask)
            durations[:, 0] += (durations.sum(1) == 0).long()  # at least one frame per utterance
        else:
            durations = durations.long().masked_fill(~phone_mask, 0)
            if rate != 1.0:
                durations = round_durations(durations.float() / rate, phone_mask)
        if int(durations.sum(1).max()) > MAX_FRAMES:
            raise ValueError(f"predicted {int(durations.sum(1).max())} frames (> {MAX_FRAMES}): the text is too "
                             f"long or the rate too slow; split the text into sentences")
        z, frame_lengths = length_regulate(h, durations)
        frame_mask = lengths_to_mask(frame_lengths, z.shape[1])
        dec, dec_states = self.decoder(z, frame_mask)
        y = self.mel_head(dec)                     # normalised log-mel
        scale = lambda v: (v * self.mel_std + self.mel_mean).masked_fill(~frame_mask[..., None], MEL_PAD)
        mel = scale(y)
        mel_post = scale(y + self.postnet(y, frame_mask)) if self.postnet is not None else mel
        out.update(durations=durations, frame_lengths=frame_lengths, frame_mask=frame_mask, decoder_out=dec,
                   decoder_states=dec_states, mel=mel, mel_postnet=mel_post)
        return out

    def _check_context(self, phone_ids, stress, word_position):
        if stress is None or word_position is None:
            raise ValueError("this model reads stress and word-position inputs besides phone ids: pass the dict "
                             "of text_to_inputs(text, speaker) or utterance_inputs(utterance), or stress= and "
                             "word_position= (see phone_context)")
        out = []
        for name, v, n in (("stress", stress, N_STRESS), ("word_position", word_position, len(WORD_POSITIONS))):
            v = torch.as_tensor(v, device=phone_ids.device).long()
            if v.shape != phone_ids.shape:
                raise ValueError(f"{name} {tuple(v.shape)} must match phone_ids {tuple(phone_ids.shape)}")
            if (v < 0).any() or (v >= n).any():
                raise ValueError(f"{name} values must lie in 0..{n - 1}")
            out.append(v)
        return out

    def _check_inputs(self, phone_ids, speaker, phone_lengths):
        if not torch.is_tensor(phone_ids) or phone_ids.ndim != 2 or phone_ids.dtype.is_floating_point:
            raise ValueError(f"phone_ids must be a (B, N) integer tensor, got "
                             f"{getattr(phone_ids, 'shape', type(phone_ids))}")
        if phone_ids.shape[1] == 0:
            raise ValueError("empty phone sequence: give at least one phone")
        if (phone_ids < 0).any() or (phone_ids >= self.config.n_phones).any():
            raise ValueError(f"phone ids must lie in 0..{self.config.n_phones - 1} (ttslab.text.phoneset.PHONE_TO_ID)")
        speaker = torch.as_tensor(speaker, dtype=torch.long, device=phone_ids.device).reshape(-1)
        if len(speaker) != len(phone_ids):
            raise ValueError(f"{len(speaker)} speakers for a batch of {len(phone_ids)}")
        if (speaker < 0).any() or (speaker >= self.config.n_speakers).any():
            raise ValueError(f"speaker indices must lie in 0..{self.config.n_speakers - 1}")
        if phone_lengths is None:
            phone_lengths = (phone_ids != 0).sum(1)
        phone_lengths = torch.as_tensor(phone_lengths, device=phone_ids.device).long()
        if (phone_lengths < 1).any() or (phone_lengths > phone_ids.shape[1]).any():
            raise ValueError("phone_lengths must lie in 1..N (every utterance needs at least one phone)")
        return phone_ids, speaker, phone_lengths

    # --- inference ----------------------------------------------------------------------------
    @torch.no_grad()
    def infer(self, phone_ids, speaker: str | int, rate: float = 1.0, pitch_shift_semitones: float = 0.0,
              energy_scale: float = 1.0, durations=None, postnet: bool = True, *, stress=None,
              word_position=None) -> dict:
        """Synthesize one utterance: ``phone_ids`` (N,) (list, array or tensor), or the dict of
        :func:`text_to_inputs` (ids with their stress and word positions) -> dict with ``mel``
        (T, 80) log-mel (postnet output when there is one), ``durations`` (N,) frames, ``pitch`` (N,)
        phone F0 in Hz (``exp`` of the log-F0, shift included), ``energy`` (N,) phone log energy.

        ``durations`` (N,) forces the timing (oracle durations); ``rate`` 2.0 speaks twice as fast.
        """
        if isinstance(phone_ids, dict):
            stress = phone_ids.get("stress") if stress is None else stress
            word_position = phone_ids.get("word_position") if word_position is None else word_position
            phone_ids = phone_ids["phone_ids"]
        ids = torch.as_tensor(np.asarray(phone_ids), dtype=torch.long)
        if ids.ndim != 1 or len(ids) == 0:
            raise ValueError(f"phone_ids must be a non-empty 1-D sequence, got shape {tuple(ids.shape)}")
        if (ids == 0).any():
            raise ValueError("phone_ids contain 0 (padding) inside the utterance")
        spk = torch.tensor([self.speaker_index(speaker)])
        dur = None
        if durations is not None:
            dur = torch.as_tensor(np.asarray(durations), dtype=torch.long)
            if dur.shape != ids.shape:
                raise ValueError(f"durations {tuple(dur.shape)} must match phone_ids {tuple(ids.shape)}")
            dur = dur[None]
        was_training = self.training
        self.eval()
        try:
            device = self.mel_mean.device
            ctx = {k: None if v is None else torch.as_tensor(np.asarray(v)).long()[None].to(device)
                   for k, v in (("stress", stress), ("word_position", word_position))}
            out = self(ids[None].to(device), spk.to(device), durations=None if dur is None else dur.to(device),
                       rate=rate, pitch_shift_semitones=pitch_shift_semitones, energy_scale=energy_scale, **ctx)
        finally:
            self.train(was_training)
        log_f0, log_e = self.denormalize_variances(out["pitch_used"], out["energy_used"], spk.to(device))
        mel = out["mel_postnet" if postnet else "mel"][0]
        return {"mel": mel.cpu(), "durations": out["durations"][0].cpu(), "pitch": torch.exp(log_f0[0]).cpu(),
                "energy": log_e[0].cpu()}

    def synthesize(self, text: str, speaker: str, vocoder: Callable | None = None, **controls) -> tuple[np.ndarray, int]:
        """Text -> ``(audio, sample_rate)``; see :func:`ttslab.models.fastspeech.synthesis.synthesize`."""
        from ttslab.models.fastspeech.synthesis import synthesize

        return synthesize(self, text, speaker, vocoder=vocoder, **controls)

    # --- checkpoints --------------------------------------------------------------------------
    def save(self, path: str | Path, *, half: bool = True, extra: dict | None = None, **state) -> str:
        """Write a checksummed checkpoint (fp16 weights by default); return its SHA-256. ``extra`` keeps
        the speaker list and per-speaker statistics as plain values, plus anything given."""
        from ttslab.checkpoint import save_checkpoint

        info = {"model": "fastspeech", "speakers": list(self.speakers), "speaker_stats": self.speaker_stats(),
                **(extra or {})}
        return save_checkpoint(path, self, model_config=self.config.to_dict(), extra=info, half=half, **state)

    @classmethod
    def from_checkpoint(cls, path: str | Path, sha256: str | None = None, *, verify: bool = True) -> "FastSpeech":
        """Load a checkpoint written by :meth:`save` (checksum verified, ``weights_only`` unpickling);
        ``verify=False`` loads a file with no sidecar and no ``sha256`` (see :func:`ttslab.checkpoint.verify_file`)."""
        from ttslab.checkpoint import CheckpointError, load_checkpoint

        payload = load_checkpoint(path, sha256=sha256, verify=verify)
        try:
            model = cls(FastSpeechConfig.from_dict(payload["model_config"]))
            model.load_state_dict(payload["model"])
        except (TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path} does not hold a FastSpeech checkpoint: {exc}") from exc
        return model.eval()


def save_fastspeech(path: str | Path, model: FastSpeech, **kwargs) -> str:
    """:meth:`FastSpeech.save` as a function."""
    return model.save(path, **kwargs)


def load_fastspeech(path: str | Path, sha256: str | None = None, *, verify: bool = True) -> FastSpeech:
    """:meth:`FastSpeech.from_checkpoint` as a function."""
    return FastSpeech.from_checkpoint(path, sha256=sha256, verify=verify)
