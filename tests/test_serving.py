"""ttslab.serving: request checks, batching equivalence and wire formats (no Ray), then one real server
(Ray Serve on 127.0.0.1, started once for the module): bad input gets a 4xx and the server stays up,
concurrent requests are all answered, gRPC, the edge/cloud placements, graceful shutdown by PID."""

from __future__ import annotations

import io
import json
import os
import threading

import numpy as np
import pytest
import torch
from scipy.io import wavfile

from ttslab.dsp.spectral import HOP, N_MELS, SAMPLE_RATE
from ttslab.serving.engine import (MAX_TEXT_CHARS, RequestError, SpeechEngine, SynthesisRequest, decode_mel,
                                   encode_mel, parse_request, phone_timings, read_wav, wav_bytes)

SPEAKERS = ("en_us_m", "en_us_f", "en_gb_m")
MODELS = ("small", "teacher")


def parse(payload, content_type="application/json"):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return parse_request(body, content_type, speakers=SPEAKERS, models=MODELS, default_model="teacher")


# ----------------------------------------------------------------------------- request checks


BAD_REQUESTS = [  # (body, content type, status, words the message must contain)
    (b'{"text": "Hello"', "application/json", 400, "malformed JSON"),
    (b"\xff\xfe", "application/json", 400, "UTF-8"),
    ({"text": "Hello."}, "text/plain", 415, "application/json"),
    ({"text": "Hello."}, None, 415, "Content-Type"),
    ({"text": "   "}, "application/json", 422, "empty"),
    ({"text": "a" * (MAX_TEXT_CHARS + 1)}, "application/json", 422, "limit"),
    ({"text": "Hello.", "speaker": "nobody"}, "application/json", 422, "unknown speaker"),
    ({"text": "Hello.", "rate": 3.0}, "application/json", 422, "'rate'"),
    ({"text": "Hello.", "rate": 0.1}, "application/json", 422, "'rate'"),
    ({"text": "Hello.", "pitch": -13}, "application/json", 422, "'pitch'"),
    ({"text": "Hello.", "pitch": "high"}, "application/json", 400, "number"),
    ({"text": "Hello.", "model": "huge"}, "application/json", 422, "unknown model"),
    ({"text": "Hello.", "volume": 2}, "application/json", 400, "unknown field"),
    ([1, 2], "application/json", 400, "object"),
    ({"text": 5}, "application/json", 400, "string"),
]


@pytest.mark.parametrize("body,content_type,status,words", BAD_REQUESTS)
def test_bad_requests_are_refused_with_a_status_and_a_message(body, content_type, status, words):
    with pytest.raises(RequestError, match=words) as info:
        parse(body, content_type)
    assert info.value.status == status


def test_a_good_request_gets_defaults_and_keeps_its_values():
    r = parse({"text": "Hello.", "speaker": "en_gb_m", "rate": 1.5, "pitch": -2, "model": "small"},
              "application/json; charset=utf-8")
    assert r == SynthesisRequest("Hello.", "en_gb_m", 1.5, -2.0, "small")
    assert parse({"text": "Hi."}) == SynthesisRequest("Hi.", "en_us_m", 1.0, 0.0, "teacher")


# ----------------------------------------------------------------------------- wire formats


def test_wav_bytes_are_a_16_bit_wav_that_scipy_reads():
    audio = np.sin(np.linspace(0, 100, 1000)).astype(np.float32) * 0.5
    rate, pcm = wavfile.read(io.BytesIO(wav_bytes(audio, 16000)))
    assert rate == 16000 and pcm.dtype == np.int16
    np.testing.assert_array_equal(pcm, np.round(audio * 32767).astype(np.int16))
    back, rate2 = read_wav(wav_bytes(audio, 16000))
    assert rate2 == 16000 and np.abs(back - audio).max() < 1 / 32767


def test_mel_goes_over_the_wire_as_float16_and_bad_sizes_are_refused():
    mel = np.random.default_rng(0).normal(-5, 2, (7, N_MELS)).astype(np.float32)
    data = encode_mel(mel)
    assert len(data) == 7 * N_MELS * 2
    np.testing.assert_allclose(decode_mel(data), mel, atol=np.abs(mel).max() * 2 ** -10)
    with pytest.raises(RequestError, match="160 bytes a frame"):
        decode_mel(data[:-1])
    with pytest.raises(RequestError, match="NaN"):
        decode_mel(np.full((1, N_MELS), np.nan, dtype="<f2").tobytes())


