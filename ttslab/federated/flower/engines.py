"""Run a :class:`~ttslab.federated.flower.app.FlowerRun` on Flower's two engines.

* :func:`run_ttslab_simulator`: the same run on ttslab's in-process simulator
  (:func:`ttslab.federated.simulator.simulate`), no Flower involved: the reference;
* :func:`run_simulation_engine`: Flower's Simulation Engine, ``flwr.simulation.run_simulation``
  (Ray actors in this process's Ray cluster; the only backend Flower 1.41 has);
* :func:`run_deployment_engine`: Flower's Deployment Engine on this machine: a SuperLink and ``N``
  SuperNodes as real processes on 127.0.0.1 (:class:`LocalDeployment`), the app submitted with
  ``flwr run``. On real machines the same commands run with TLS certificates instead of
  ``--insecure``, SuperNode authentication, and each node's own ``--node-config``.

All return ``(final_weights, history)``; Flower's two read them back from the checkpoint the
ServerApp wrote.

Every Flower process gets :func:`flower_environment`: its own ``FLWR_HOME`` in a temporary folder,
telemetry off, no update check, no installation of dependencies at run time (the generated app's
``pyproject.toml`` lists none: Flower would try to install torch and flwr with ``uv`` otherwise).
Every process this module starts gets a session of its own and is stopped by its process-group id
(SIGTERM, then SIGKILL), also when starting fails, a run fails, or the user interrupts. Flower's
SuperLink starts a SuperExec *detached* (a session of its own, which outlives the SuperLink), so each
deployment also marks its processes with an environment variable ``TTSLAB_FLWR_DEPLOYMENT=<token>``
(inherited by everything they spawn) and, after stopping its own, stops by pid any process still
carrying its token (:func:`marked_pids`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from ttslab.checkpoint import load_checkpoint
from ttslab.federated.flower.app import (RUN_KEY, FlowerRun, load_task, make_client_app, make_server_app,
                                         make_server_strategy)

logger = logging.getLogger(__name__)
HOST = "127.0.0.1"
FLOWER_ENV = {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
              "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}


class PortInUseError(OSError):
    """A port the deployment engine was told to use is taken on 127.0.0.1."""


def project_root() -> Path:
    """The folder holding the ``ttslab`` package (put on every Flower process's ``PYTHONPATH``)."""
    return Path(__file__).resolve().parents[3]


def flower_environment(flwr_home: str | Path, base: dict | None = None) -> dict:
    """The environment for a Flower process: ``base`` (default ``os.environ``) plus a local
    ``FLWR_HOME``, the switches in :data:`FLOWER_ENV`, one thread, and ttslab on ``PYTHONPATH``."""
    env = dict(os.environ if base is None else base)
    env.update(FLOWER_ENV)
    env["FLWR_HOME"] = str(flwr_home)
    paths = [str(project_root())] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    bin_dir = str(Path(sys.executable).parent)         # flower-superexec, flwr-serverapp, flwr-clientapp
    env["PATH"] = os.pathsep.join(dict.fromkeys([bin_dir] + env.get("PATH", "").split(os.pathsep)))
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


def load_result(path: str | Path):
    """``(weights, history)`` from what the ServerApp wrote (checksum verified)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"the ServerApp wrote no result to {path}: the run failed (see the log above)")
    weights = load_checkpoint(path)["model"]
    history = json.loads(path.with_suffix(path.suffix + ".json").read_text())["history"]
    return weights, history


# --- ttslab's simulator ---------------------------------------------------------------------------

def run_ttslab_simulator(run: FlowerRun, *, progress: bool = False):
    """``run`` on :func:`ttslab.federated.simulator.simulate`: every client in every round, no
    failures, float32 uploads, the clients' seed. Returns ``(weights, history)``."""
    from ttslab.federated.simulator import SimulationConfig, simulate

    task = load_task(run)
    config = run.client_config()
    result = simulate(task.model_fn, task.loss_fn, [task.client_data(k) for k in range(run.num_nodes)],
                      make_server_strategy(run.strategy, run.strategy_args), config,
                      SimulationConfig(rounds=run.rounds, fraction=1.0, seed=config.seed, threads=1),
                      progress=progress)
    return result.weights, result.history


# --- the Simulation Engine (Ray) -------------------------------------------------------------------

@contextlib.contextmanager
def patched_environ(values: dict):
    """Set environment variables for the duration of a block (Ray and Flower read them in-process)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_simulation_engine(run: FlowerRun, *, num_cpus: int = 2, workdir: str | Path | None = None,
                          verbose: bool = False, attempts: int = 3):
    """``run`` on Flower's Simulation Engine: ``run.num_nodes`` virtual SuperNodes as Ray actors
    (one CPU each, ``num_cpus`` in all), the ServerApp in this process. Returns ``(weights, history)``.

    Ray 2.55 gives its raylet a fixed 30 s to register at start-up; on an overloaded machine it can
    miss that and ``run_simulation`` fails before any client ran. Such a failure is retried (up to
    ``attempts`` calls in all, a fresh Ray each time); the run is deterministic, so a retry gives the
    same weights. Any other failure is raised at once.
    """
    for attempt in range(1, attempts + 1):
        try:
            return _simulate_once(run, num_cpus, workdir, verbose)
        except RayStartupError:
            if attempt == attempts:
                raise
            logger.warning("Ray did not start in time (attempt %d of %d); retrying", attempt, attempts)
    raise ValueError(f"attempts must be >= 1, got {attempts!r}")


class RayStartupError(RuntimeError):
    """Ray's node did not start (its raylet missed Ray's start-up deadline); nothing was trained."""


def _simulate_once(run: FlowerRun, num_cpus: int, workdir, verbose: bool):
    from flwr.simulation import run_simulation

    with tempfile.TemporaryDirectory(prefix="ttslab-flwr-sim-", dir=workdir) as tmp:
        out = Path(tmp) / "final.pt"
        bound = run.replace(output=str(out))
        env = {k: v for k, v in flower_environment(Path(tmp) / "flwr_home").items()
               if k in (*FLOWER_ENV, "FLWR_HOME", "PYTHONPATH")}
        # Ray's node address is the loopback one (its processes reach each other over 127.0.0.1, not the
        # machine's address); Ray 2.55's GCS and raylet gRPC servers still listen on all interfaces
        backend = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                   "init_args": {"num_cpus": int(num_cpus), "num_gpus": 0, "include_dashboard": False,
                                 "_node_ip_address": HOST}}
        before = set(descendants(os.getpid()))
        with patched_environ(env):
            try:
                run_simulation(make_server_app(bound), make_client_app(bound), num_supernodes=run.num_nodes,
                               backend_config=backend, verbose_logging=verbose)
            except RuntimeError as exc:
                if ray_startup_failed(exc):
                    raise RayStartupError(f"Ray did not start: {exc}") from exc
                raise
            finally:  # a failed ray.init leaves its GCS server running; stop what this call started
                stop_pids(sorted(set(descendants(os.getpid())) - before))
        return load_result(out)


def descendants(root: int) -> list[int]:
    """Pids of all processes below ``root`` (Linux ``/proc``; elsewhere an empty list)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def stop_pids(pids: list[int], grace: float = 3.0) -> None:
    """SIGTERM each pid, then SIGKILL those still there after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = []
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
                alive.append(pid)
        if not alive or sig == signal.SIGKILL:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in alive):
            time.sleep(0.1)
        pids = alive


def ray_startup_failed(exc: BaseException) -> bool:
    """Whether ``exc`` or an exception it was raised from is Ray's start-up timeout."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if "timed out during startup" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


