"""What the server computes, without Ray: request validation, batched synthesis, the wire formats.

Everything here is plain Python and PyTorch, so it is tested directly and reused by the edge client
(:mod:`ttslab.serving.client`), which runs the same acoustic model or vocoder on its own side.

A request is ``{"text", "speaker", "rate", "pitch", "model"}``; :func:`parse_request` turns the bytes
of an HTTP body into a checked :class:`SynthesisRequest` or raises :class:`RequestError` with the HTTP
status and a message that names the problem and the fix (415 wrong content type, 413 body too large,
400 malformed JSON or wrong field types, 422 values out of range, unknown speaker or model).

Batching (:meth:`SpeechEngine.acoustic_many`): requests with the same controls share one padded
forward pass. FastSpeech masks every padded position, so an utterance's mel from a batch equals its
mel alone (up to float rounding; ``tests/test_serving.py`` checks it)::

    phone_ids (B, N_max), 0-padded   ->  mel (B, T_max, 80)  ->  mel[b, :frame_lengths[b]]

Timings: phone ``n`` lasts ``d_n`` frames of ``HOP`` samples, so it starts at
``HOP * (d_1 + ... + d_{n-1}) / SAMPLE_RATE`` seconds:

>>> phone_timings(["sil", "hh", "ay"], [2, 3, 1], hop=256, sample_rate=22050)[1]
('hh', 0.02322, 0.05805)
"""

from __future__ import annotations

import io
import json
import math
import wave
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ttslab.dsp.spectral import HOP, N_MELS, SAMPLE_RATE

#: Longest text accepted, in characters (a long paragraph: split longer texts into sentences).
MAX_TEXT_CHARS = 400
#: Largest request body accepted, in bytes.
MAX_BODY_BYTES = 16_384
#: Speaking-rate multiplier range (1.0 = the model's own pace).
RATE_RANGE = (0.5, 2.0)
#: Pitch shift range in semitones (one octave each way).
PITCH_RANGE = (-12.0, 12.0)
REQUEST_FIELDS = ("text", "speaker", "rate", "pitch", "model")


