"""The driver process the launcher starts: connect to the private Ray cluster, run Serve, wait, drain.

``python -m ttslab.serving.server --address 127.0.0.1:GCS --http-port H --grpc-port G --models JSON``
(:class:`ttslab.serving.launch.TTSServer` writes this command; a person uses ``python -m ttslab.serving``).
On SIGTERM or SIGINT it asks the ingress to drain (new requests get 503 and the ones in flight finish),
then shuts Serve down and disconnects. The HTTP proxy listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

#: Ray Serve calls ``add_TextToSpeechServicer_to_server`` from this import path in its gRPC proxy.
GRPC_SERVICER = "ttslab.serving.tts_pb2_grpc.add_TextToSpeechServicer_to_server"
APP_NAME = "tts"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--address", required=True, help="Ray GCS address, 127.0.0.1:PORT")
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--grpc-port", type=int, required=True)
    p.add_argument("--models", required=True, help='JSON {"name": {"pretrained": ...} or {"path": ..., "sha256": ...}}')
    p.add_argument("--default-model", default=None)
    p.add_argument("--vocoder", default="vocoder", help="registered vocoder name, or griffin-lim")
    p.add_argument("--no-batching", action="store_true", help="run each request alone (no @serve.batch)")
    p.add_argument("--drain-timeout", type=float, default=60.0)
    args = p.parse_args(argv)

    import ray
    from ray import serve

    from ttslab.serving.app import ModelSource, build_app

    models = {name: ModelSource(**spec) for name, spec in json.loads(args.models).items()}
    ray.init(address=args.address, namespace="ttslab_serving", log_to_driver=False, logging_level="WARNING")
    serve.start(http_options={"host": "127.0.0.1", "port": args.http_port},
                grpc_options={"port": args.grpc_port, "grpc_servicer_functions": [GRPC_SERVICER]})
    app = build_app(models, default_model=args.default_model,
                    vocoder=None if args.vocoder == "griffin-lim" else args.vocoder, batching=not args.no_batching)
    serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
    stop = threading.Event()  # handlers set after ray.init, which installs its own SIGTERM handler (it dies)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"READY http=127.0.0.1:{args.http_port} grpc=127.0.0.1:{args.grpc_port}", flush=True)
    while not stop.wait(0.5):
        pass
    t0 = time.monotonic()
    try:
        drained = serve.get_app_handle(APP_NAME).drain.remote(args.drain_timeout).result(
            timeout_s=args.drain_timeout + 10)
        print(f"drained: {drained}", flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
    print(f"stopped in {time.monotonic() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