# --- the Deployment Engine on localhost --------------------------------------------------------------

def free_port(host: str = HOST) -> int:
    """A port that is free on ``host`` now (the kernel's pick from its ephemeral range)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_port_free(port: int, host: str = HOST) -> int:
    """``port`` if nothing listens on ``host:port``; :class:`PortInUseError` otherwise."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1024 <= port <= 65535:
        raise ValueError(f"port must be an int in 1024..65535, got {port!r}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise PortInUseError(f"port {port} on {host} is already in use ({exc.strerror}); another SuperLink or "
                                 f"service holds it: stop it, choose another port, or pass None to pick a free "
                                 f"one") from exc
    return port


def write_app(folder: str | Path, run: FlowerRun) -> Path:
    """A Flower app folder for ``flwr run``: a ``pyproject.toml`` that lists no dependencies (nothing
    to install at run time) and names the ttslab apps, with ``run`` as its run config, plus a
    one-line module re-exporting the apps."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ttslab_flower_app.py").write_text(
        '"""Flower entry points: the ttslab apps (ttslab must be importable)."""\n'
        "from ttslab.federated.flower import app\n\n"
        "server_app = app.server_app\nclient_app = app.client_app\n")
    # json.dumps of a str is a valid TOML basic string (same escapes, ASCII only)
    (folder / "pyproject.toml").write_text(f"""[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "ttslab-flower-app"
version = "1.0.0"
description = "ttslab's federated training as a Flower app"
license = "MIT"
dependencies = []

[tool.flwr.app]
publisher = "ttslab"

[tool.flwr.app.components]
serverapp = "ttslab_flower_app:server_app"
clientapp = "ttslab_flower_app:client_app"

[tool.flwr.app.config]
{RUN_KEY} = {json.dumps(run.to_json())}
""")
    return folder


MARK = "TTSLAB_FLWR_DEPLOYMENT"


def marked_pids(token: str) -> list[int]:
    """Pids of this user's processes whose environment holds ``TTSLAB_FLWR_DEPLOYMENT=token`` (Linux
    ``/proc``; elsewhere an empty list): everything one deployment started, detached ones included."""
    needle = f"{MARK}={token}".encode() + b"\0"
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if entry.stat().st_uid == os.getuid() and needle in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:                                  # gone, or not ours to read
            continue
    return sorted(p for p in found if p != os.getpid())


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop a process started with ``start_new_session=True`` and everything it spawned: SIGTERM to its
    process group (its id is the process's pid), then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
    with contextlib.suppress(ProcessLookupError):       # children left behind after the leader exited
        os.killpg(proc.pid, signal.SIGKILL)


class LocalDeployment:
    """A SuperLink and ``num_nodes`` SuperNodes on 127.0.0.1, as a context manager::

        with LocalDeployment(3) as deployment:             # started, healthy, nodes connected
            deployment.submit(app_folder)                   # flwr run, waits for the end
        # every process stopped (also after an exception or Ctrl-C)

    ``superlink_port`` / ``node_ports``: None picks free ports; a given port that is taken raises
    :class:`PortInUseError` before anything starts. Node ``i`` gets
    ``--node-config "partition-id=i num-partitions=N"``. Logs go to ``<workdir>/logs``.
    """

    def __init__(self, num_nodes: int, *, superlink_port: int | None = None, node_ports=None,
                 workdir: str | Path | None = None, startup_timeout: float = 60.0):
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
            raise ValueError(f"num_nodes must be an int >= 1, got {num_nodes!r}")
        if node_ports is not None and len(node_ports) != num_nodes:
            raise ValueError(f"node_ports has {len(node_ports)} ports for {num_nodes} nodes")
        self.num_nodes, self.startup_timeout = num_nodes, float(startup_timeout)
        self.superlink_port, self.node_ports = superlink_port, None if node_ports is None else list(node_ports)
        self._tmp = None if workdir is not None else tempfile.TemporaryDirectory(prefix="ttslab-flwr-deploy-")
        self.workdir = Path(workdir if workdir is not None else self._tmp.name)
        self.flwr_home = self.workdir / "flwr_home"
        self.logs = self.workdir / "logs"
        self.token = f"{os.getpid()}-{time.time_ns()}"
        self.env = {**flower_environment(self.flwr_home), MARK: self.token}
        self.processes: dict[str, subprocess.Popen] = {}
        self.bin = Path(sys.executable).parent

    # -- start and stop --
    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")
        try:
            proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=self.workdir)
        finally:
            log.close()
        self.processes[name] = proc
        return proc

    def _tool(self, name: str) -> str:
        path = self.bin / name
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: install Flower with `pip install .[federated]`")
        return str(path)

    def start(self) -> "LocalDeployment":
        """Check the ports, start the SuperLink, wait for its health, start the nodes; on any failure
        stop what was started and re-raise."""
        try:
            self.logs.mkdir(parents=True, exist_ok=True)
            self.flwr_home.mkdir(parents=True, exist_ok=True)
            link = check_port_free(self.superlink_port) if self.superlink_port else free_port()
            ports = [check_port_free(p) for p in self.node_ports] if self.node_ports else []
            self.superlink_port = link
            (self.flwr_home / "config.toml").write_text(
                f'[superlink]\ndefault = "local"\n\n[superlink.local]\naddress = "{HOST}:{link}"\ninsecure = true\n')
            proc = self._spawn("superlink", [self._tool("flower-superlink"), "--insecure",
                                             "--disable-runtime-dependency-installation",
                                             "--host", HOST, "--port", str(link)])
            self.wait_for_health(f"http://{HOST}:{link}/health", proc, "superlink")
            for i in range(self.num_nodes):
                port = ports[i] if ports else free_port()
                self._spawn(f"supernode-{i}", [self._tool("flower-supernode"), "--insecure",
                                               "--superlink", f"{HOST}:{link}", "--host", HOST, "--port", str(port),
                                               "--node-config", f"partition-id={i} num-partitions={self.num_nodes}"])
            time.sleep(0.5)
            dead = [n for n, p in self.processes.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead} exited at start-up; see {self.logs}: {self.tail(dead[0])}")
        except BaseException:
            self.stop()
            raise
        return self

    def wait_for_health(self, url: str, proc: subprocess.Popen, name: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the {name} exited with code {proc.returncode} at start-up: {self.tail(name)}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {name} was not healthy at {url} within {self.startup_timeout:.0f} s: "
                                   f"{self.tail(name)}")
            time.sleep(0.2)

    def tail(self, name: str, chars: int = 2000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def stop(self) -> None:
        """Stop every process this object started (nodes first), by process-group id."""
        for name in reversed(list(self.processes)):
            stop_process(self.processes[name])
        self.processes.clear()
        for pid in marked_pids(self.token):              # detached helpers (SuperExec and its apps)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        while marked_pids(self.token) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in marked_pids(self.token):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> "LocalDeployment":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.processes.items()}

    # -- run an app --
    def submit(self, app_folder: str | Path, timeout: float = 600.0) -> str:
        """``flwr run APP local --stream`` against this SuperLink; returns its output, raises on failure.
        ``flwr run`` is started and stopped like the servers (its own session, stopped on the way out)."""
        log = self.logs / "flwr-run.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([self._tool("flwr"), "run", str(app_folder), "local", "--stream"], env=self.env,
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=self.workdir)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"flwr run did not finish within {timeout:.0f} s: {self.tail('flwr-run')}") from None
        finally:
            stop_process(proc)
        text = log.read_text(errors="replace")
        if code != 0:
            raise RuntimeError(f"flwr run failed with code {code}: {text[-2000:]}")
        return text


def run_deployment_engine(run: FlowerRun, *, workdir: str | Path | None = None, superlink_port: int | None = None,
                          timeout: float = 600.0):
    """``run`` on Flower's Deployment Engine on 127.0.0.1 (:class:`LocalDeployment` with
    ``run.num_nodes`` SuperNodes); everything started is stopped before this returns or raises.
    Returns ``(weights, history)``."""
    with tempfile.TemporaryDirectory(prefix="ttslab-flwr-deploy-", dir=workdir) as tmp:
        out = Path(tmp) / "final.pt"
        app = write_app(Path(tmp) / "app", run.replace(output=str(out)))
        with LocalDeployment(run.num_nodes, superlink_port=superlink_port, workdir=Path(tmp) / "deployment") as d:
            d.submit(app, timeout=timeout)
        return load_result(out)