class RequestError(ValueError):
    """A request the server refuses: ``status`` is the HTTP status (4xx), ``str(error)`` the message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SynthesisRequest:
    """A checked request. ``model`` is a deployment name (``"teacher"``, ``"small"``, ...)."""

    text: str
    speaker: str
    rate: float = 1.0
    pitch: float = 0.0
    model: str = "teacher"


def parse_request(body: bytes, content_type: str | None, *, speakers: Sequence[str], models: Sequence[str],
                  default_model: str) -> SynthesisRequest:
    """Bytes of an HTTP body -> :class:`SynthesisRequest`, or :class:`RequestError` (4xx) naming the fix."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media != "application/json":
        raise RequestError(415, f"Content-Type must be application/json, got {content_type or 'none'!r}; send "
                                'a JSON object like {"text": "Hello.", "speaker": "en_us_m"}')
    if len(body) > MAX_BODY_BYTES:
        raise RequestError(413, f"request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"request body is not UTF-8 text: {exc}") from None
    except json.JSONDecodeError as exc:
        raise RequestError(400, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    return check_fields(payload, speakers=speakers, models=models, default_model=default_model)


def check_fields(payload, *, speakers: Sequence[str], models: Sequence[str], default_model: str) -> SynthesisRequest:
    """A decoded request (dict; HTTP JSON or gRPC message fields) -> :class:`SynthesisRequest`, checked."""
    if not isinstance(payload, dict):
        raise RequestError(400, f"the JSON body must be an object with a 'text' field, got {type(payload).__name__}")
    unknown = sorted(set(payload) - set(REQUEST_FIELDS))
    if unknown:
        raise RequestError(400, f"unknown field(s) {unknown}; the fields are {list(REQUEST_FIELDS)}")
    text = payload.get("text")
    if not isinstance(text, str):
        raise RequestError(400, f"'text' must be a string, got {type(text).__name__}")
    if not text.strip():
        raise RequestError(422, "'text' is empty; give at least one word")
    if len(text) > MAX_TEXT_CHARS:
        raise RequestError(422, f"'text' has {len(text)} characters; the limit is {MAX_TEXT_CHARS}: "
                                "split it into sentences and send one request each")
    speaker = payload.get("speaker") or speakers[0]
    if not isinstance(speaker, str) or speaker not in speakers:
        raise RequestError(422, f"unknown speaker {speaker!r}; this server knows {list(speakers)}")
    model = payload.get("model") or default_model
    if not isinstance(model, str) or model not in models:
        raise RequestError(422, f"unknown model {model!r}; this server serves {list(models)}")
    controls = {}
    for name, default, (low, high) in (("rate", 1.0, RATE_RANGE), ("pitch", 0.0, PITCH_RANGE)):
        value = payload.get(name, default)
        if value is None:
            value = default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RequestError(400, f"'{name}' must be a number, got {type(value).__name__}")
        if not (math.isfinite(value) and low <= value <= high):
            raise RequestError(422, f"'{name}' = {value} is out of range; use {low} .. {high}")
        controls[name] = float(value)
    return SynthesisRequest(text=text, speaker=speaker, model=model, **controls)


# ----------------------------------------------------------------------------- wire formats


def wav_bytes(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """float audio in [-1, 1] -> a 16-bit PCM mono WAV file's bytes."""
    pcm = (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767.0).round().astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return buffer.getvalue()


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """The bytes of a 16-bit mono WAV -> ``(audio float32 in [-1, 1], sample_rate)``."""
    with wave.open(io.BytesIO(data), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"expected 16-bit mono WAV, got {8 * w.getsampwidth()}-bit, {w.getnchannels()} channel(s)")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return pcm.astype(np.float32) / 32767.0, w.getframerate()


def encode_mel(mel: np.ndarray) -> bytes:
    """A log-mel (frames, 80) -> float16 bytes, frame after frame (half the bytes of float32; the
    rounding, ~1e-3 on values around -5, is far below what the vocoder can hear)."""
    mel = np.asarray(mel, dtype=np.float32)
    if mel.ndim != 2 or mel.shape[1] != N_MELS:
        raise ValueError(f"mel must be (frames, {N_MELS}), got {mel.shape}")
    return mel.astype("<f2").tobytes()


def decode_mel(data: bytes) -> np.ndarray:
    """Inverse of :func:`encode_mel`: (frames, 80) float32; a clear error for a body of the wrong size."""
    row = 2 * N_MELS
    if len(data) == 0 or len(data) % row:
        raise RequestError(400, f"a mel body is frames x {N_MELS} float16 values ({row} bytes a frame); "
                                f"got {len(data)} bytes")
    mel = np.frombuffer(data, dtype="<f2").astype(np.float32).reshape(-1, N_MELS)
    if not np.isfinite(mel).all():
        raise RequestError(422, "the mel holds NaN or infinite values")
    return mel


def phone_timings(phones: Sequence[str], durations: Sequence[int], *, hop: int = HOP,
                  sample_rate: int = SAMPLE_RATE) -> list[tuple[str, float, float]]:
    """``(phone, start_s, end_s)`` for each phone of ``durations`` frames (rounded to 10 microseconds)."""
    ends = np.cumsum(np.asarray(durations, dtype=np.int64)) * hop / sample_rate
    starts = np.concatenate([[0.0], ends[:-1]])
    return [(p, round(float(s), 5), round(float(e), 5)) for p, s, e in zip(phones, starts, ends)]


# ----------------------------------------------------------------------------- synthesis


@dataclass
class AcousticOutput:
    """The acoustic model's answer for one request: log-mel (frames, 80), phones and their frames."""

    mel: np.ndarray
    phones: list[str]
    durations: np.ndarray

    def timings(self) -> list[tuple[str, float, float]]:
        return phone_timings(self.phones, self.durations)


class SpeechEngine:
    """A FastSpeech acoustic model and a vocoder behind one batched call.

    ``acoustic`` is a :class:`ttslab.models.fastspeech.FastSpeech`; ``vocoder`` maps a log-mel
    (80, frames) to audio (a :class:`ttslab.vocoders.NeuralVocoder`'s ``vocode``; ``None`` = Griffin-Lim).
    """

    def __init__(self, acoustic, vocoder=None):
        self.acoustic = acoustic.eval() if acoustic is not None else None
        self.vocoder = vocoder

    @property
    def speakers(self) -> tuple[str, ...]:
        return tuple(self.acoustic.speakers)

    def front_end(self, request: SynthesisRequest) -> dict:
        """The model inputs of the request's text, read in its speaker's accent (eSpeak NG)."""
        from ttslab.models.fastspeech import text_to_inputs
        from ttslab.text.frontend import TextError

        try:
            return text_to_inputs(request.text, request.speaker)
        except TextError as exc:
            raise RequestError(422, f"the text cannot be read: {exc}") from None

    @torch.no_grad()
    def acoustic_many(self, requests: Sequence[SynthesisRequest], inputs: Sequence[dict] | None = None
                      ) -> list[AcousticOutput]:
        """One padded forward pass per group of requests with equal (rate, pitch); outputs in order.
        ``inputs`` are the requests' :meth:`front_end` results when already computed."""
        inputs = [self.front_end(r) for r in requests] if inputs is None else list(inputs)
        outputs: list[AcousticOutput | None] = [None] * len(requests)
        groups: dict[tuple[float, float], list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.rate, r.pitch), []).append(i)
        model = self.acoustic
        device = model.mel_mean.device
        for (rate, pitch), members in groups.items():
            n_max = max(len(inputs[i]["phone_ids"]) for i in members)
            batch = {k: torch.zeros(len(members), n_max, dtype=torch.long) for k in ("phone_ids", "stress",
                                                                                       "word_position")}
            for row, i in enumerate(members):
                for k in batch:
                    values = torch.as_tensor(inputs[i][k], dtype=torch.long)
                    batch[k][row, :len(values)] = values
            speakers = torch.tensor([model.speaker_index(requests[i].speaker) for i in members])
            lengths = torch.tensor([len(inputs[i]["phone_ids"]) for i in members])
            out = model(batch["phone_ids"].to(device), speakers.to(device), lengths.to(device),
                        stress=batch["stress"].to(device), word_position=batch["word_position"].to(device),
                        rate=rate, pitch_shift_semitones=pitch)
            for row, i in enumerate(members):
                frames, n = int(out["frame_lengths"][row]), int(lengths[row])
                outputs[i] = AcousticOutput(mel=out["mel_postnet"][row, :frames].float().cpu().numpy(),
                                            phones=list(inputs[i]["phones"]),
                                            durations=out["durations"][row, :n].cpu().numpy())
        return outputs

    def vocode(self, mel: np.ndarray) -> np.ndarray:
        """Audio (float32) of one log-mel (frames, 80)."""
        if self.vocoder is None:
            from ttslab.vocoders import griffin_lim

            return np.asarray(griffin_lim(np.asarray(mel).T), dtype=np.float32)
        return np.asarray(self.vocoder(np.asarray(mel).T), dtype=np.float32)

    def synthesize_many(self, requests: Sequence[SynthesisRequest]) -> list[tuple[np.ndarray, AcousticOutput]]:
        """``(audio, acoustic output)`` per request: one batched acoustic pass, then the vocoder per utterance
        (its convolutions see no mask, so padded mels would change the last frames; vocoding is cheap)."""
        return [(self.vocode(a.mel), a) for a in self.acoustic_many(requests)]
