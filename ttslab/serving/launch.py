"""Start and stop the TTS server: a private Ray cluster and the Serve application, on 127.0.0.1 only.

:class:`TTSServer` (also a context manager, for notebook cells) starts two processes and records their PIDs:

1. ``ray start --head --block`` (through :mod:`ttslab.serving.ray_head`, which gives a slow raylet more
   time to register) on ``--node-ip-address 127.0.0.1`` with every port chosen here (free
   ports drawn from a random high range, so two servers on one machine do not collide), dashboard off,
   usage statistics off, its own temporary folder;
2. the driver, ``python -m ttslab.serving.server``, which connects to that cluster, starts Serve's HTTP
   proxy on 127.0.0.1 and its gRPC proxy, deploys :func:`ttslab.serving.app.build_app` and waits.

:meth:`TTSServer.start` waits for ``GET /health`` to answer 200; if anything fails on the way it stops
what it started and raises with the tail of the logs. :meth:`TTSServer.stop` sends SIGTERM to the driver,
which drains (new requests get 503, those in flight finish) and shuts Serve down; then every process of
the Ray tree (the ``ray start`` process and its descendants, noted by PID while the server runs and
again at the end) gets SIGTERM, and SIGKILL if it has not exited after a grace period. A finalizer does
the same at interpreter exit, so a notebook kernel that is restarted leaves nothing behind.

Ray turns ``--node-ip-address 127.0.0.1`` into the machine's address unless
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (its single-machine mode, the default on macOS), which is set.
One thing is not on loopback: Ray Serve 2.55 binds its gRPC proxy to ``[::]:port`` (every interface;
``grpc_util.start_grpc_server`` hard-codes it), and each replica's internal gRPC server to ``[::]:0``.
Ray's own ports and the HTTP proxy are on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path

#: Range the ports are drawn from: above the usual services and below Linux's ephemeral range (32768+),
#: so no outgoing connection can take one of them in the meantime -- polling a port that is not yet
#: listening from inside that range can even connect a socket to itself and block the port.
PORT_RANGE = (20000, 32000)
#: Environment of every process started here.
QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0",
             # Ray replaces a node IP of 127.0.0.1 by the machine's address unless clusters are "disabled"
             # (its macOS/Windows default): then every Ray port is bound on 127.0.0.1
             "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_DISABLE_IMPORT_WARNING": "1", "OMP_NUM_THREADS": "1",
             "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "RAY_DEDUP_LOGS": "0",
             "RAY_SERVE_LOG_TO_STDERR": "0", "TOKENIZERS_PARALLELISM": "false"}


def port_is_free(port: int) -> bool:
    """Whether ``port`` can be bound on 127.0.0.1 and on every interface (the gRPC proxy binds [::])."""
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::")):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.bind((host, port))
        except OSError:
            if family == socket.AF_INET6 and not socket.has_ipv6:
                continue
            return False
    return True


def free_ports(count: int, *, block: int = 1, avoid=(), rng: random.Random | None = None) -> list[int]:
    """``count`` free ports (each the start of ``block`` consecutive free ports), drawn at random, away
    from the ports in ``avoid``."""
    rng = rng or random.Random()
    chosen: list[int] = []
    taken = set(avoid)
    for _ in range(2000):
        start = rng.randrange(PORT_RANGE[0], PORT_RANGE[1] - block)
        span = range(start, start + block)
        if any(abs(p - q) < block + 1 for p in span for q in chosen) or taken.intersection(span):
            continue
        if all(port_is_free(p) for p in span):
            chosen.append(start)
            if len(chosen) == count:
                return chosen
    raise RuntimeError(f"could not find {count} free ports in {PORT_RANGE}")


def models_argument(models: dict) -> str:
    """``{"teacher": ModelSource(...)}`` -> the JSON the driver's ``--models`` reads."""
    return json.dumps({name: {k: v for k, v in vars(src).items() if v is not None} for name, src in models.items()})


def process_tree(pid: int) -> list[int]:
    """``pid`` and every living process of its session (it was started with ``start_new_session``, so
    its session id is its PID): its descendants, including those whose parent died and that were
    re-parented to init -- Ray's processes outlive a failed ``ray start``."""
    import psutil

    found = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getsid(proc.pid) == pid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return sorted(found)


