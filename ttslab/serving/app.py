"""The Ray Serve application: one ingress (HTTP and gRPC) in front of one deployment per acoustic model.

::

    client --HTTP/gRPC--> TTSIngress --handle--> ModelDeployment "teacher" (FastSpeech teacher + vocoder)
                           (validation,   \\--> ModelDeployment "small"   (small FastSpeech + vocoder)
                            routing)

HTTP routes (``route_prefix="/"``):

* ``GET /health`` -> 200 ``{"status": "ok", "models": [...], "speakers": [...]}`` (503 while draining);
* ``GET /stats`` -> per model: parameters, batching on/off and the size of every batch it ran;
* ``POST /synthesize`` JSON ``{"text", "speaker", "rate", "pitch", "model"}`` -> ``audio/wav``, with the phones
  and their times in the ``X-Phones`` header (JSON ``[[phone, start_s, end_s], ...]``); ``?format=json``
  returns ``{"wav_base64", "sample_rate", "phones", "model"}`` instead;
* ``POST /acoustic`` (same JSON) -> the log-mel as float16 bytes (:func:`~ttslab.serving.engine.encode_mel`):
  the *edge vocoder* placement, the client turns it into audio;
* ``POST /vocode?model=NAME`` float16 mel bytes -> WAV: the *edge acoustic model* placement;
* ``POST /admin/drain`` -> refuse new work (503) and return once every request in flight has finished.

Dynamic batching: :meth:`ModelDeployment.synthesize` queues requests through ``@serve.batch`` (at most
``max_batch_size``, waiting at most ``batch_wait_timeout_s`` for a batch to fill); ``batching=False``
runs each request on its own (the load test compares both). The CPU work runs in a worker thread, so
the replica's event loop keeps collecting the next batch while one is computed.

To add a model (the distilled student, once it is registered): give :func:`build_app` another entry,
e.g. ``models={"teacher": ModelSource("fastspeech_teacher"), "student": ModelSource("student_small")}``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ttslab.serving.engine import (MAX_BODY_BYTES, RequestError, SpeechEngine, SynthesisRequest, check_fields,
                                   decode_mel, encode_mel, parse_request, wav_bytes)

#: Batching settings: 16 requests at most, waiting 20 ms at most for a batch to fill.
MAX_BATCH_SIZE = 16
BATCH_WAIT_S = 0.02


@dataclass(frozen=True)
class ModelSource:
    """Where a deployment's acoustic model comes from: a registered checkpoint (``pretrained``, see
    :mod:`ttslab.pretrained`), or a checkpoint file (``path``, with its ``sha256`` or a sidecar)."""

    pretrained: str | None = None
    path: str | None = None
    sha256: str | None = None

    def __post_init__(self):
        if (self.pretrained is None) == (self.path is None):
            raise ValueError("give exactly one of pretrained= (a registered name) or path= (a checkpoint file)")

    def load(self):
        if self.pretrained is not None:
            from ttslab import pretrained

            return pretrained.load(self.pretrained)
        from ttslab.models.fastspeech import FastSpeech

        return FastSpeech.from_checkpoint(self.path, self.sha256)


def load_vocoder(name: str | None):
    """The registered neural vocoder ``name`` (its ``vocode`` method), or ``None`` for Griffin-Lim."""
    if name is None:
        return None
    from ttslab import pretrained

    return pretrained.load(name).vocode


def error_reply(exc: Exception) -> dict:
    """A refused request as a plain dict (exceptions with extra fields do not cross processes well)."""
    status = exc.status if isinstance(exc, RequestError) else 422
    return {"status": status, "error": str(exc)}


@serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0})
class ModelDeployment:
    """One acoustic model and the vocoder; synthesis with or without dynamic batching."""

    def __init__(self, name: str, source: ModelSource, vocoder: str | None = "vocoder", batching: bool = True,
                 threads: int = 1):
        import torch

        torch.set_num_threads(threads)
        self.name, self.batching = name, batching
        self.engine = SpeechEngine(source.load(), load_vocoder(vocoder))
        self.batch_sizes: list[int] = []

    async def info(self) -> dict:
        acoustic = self.engine.acoustic
        return {"name": self.name, "speakers": list(self.engine.speakers), "batching": self.batching,
                "parameters": acoustic.num_parameters(), "batch_sizes": list(self.batch_sizes)}

    def _run(self, jobs: list[tuple[SynthesisRequest, dict]], vocode: bool) -> list[dict]:
        self.batch_sizes.append(len(jobs))
        requests, inputs = [j[0] for j in jobs], [j[1] for j in jobs]
        try:
            outputs = self.engine.acoustic_many(requests, inputs)
        except ValueError as exc:  # e.g. too many frames: report it for every member of the batch
            return [error_reply(exc)] * len(jobs)
        replies = []
        for out in outputs:
            reply = {"phones": out.timings(), "model": self.name}
            if vocode:
                reply["audio"] = self.engine.vocode(out.mel)
            else:
                reply["mel"] = out.mel
            replies.append(reply)
        return replies

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_S)
    async def _batched(self, jobs: list[tuple[SynthesisRequest, dict]]) -> list[dict]:
        return await asyncio.to_thread(self._run, jobs, True)

    async def synthesize(self, request: SynthesisRequest) -> dict:
        """``{"audio", "phones", "model"}`` or ``{"status", "error"}`` for one checked request."""
        try:
            inputs = await asyncio.to_thread(self.engine.front_end, request)
        except RequestError as exc:
            return error_reply(exc)
        if self.batching:
            return await self._batched((request, inputs))
        return (await asyncio.to_thread(self._run, [(request, inputs)], True))[0]

    async def acoustic(self, request: SynthesisRequest) -> dict:
        """``{"mel", "phones", "model"}``: the acoustic model only (the client vocodes)."""
        try:
            inputs = await asyncio.to_thread(self.engine.front_end, request)
        except RequestError as exc:
            return error_reply(exc)
        return (await asyncio.to_thread(self._run, [(request, inputs)], False))[0]

    async def vocode(self, mel) -> dict:
        """``{"audio"}`` of a log-mel (frames, 80): the vocoder only (the client ran the acoustic model)."""
        return {"audio": await asyncio.to_thread(self.engine.vocode, mel)}


@serve.deployment(max_ongoing_requests=256, ray_actor_options={"num_cpus": 0})
class TTSIngress:
    """HTTP and gRPC entry: checks requests, routes them to a model, counts what is in flight."""

    def __init__(self, models: dict, default_model: str, sample_rate: int):
        if default_model not in models:
            raise ValueError(f"default_model {default_model!r} is not one of {sorted(models)}")
        self.models, self.default_model, self.sample_rate = models, default_model, sample_rate
        self.speakers: list[str] | None = None
        self.in_flight, self.draining = 0, False

    async def _speakers(self) -> list[str]:
        if self.speakers is None:  # every model must know a speaker for it to be accepted
            infos = await asyncio.gather(*(h.info.remote() for h in self.models.values()))
            common = set(infos[0]["speakers"]).intersection(*(i["speakers"] for i in infos[1:]))
            self.speakers = [s for s in infos[0]["speakers"] if s in common]
        return self.speakers

    async def _check(self, payload_or_body, content_type=None, from_json=True) -> SynthesisRequest:
        speakers = await self._speakers()
        kwargs = dict(speakers=speakers, models=sorted(self.models), default_model=self.default_model)
        if from_json:
            return parse_request(payload_or_body, content_type, **kwargs)
        return check_fields(payload_or_body, **kwargs)

    # --- HTTP ---------------------------------------------------------------------------------------
    async def __call__(self, http: Request) -> Response:
        path, method = http.url.path.rstrip("/") or "/", http.method
        routes = {"/health": "GET", "/stats": "GET", "/synthesize": "POST", "/acoustic": "POST", "/vocode": "POST",
                  "/admin/drain": "POST"}
        if path not in routes:
            return JSONResponse({"error": f"no route {path!r}; routes: {sorted(routes)}"}, status_code=404)
        if method != routes[path]:
            return JSONResponse({"error": f"{path} takes {routes[path]}, not {method}"}, status_code=405)
        if path == "/health":
            return await self._health()
        if path == "/stats":  # per model: parameters, batching, the size of every batch run so far
            infos = await asyncio.gather(*(h.info.remote() for h in self.models.values()))
            return JSONResponse({info["name"]: info for info in infos})
        if path == "/admin/drain":
            return JSONResponse(await self.drain())
        if self.draining:
            return JSONResponse({"error": "the server is shutting down; retry on another server"}, status_code=503)
        self.in_flight += 1
        try:
            body = await http.body()
            return await self._serve(path, http, body)
        except RequestError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except Exception as exc:  # noqa: BLE001 -- any other failure is the server's, reported as a 500
            return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)
        finally:
            self.in_flight -= 1

    async def _health(self) -> Response:
        if self.draining:
            return JSONResponse({"status": "draining", "in_flight": self.in_flight}, status_code=503)
        return JSONResponse({"status": "ok", "models": sorted(self.models), "default_model": self.default_model,
                             "speakers": await self._speakers(), "in_flight": self.in_flight})

    async def _serve(self, path: str, http: Request, body: bytes) -> Response:
        if path == "/vocode":
            if (http.headers.get("content-type") or "").split(";")[0].strip() != "application/octet-stream":
                raise RequestError(415, "POST /vocode takes the mel as application/octet-stream (float16, frames x 80)")
            if len(body) > 64 * MAX_BODY_BYTES:
                raise RequestError(413, f"mel body of {len(body)} bytes is over the limit {64 * MAX_BODY_BYTES}")
            model = http.query_params.get("model", self.default_model)
            if model not in self.models:
                raise RequestError(422, f"unknown model {model!r}; this server serves {sorted(self.models)}")
            reply = await self.models[model].vocode.remote(decode_mel(body))
            return Response(wav_bytes(reply["audio"], self.sample_rate), media_type="audio/wav")
        request = await self._check(body, http.headers.get("content-type"))
        handle = self.models[request.model]
        reply = await (handle.acoustic if path == "/acoustic" else handle.synthesize).remote(request)
        if "error" in reply:
            raise RequestError(reply["status"], reply["error"])
        headers = {"X-Phones": json.dumps(reply["phones"], separators=(",", ":")), "X-Model": reply["model"]}
        if path == "/acoustic":
            return Response(encode_mel(reply["mel"]), media_type="application/octet-stream", headers=headers)
        wav = wav_bytes(reply["audio"], self.sample_rate)
        if http.query_params.get("format") == "json":
            return JSONResponse({"wav_base64": base64.b64encode(wav).decode("ascii"), "sample_rate": self.sample_rate,
                                 "phones": reply["phones"], "model": reply["model"]})
        return Response(wav, media_type="audio/wav", headers=headers)

    async def drain(self, timeout_s: float = 60.0) -> dict:
        """Refuse new requests and wait until every one in flight has been answered (graceful shutdown)."""
        self.draining = True
        start = time.monotonic()
        while self.in_flight > 0 and time.monotonic() - start < timeout_s:
            await asyncio.sleep(0.02)
        return {"status": "drained" if self.in_flight == 0 else "timeout", "in_flight": self.in_flight,
                "waited_s": round(time.monotonic() - start, 3)}

    # --- gRPC (Ray Serve calls the method named like the RPC) -----------------------------------------
    async def Synthesize(self, message, grpc_context=None):  # noqa: N802 -- the RPC's name in tts.proto
        import grpc

        from ttslab.serving import tts_pb2

        if self.draining:
            return self._grpc_error(grpc_context, grpc.StatusCode.UNAVAILABLE, "the server is shutting down",
                                    tts_pb2.SynthesizeReply())
        self.in_flight += 1
        try:
            payload = {"text": message.text, "speaker": message.speaker, "rate": message.rate or 1.0,
                       "pitch": message.pitch, "model": message.model}
            request = await self._check(payload, from_json=False)
            reply = await self.models[request.model].synthesize.remote(request)
            if "error" in reply:
                raise RequestError(reply["status"], reply["error"])
            return tts_pb2.SynthesizeReply(
                wav=wav_bytes(reply["audio"], self.sample_rate), sample_rate=self.sample_rate, model=reply["model"],
                phones=[tts_pb2.PhoneTiming(phone=p, start=s, end=e) for p, s, e in reply["phones"]])
        except RequestError as exc:
            code = grpc.StatusCode.INVALID_ARGUMENT if exc.status < 500 else grpc.StatusCode.INTERNAL
            return self._grpc_error(grpc_context, code, str(exc), tts_pb2.SynthesizeReply())
        finally:
            self.in_flight -= 1

    async def Health(self, message, grpc_context=None):  # noqa: N802
        from ttslab.serving import tts_pb2

        return tts_pb2.HealthReply(status="draining" if self.draining else "ok", models=sorted(self.models))

    @staticmethod
    def _grpc_error(grpc_context, code, details: str, empty):
        if grpc_context is not None:
            grpc_context.set_code(code)
            grpc_context.set_details(details)
        return empty


def build_app(models: dict[str, ModelSource], *, default_model: str | None = None, vocoder: str | None = "vocoder",
              batching: bool = True, threads: int = 1):
    """The bound application: one :class:`ModelDeployment` per entry of ``models`` behind :class:`TTSIngress`."""
    from ttslab.dsp.spectral import SAMPLE_RATE

    if not models:
        raise ValueError("give at least one model, e.g. {'teacher': ModelSource('fastspeech_teacher')}")
    handles = {name: ModelDeployment.options(name=f"model_{name}").bind(name, source, vocoder, batching, threads)
               for name, source in models.items()}
    return TTSIngress.bind(handles, default_model or next(iter(models)), SAMPLE_RATE)