def test_phone_timings_by_hand():
    got = phone_timings(["a", "b", "c"], [1, 2, 3], hop=100, sample_rate=1000)
    assert got == [("a", 0.0, 0.1), ("b", 0.1, 0.3), ("c", 0.3, 0.6)]


# ----------------------------------------------------------------------------- batching (no Ray)


@pytest.fixture(scope="module")
def tiny_engine():
    from ttslab.models.fastspeech import FastSpeech, FastSpeechConfig

    torch.manual_seed(0)
    return SpeechEngine(FastSpeech(FastSpeechConfig.tiny(speakers=SPEAKERS)).eval(), vocoder=None)


def test_a_batch_gives_each_utterance_what_it_gets_alone(tiny_engine):
    requests = [SynthesisRequest("Hello there.", "en_us_m"),
                SynthesisRequest("The quick brown fox jumps over the lazy dog.", "en_us_f"),
                SynthesisRequest("Yes.", "en_gb_m"),
                SynthesisRequest("Hello there.", "en_us_m", rate=2.0),     # another group: other controls
                SynthesisRequest("Hello there.", "en_us_m", pitch=5.0)]
    batch = tiny_engine.acoustic_many(requests)
    alone = [tiny_engine.acoustic_many([r])[0] for r in requests]
    for b, a in zip(batch, alone):
        assert b.mel.shape == a.mel.shape and b.phones == a.phones
        np.testing.assert_array_equal(b.durations, a.durations)
        np.testing.assert_allclose(b.mel, a.mel, atol=1e-4)
    # the controls reached the model: twice the rate, about half the frames
    assert abs(len(batch[3].mel) - len(batch[0].mel) / 2) <= len(batch[0].phones)
    assert not np.allclose(batch[4].mel, batch[0].mel)


# ----------------------------------------------------------------------------- a real server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Ray Serve with the registered teacher and a tiny untrained FastSpeech as the second model."""
    from ttslab.models.fastspeech import FastSpeech, FastSpeechConfig
    from ttslab.serving import TTSServer
    from ttslab.serving.app import ModelSource

    folder = tmp_path_factory.mktemp("serving")
    torch.manual_seed(0)
    small = FastSpeech(FastSpeechConfig.tiny())
    small.save(folder / "small.pt", half=False)
    models = {"teacher": ModelSource(pretrained="fastspeech_teacher"), "small": ModelSource(path=str(folder / "small.pt"))}
    srv = TTSServer(models, log_dir=folder / "logs").start()
    yield srv
    srv.stop()


def call(server, path, payload=None, content_type="application/json", method="POST"):
    from ttslab.serving.client import http_call

    body = payload if isinstance(payload, (bytes, type(None))) else json.dumps(payload).encode()
    return http_call(server.url + path, method, body, content_type if body is not None else None)


@pytest.mark.slow
def test_health_lists_models_and_speakers(server):
    reply = call(server, "/health", method="GET")
    assert reply.status == 200
    info = reply.json()
    assert info["status"] == "ok" and info["models"] == ["small", "teacher"] and "en_us_m" in info["speakers"]
    assert call(server, "/nowhere", method="GET").status == 404
    assert call(server, "/synthesize", method="GET").status == 405


@pytest.mark.slow
@pytest.mark.parametrize("body,content_type,status,words", BAD_REQUESTS)
def test_bad_input_gets_a_4xx_with_a_message_and_the_server_stays_up(server, body, content_type, status, words):
    reply = call(server, "/synthesize", body if isinstance(body, bytes) else json.dumps(body).encode(),
                 content_type)
    assert reply.status == status and words in reply.json()["error"]
    assert call(server, "/health", method="GET").status == 200


@pytest.mark.slow
def test_synthesis_returns_a_wav_with_its_phone_timings(server):
    reply = call(server, "/synthesize", {"text": "Hello from the server.", "speaker": "en_us_f"})
    assert reply.status == 200 and reply.headers["content-type"] == "audio/wav"
    audio, sample_rate = read_wav(reply.body)
    phones = reply.phones
    assert sample_rate == SAMPLE_RATE and reply.headers["x-model"] == "teacher"
    assert [p for p, _, _ in phones][:2] == ["sil", "hh"]
    assert abs(len(audio) / sample_rate - phones[-1][2]) <= HOP / SAMPLE_RATE  # the audio ends with the last phone
    as_json = call(server, "/synthesize?format=json", {"text": "Hello from the server.", "speaker": "en_us_f"}).json()
    import base64

    assert base64.b64decode(as_json["wav_base64"]) == reply.body and as_json["phones"] == phones
    small = call(server, "/synthesize", {"text": "Hello.", "model": "small"})
    assert small.status == 200 and small.headers["x-model"] == "small"