def started_at(pid: int) -> float | None:
    """When process ``pid`` started (``None`` if there is none): with the PID, it names one process."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return None


def alive(pids) -> list[int]:
    """Those of ``pids`` that are running processes (zombies, already dead but not yet reaped, are not)."""
    import psutil

    living = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                living.append(pid)
        except psutil.NoSuchProcess:
            pass
    return living


def terminate_pids(pids, grace_s: float = 10.0) -> list[int]:
    """SIGTERM each PID, wait up to ``grace_s``, SIGKILL the survivors; return the PIDs that needed SIGKILL."""
    import psutil

    procs = []
    for pid in dict.fromkeys(pids):
        try:
            proc = psutil.Process(pid)
            proc.terminate()
            procs.append(proc)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
    return [p.pid for p in alive]


def _stop(state: dict) -> None:
    """Stop everything recorded in ``state`` (shared by :meth:`TTSServer.stop` and the exit finalizer)."""
    driver = state.get("driver")
    if driver is not None and driver.poll() is None:
        driver.send_signal(signal.SIGTERM)  # drain, then serve.shutdown()
        try:
            driver.wait(timeout=state["drain_timeout_s"] + 30)
        except subprocess.TimeoutExpired:
            state["killed"] += terminate_pids(process_tree(driver.pid), grace_s=2)
    head = state.get("head")
    if head is not None:
        # the head's session now, plus every process noted while the server ran that is still the same
        # process (same PID *and* start time: a number reused by an unrelated process is never hit)
        pids = set(process_tree(head.pid)) | {pid for pid, started in state["pids"].items() if started_at(pid) == started}
        state["killed"] += terminate_pids(sorted(pids, reverse=True))
        if head.poll() is None:
            head.wait(timeout=5)
    for handle in state.get("logs", []):
        handle.close()
    if state.get("ray_tmp"):
        shutil.rmtree(state["ray_tmp"], ignore_errors=True)
    # forget the PIDs: once these processes are gone the numbers may be reused by unrelated processes
    state.update(driver=None, head=None, logs=[], ray_tmp=None, pids={})


class TTSServer:
    """The TTS server on 127.0.0.1: ``with TTSServer(models) as server: server.url`` (see the module doc).

    ``models`` maps a deployment name to a :class:`~ttslab.serving.app.ModelSource`; ``batching``
    switches ``@serve.batch`` on or off; ``log_dir`` keeps the processes' output (default: a temporary
    folder, removed with the server unless startup failed).
    """

    def __init__(self, models: dict, *, default_model: str | None = None, vocoder: str | None = "vocoder",
                 batching: bool = True, num_cpus: int = 2, startup_timeout_s: float = 240.0,
                 drain_timeout_s: float = 60.0, log_dir: str | Path | None = None, python: str = sys.executable):
        self.models, self.default_model, self.vocoder = dict(models), default_model, vocoder
        self.batching, self.num_cpus, self.python = batching, num_cpus, python
        self.startup_timeout_s, self.drain_timeout_s = startup_timeout_s, drain_timeout_s
        self.log_dir = Path(log_dir) if log_dir else None
        self.http_port = self.grpc_port = None
        self.startup_s: float | None = None
        self._state = {"driver": None, "head": None, "pids": {}, "logs": [], "ray_tmp": None, "killed": [],
                       "drain_timeout_s": drain_timeout_s}
        self.run_id = f"{random.getrandbits(64):016x}"
        self._own_log_dir = False
        self._finalizer = weakref.finalize(self, _stop, self._state)

    @property
    def ray_temp_dir(self) -> str | None:
        """Ray's temporary folder for this server (sockets, logs); removed by :meth:`stop`."""
        return self._state["ray_tmp"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def pids(self) -> list[int]:
        """PIDs of every process this server started that is alive now."""
        found = set()
        for key in ("head", "driver"):
            if self._state[key] is not None:
                found.update(process_tree(self._state[key].pid))
        return sorted(found)

    def _log(self, name: str):
        handle = open(self.log_dir / f"{name}.log", "ab")
        self._state["logs"].append(handle)
        return handle

    def _environment(self) -> dict:
        # TTSLAB_SERVING_RUN marks every process of this server (children inherit it): a way to check,
        # from outside, that none is left (tests/test_serving.py)
        env = {**os.environ, **QUIET_ENV, "TTSLAB_SERVING_RUN": self.run_id}
        root = str(Path(__file__).resolve().parents[2])  # the replicas import ttslab from this checkout
        env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        return env

    def start(self, attempts: int = 3) -> "TTSServer":
        """Start (see the module doc); a failed start is stopped and retried up to ``attempts`` times in all,
        because ``ray start`` gives the raylet a fixed 30 s to register, which a busy 2-core machine can miss."""
        if self._state["head"] is not None:
            raise RuntimeError("this server is already running; stop() it first")
        t0 = time.perf_counter()
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(time.perf_counter())
                break
            except RuntimeError:
                if attempt == attempts:
                    raise
        self.startup_s = time.perf_counter() - t0
        return self

    def _start_once(self, t0: float) -> None:
        if self.log_dir is None:
            self.log_dir = Path(tempfile.mkdtemp(prefix="ttslab_serve_"))
            self._own_log_dir = True
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # a short temporary folder: Ray's Unix sockets live in it and their paths must stay < 108 bytes
        self._state["ray_tmp"] = tempfile.mkdtemp(prefix="tsr", dir="/tmp")
        ports = free_ports(10)
        gcs, node_manager, object_manager, client, agent, agent_grpc, runtime_env, metrics, http, grpc_port = ports
        workers = free_ports(1, block=64, avoid=ports)[0]
        self.http_port, self.grpc_port = http, grpc_port
        env = self._environment()
        head_cmd = [self.python, "-m", "ttslab.serving.ray_head", "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={gcs}",
                    f"--node-manager-port={node_manager}", f"--object-manager-port={object_manager}",
                    f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent}",
                    f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={runtime_env}",
                    f"--metrics-export-port={metrics}", f"--min-worker-port={workers}",
                    f"--max-worker-port={workers + 63}", "--include-dashboard=false", "--disable-usage-stats",
                    f"--num-cpus={self.num_cpus}", f"--temp-dir={self._state['ray_tmp']}"]
        try:
            head_log = self.log_dir / "ray_head.log"
            head_log_offset = head_log.stat().st_size if head_log.exists() else 0  # the log of this attempt only
            self._state["head"] = subprocess.Popen(head_cmd, env=env, stdout=self._log("ray_head"),
                                                   stderr=subprocess.STDOUT, start_new_session=True)
            driver_cmd = [self.python, "-m", "ttslab.serving.server", "--address", f"127.0.0.1:{gcs}",
                          "--http-port", str(http), "--grpc-port", str(grpc_port),
                          "--models", models_argument(self.models), "--drain-timeout", str(self.drain_timeout_s)]
            if self.default_model:
                driver_cmd += ["--default-model", self.default_model]
            driver_cmd += ["--vocoder", self.vocoder or "griffin-lim"]
            if not self.batching:
                driver_cmd.append("--no-batching")
            self._wait_for_head(head_log_offset)
            self._state["driver"] = subprocess.Popen(driver_cmd, env=env, stdout=self._log("driver"),
                                                     stderr=subprocess.STDOUT, start_new_session=True)
            self._wait_for_health(t0)
        except BaseException as exc:
            logs = self.log_tail()
            self.stop()
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise RuntimeError(f"the TTS server did not start: {exc}\n--- logs ---\n{logs}") from exc
        self._state["pids"].update({pid: started_at(pid) for pid in self.pids})

    def _wait_for_head(self, start: int, timeout_s: float = 200.0) -> None:
        """Wait until ``ray start`` reports the node up (its raylet registered): a driver that connects
        before that finds no node."""
        log = self.log_dir / "ray_head.log"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._state["head"].poll() is not None:
                raise RuntimeError(f"`ray start` exited with code {self._state['head'].returncode}")
            with open(log, "rb") as f:
                f.seek(start)
                if b"Ray runtime started" in f.read():
                    return
            time.sleep(0.3)
        raise TimeoutError(f"`ray start` did not report the node up within {timeout_s:.0f} s")

    def _wait_for_health(self, t0: float) -> None:
        while time.perf_counter() - t0 < self.startup_timeout_s:
            for key in ("head", "driver"):
                proc = self._state[key]
                if proc.poll() is not None:
                    raise RuntimeError(f"the {key} process exited with code {proc.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"no healthy answer from {self.url}/health within {self.startup_timeout_s:.0f} s")

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of each process' log (for error messages)."""
        out = []
        for path in sorted(self.log_dir.glob("*.log")) if self.log_dir else []:
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"[{path.name}]\n" + "\n".join(text))
        return "\n".join(out)

    def stop(self) -> list[int]:
        """Drain and stop everything started (by PID); return the PIDs that had to be killed."""
        self._state["pids"].update({pid: started_at(pid) for pid in self.pids})
        _stop(self._state)
        killed, self._state["killed"] = self._state["killed"], []
        if self._own_log_dir and self.startup_s is not None:  # a failed start keeps its logs for reading
            shutil.rmtree(self.log_dir, ignore_errors=True)
            self.log_dir, self._own_log_dir = None, False
        return killed

    def __enter__(self) -> "TTSServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
