"""``python -m ttslab.serving --mode ci|full [--no-batching]``: start the TTS server on 127.0.0.1, print its
addresses, wait until Ctrl-C (or SIGTERM), then drain and stop every process it started (by PID)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    from ttslab import config
    from ttslab.serving import TTSServer, default_models

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("ci", "full"), default=config.mode(), help="which second model to serve")
    p.add_argument("--no-batching", action="store_true", help="switch @serve.batch off")
    p.add_argument("--check", action="store_true", help="start, synthesize one sentence, stop (a smoke test)")
    args = p.parse_args(argv)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with TTSServer(default_models(args.mode, progress=True), batching=not args.no_batching) as server:
        print(f"TTS server up in {server.startup_s:.1f} s: HTTP {server.url} (POST /synthesize, GET /health), "
              f"gRPC {server.grpc_address}; processes {server.pids}", flush=True)
        if args.check:
            from ttslab.serving.client import synthesize

            audio, sample_rate = synthesize(server.url, "Hello from the server.").audio()
            print(f"synthesized {len(audio) / sample_rate:.2f} s of audio", flush=True)
            return 0
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        print("stopping ...", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