@pytest.mark.slow
def test_concurrent_requests_are_all_answered(server):
    from ttslab.serving.client import load_test

    result = load_test(server.url, ["Hello.", "How are you today?", "Fine, thanks."], concurrency=12, requests=24,
                       model="small", time_limit_s=120)
    assert result.sent == 24 and result.unanswered == 0
    assert result.ok == 24, result.summary()
    info = call(server, "/health", method="GET").json()
    assert info["in_flight"] == 0
    stats = call(server, "/stats", method="GET").json()["small"]
    assert stats["batching"] and sum(stats["batch_sizes"]) >= 24  # every request went through a batch
    print("batch sizes seen:", stats["batch_sizes"])


@pytest.mark.slow
def test_grpc_synthesize_and_a_refused_request(server):
    import grpc

    from ttslab.serving.client import GrpcClient

    with GrpcClient(server.grpc_address) as client:
        assert client.health() == {"status": "ok", "models": ["small", "teacher"]}
        got = client.synthesize("Hello over gRPC.", "en_gb_m")
        assert got.sample_rate == SAMPLE_RATE and got.model == "teacher" and got.phones[0][0] == "sil"
        assert abs(len(got.audio) / got.sample_rate - got.phones[-1][2]) <= HOP / SAMPLE_RATE
        with pytest.raises(grpc.RpcError) as info:
            client.synthesize("Hello.", "nobody")
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "unknown speaker" in info.value.details()


@pytest.mark.slow
def test_edge_and_cloud_placements_make_the_same_audio_with_other_bytes_on_the_wire(server):
    from ttslab import pretrained
    from ttslab.serving.client import PLACEMENTS, run_placement

    edge = SpeechEngine(pretrained.load("fastspeech_teacher"), pretrained.load("vocoder").vocode)
    text = "The edge and the cloud share the work."
    runs = {p: run_placement(p, server.url, text, "en_us_m", model="teacher", edge=edge) for p in PLACEMENTS}
    reference = runs["server"]["audio"]
    for placement, run in runs.items():
        assert len(run["audio"]) == len(reference), placement
        # float16 mels and 16-bit audio on the way: close, not identical
        assert np.abs(run["audio"] - reference).max() < 0.05, placement
    # a mel frame (80 float16 = 160 bytes) is smaller than its 256 samples of 16-bit audio (512 bytes)
    assert runs["edge_vocoder"]["bytes_down"] < runs["server"]["bytes_down"] / 2.5
    assert runs["edge_acoustic"]["bytes_up"] > runs["server"]["bytes_up"]


def _has_mark(proc, run_id: str) -> bool:
    import psutil

    try:
        return proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get("TTSLAB_SERVING_RUN") == run_id
    except psutil.Error:
        return False


@pytest.mark.slow
def test_graceful_shutdown_finishes_requests_in_flight_and_leaves_no_process(server):
    """Last test of the module: it stops the shared server."""
    import time

    import psutil

    from ttslab.serving.client import synthesize
    from ttslab.serving.launch import alive

    replies, errors = [], []

    def one():
        try:
            replies.append(synthesize(server.url, "A sentence that is still being spoken.", model="teacher",
                                      timeout_s=120))
        except Exception as exc:  # noqa: BLE001 -- collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while call(server, "/health", method="GET").json().get("in_flight", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    pids, ray_tmp = server.pids, server.ray_temp_dir
    marked_before = sum(1 for p in psutil.process_iter() if _has_mark(p, server.run_id))
    assert len(pids) >= 3 and ray_tmp
    server.stop()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(replies) == 6 and {r.status for r in replies} <= {200, 503}
    assert sum(r.status == 200 for r in replies) >= 1   # at least the one seen in flight finished with audio
    assert not alive(pids) and alive([os.getpid()]) == [os.getpid()]
    # independent of how the launcher finds its processes: none still carries this server's mark in its
    # environment (every process it started inherits TTSLAB_SERVING_RUN), and Ray's folder is gone
    assert marked_before >= 3  # the mark was there to be found (Ray runs a few processes with an env of their own)
    assert not [p.pid for p in psutil.process_iter() if _has_mark(p, server.run_id)]
    assert not os.path.exists(ray_tmp)
    assert server.pids == []
