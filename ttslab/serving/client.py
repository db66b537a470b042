"""Clients of the TTS server: HTTP, typed gRPC, the edge/cloud placements and a bounded load test.

Edge/cloud placements of the two halves of synthesis (text -> mel -> audio):

==================  =============================  ==============================  =====================
placement           on the edge (this process)     on the server                   on the wire
==================  =============================  ==============================  =====================
``server``          nothing                        front-end, acoustic, vocoder    JSON up, WAV down
``edge_vocoder``    the vocoder                    front-end, acoustic model       JSON up, mel down
``edge_acoustic``   front-end, acoustic model      the vocoder                     mel up, WAV down
==================  =============================  ==============================  =====================

A mel frame is 80 float16 values (160 bytes) per 256 samples; the same 256 samples of 16-bit WAV are
512 bytes: the mel is ~3.2x smaller than the audio it makes (plus headers).

The load test (:func:`load_test`) runs ``concurrency`` client threads that together send ``requests``
requests (at most ``time_limit_s`` seconds), each with its own timeout, and counts every outcome: audio,
a 4xx/5xx with its message, or a client-side error (timeout, connection) -- nothing is dropped silently.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np

from ttslab.serving.engine import decode_mel, encode_mel, read_wav


@dataclass
class Reply:
    """One HTTP exchange: status, body, headers, bytes sent and received (body + headers), seconds."""

    status: int
    body: bytes
    headers: dict
    sent_bytes: int
    received_bytes: int
    seconds: float

    def json(self):
        return json.loads(self.body)

    @property
    def phones(self) -> list:
        return json.loads(self.headers.get("x-phones", "[]"))

    def audio(self) -> tuple[np.ndarray, int]:
        if self.status != 200:
            raise RuntimeError(f"HTTP {self.status}: {self.body[:300]!r}")
        return read_wav(self.body)


def http_call(url: str, method: str = "GET", body: bytes | dict | None = None, content_type: str | None = None,
              timeout_s: float = 60.0) -> Reply:
    """One request with :mod:`http.client` (a new connection each time; counts the bytes both ways)."""
    parts = urlsplit(url)
    if isinstance(body, dict):
        body, content_type = json.dumps(body).encode("utf-8"), content_type or "application/json"
    headers = {"Content-Type": content_type} if content_type else {}
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        header_items = response.getheaders()
    finally:
        conn.close()
    seconds = time.perf_counter() - t0
    request_line = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    received_headers = sum(len(k) + len(v) + 4 for k, v in header_items)
    return Reply(response.status, data, {k.lower(): v for k, v in header_items},
                 len(request_line) + len(body or b""), received_headers + len(data), seconds)


def synthesize(url: str, text: str, speaker: str = "en_us_m", *, rate: float = 1.0, pitch: float = 0.0,
               model: str | None = None, timeout_s: float = 60.0) -> Reply:
    """``POST /synthesize`` -> :class:`Reply` (``reply.audio()``, ``reply.phones``)."""
    payload = {"text": text, "speaker": speaker, "rate": rate, "pitch": pitch}
    if model:
        payload["model"] = model
    return http_call(url.rstrip("/") + "/synthesize", "POST", payload, timeout_s=timeout_s)


# ----------------------------------------------------------------------------- gRPC


@dataclass
class GrpcSynthesis:
    """A gRPC reply: audio, sample rate, ``(phone, start_s, end_s)`` and the model that spoke."""

    audio: np.ndarray
    sample_rate: int
    phones: list[tuple[str, float, float]]
    model: str
    wire_bytes: int


class GrpcClient:
    """A small typed client of the ``TextToSpeech`` service (``tts.proto``) through Ray Serve's gRPC proxy.

    ``with GrpcClient("127.0.0.1:PORT") as c: c.synthesize("Hello.", "en_us_m")``; errors raise
    :class:`grpc.RpcError` (``INVALID_ARGUMENT`` with the message for bad input).
    """

    def __init__(self, address: str, timeout_s: float = 60.0):
        import grpc

        from ttslab.serving import tts_pb2_grpc

        self.channel = grpc.insecure_channel(address)
        self.stub = tts_pb2_grpc.TextToSpeechStub(self.channel)
        self.timeout_s = timeout_s
        self.metadata = (("application", "tts"),)  # the Serve application that answers

    def synthesize(self, text: str, speaker: str = "en_us_m", *, rate: float = 1.0, pitch: float = 0.0,
                   model: str = "") -> GrpcSynthesis:
        from ttslab.serving import tts_pb2

        request = tts_pb2.SynthesizeRequest(text=text, speaker=speaker, rate=rate, pitch=pitch, model=model)
        reply = self.stub.Synthesize(request, timeout=self.timeout_s, metadata=self.metadata)
        audio, sample_rate = read_wav(reply.wav)
        return GrpcSynthesis(audio, sample_rate, [(p.phone, p.start, p.end) for p in reply.phones], reply.model,
                             request.ByteSize() + reply.ByteSize())

    def health(self) -> dict:
        from ttslab.serving import tts_pb2

        reply = self.stub.Health(tts_pb2.HealthRequest(), timeout=self.timeout_s, metadata=self.metadata)
        return {"status": reply.status, "models": list(reply.models)}

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "GrpcClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ----------------------------------------------------------------------------- edge / cloud


PLACEMENTS = ("server", "edge_vocoder", "edge_acoustic")


def run_placement(placement: str, url: str, text: str, speaker: str, *, model: str, edge=None) -> dict:
    """Synthesize ``text`` with the work split as ``placement`` says; ``edge`` is a
    :class:`~ttslab.serving.engine.SpeechEngine` on this side (its acoustic model and vocoder are the
    server's own, so every placement makes the same mel). Returns audio, bytes up/down, seconds in total,
    on the edge and on the wire+server."""
    t0 = time.perf_counter()
    edge_s = 0.0
    if placement == "server":
        reply = synthesize(url, text, speaker, model=model)
        audio, _ = reply.audio()
        up, down = reply.sent_bytes, reply.received_bytes
    elif placement == "edge_vocoder":
        reply = http_call(url.rstrip("/") + "/acoustic", "POST", {"text": text, "speaker": speaker, "model": model})
        if reply.status != 200:
            raise RuntimeError(f"HTTP {reply.status}: {reply.body[:300]!r}")
        t1 = time.perf_counter()
        audio = edge.vocode(decode_mel(reply.body))
        edge_s = time.perf_counter() - t1
        up, down = reply.sent_bytes, reply.received_bytes
    elif placement == "edge_acoustic":
        from ttslab.serving.engine import SynthesisRequest

        t1 = time.perf_counter()
        mel = edge.acoustic_many([SynthesisRequest(text, speaker, model=model)])[0].mel
        edge_s = time.perf_counter() - t1
        reply = http_call(url.rstrip("/") + f"/vocode?model={model}", "POST", encode_mel(mel),
                          "application/octet-stream")
        audio, _ = reply.audio()
        up, down = reply.sent_bytes, reply.received_bytes
    else:
        raise ValueError(f"unknown placement {placement!r}; use one of {PLACEMENTS}")
    total = time.perf_counter() - t0
    return {"placement": placement, "audio": audio, "bytes_up": up, "bytes_down": down, "seconds": total,
            "edge_seconds": edge_s, "remote_seconds": total - edge_s}


# ----------------------------------------------------------------------------- load test


@dataclass
class LoadResult:
    """Outcome counts and latencies of one load-test run (see :func:`load_test`)."""

    concurrency: int
    sent: int = 0
    ok: int = 0
    statuses: dict = field(default_factory=dict)      # HTTP status -> count (every status, 200 included)
    client_errors: dict = field(default_factory=dict)  # exception type -> count (timeouts, refused, ...)
    latencies_s: list = field(default_factory=list)    # of the answered requests (any status)
    audio_s: float = 0.0
    wall_s: float = 0.0

    @property
    def unanswered(self) -> int:
        """Requests sent that got neither audio nor a status: must be 0 (``sent == answered + client errors``)."""
        return self.sent - sum(self.statuses.values()) - sum(self.client_errors.values())

    def summary(self) -> dict:
        lat = np.asarray(sorted(self.latencies_s)) * 1000.0
        pct = {f"p{q}_ms": (round(float(np.percentile(lat, q)), 1) if len(lat) else None) for q in (50, 95, 99)}
        return {"concurrency": self.concurrency, "sent": self.sent, "ok": self.ok,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "client_errors": dict(self.client_errors), "unanswered": self.unanswered, **pct,
                "utterances_per_s": round(self.ok / self.wall_s, 3) if self.wall_s else None,
                "audio_s_per_s": round(self.audio_s / self.wall_s, 3) if self.wall_s else None,
                "wall_s": round(self.wall_s, 2)}


def load_test(url: str, texts: list[str], *, concurrency: int, requests: int, model: str | None = None,
              speaker: str = "en_us_m", time_limit_s: float = 120.0, timeout_s: float = 60.0) -> LoadResult:
    """``concurrency`` threads send ``requests`` requests in all (texts in turn), stopping early at
    ``time_limit_s``; every request sent ends in exactly one count (status or client error)."""
    result = LoadResult(concurrency)
    lock = threading.Lock()
    counter = iter(range(requests))
    deadline = time.perf_counter() + time_limit_s

    def worker() -> None:
        while time.perf_counter() < deadline:
            with lock:
                i = next(counter, None)
                if i is None:
                    return
                result.sent += 1
            try:
                reply = synthesize(url, texts[i % len(texts)], speaker, model=model, timeout_s=timeout_s)
            except Exception as exc:  # noqa: BLE001 -- counted: timeouts, refused connections, resets
                with lock:
                    result.client_errors[type(exc).__name__] = result.client_errors.get(type(exc).__name__, 0) + 1
                continue
            seconds = 0.0
            if reply.status == 200:
                audio, sample_rate = read_wav(reply.body)
                seconds = len(audio) / sample_rate
            with lock:
                result.statuses[reply.status] = result.statuses.get(reply.status, 0) + 1
                result.latencies_s.append(reply.seconds)
                if reply.status == 200:
                    result.ok += 1
                    result.audio_s += seconds

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    result.wall_s = time.perf_counter() - t0
    return result
