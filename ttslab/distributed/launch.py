"""Start ``torchrun`` from Python on 127.0.0.1, bounded in time, and leave no process behind.

Used by the tests, the benchmark and the notebook. Each ``torchrun`` runs in a new session (its own
process group, whose id is its PID). torchrun starts each worker in a session of its own too, so
killing torchrun's group alone could orphan the workers: while waiting, the launcher records every
descendant of each torchrun (PID and start time, from ``/proc``; Linux). On a timeout or a failure,
and in any case at the end, torchrun's group gets SIGTERM (torchrun then stops its workers), then
SIGKILL, and every recorded descendant still alive (same PID *and* start time, so a reused PID is
never hit) gets SIGKILL by its PID. :attr:`LaunchResult.left_alive` lists what survived (always
empty unless something refused to die). Output (stdout and stderr, merged) is captured.

The two command forms (:func:`torchrun_command`)::

    # one machine, N processes
    torchrun --standalone --nproc-per-node 2 -m ttslab.distributed.run --model tiny-fastspeech ...

    # several machines ("nodes"), one command per node, the same code unchanged; HOST:PORT is node 0's
    torchrun --nnodes 2 --node-rank R --nproc-per-node 1 --rdzv-backend c10d \\
             --rdzv-endpoint HOST:PORT --rdzv-id RUN -m ttslab.distributed.run --model tiny-fastspeech ...

:func:`launch_nodes` starts the second form with every "node" on 127.0.0.1, which shows it on one
machine. ``GLOO_SOCKET_IFNAME=lo`` keeps gloo's connections on the loopback interface.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
ENTRY = "ttslab.distributed.run"


@dataclass
class LaunchResult:
    """What one launch did: the commands, their exit codes, merged output, wall time, timeout."""

    commands: list[list[str]]
    returncodes: list[int | None]
    output: str
    seconds: float
    timed_out: bool = False
    pids: list[int] | None = None        #: every PID started or seen: the torchruns and their descendants
    left_alive: list[int] | None = None  #: those still alive after the launch (should be empty)

    @property
    def ok(self) -> bool:
        return not self.timed_out and all(rc == 0 for rc in self.returncodes)

    def check(self) -> "LaunchResult":
        """Raise ``RuntimeError`` with the output's tail when a process failed or timed out."""
        if not self.ok:
            why = "timed out" if self.timed_out else f"exit codes {self.returncodes}"
            raise RuntimeError(f"torchrun {why} after {self.seconds:.1f} s:\n{self.output[-4000:]}")
        return self


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def torchrun_command(args: list[str], *, nproc_per_node: int = 2, nnodes: int = 1, node_rank: int = 0,
                     endpoint: str | None = None, run_id: str = "ttslab", module: str | None = ENTRY,
                     python: str = sys.executable) -> list[str]:
    """The torchrun command line: ``--standalone`` when ``endpoint`` is None (one node), else the
    multi-node c10d rendezvous at ``endpoint`` (``HOST:PORT``). ``args`` go to ``module`` (or to the
    script named first in ``args`` when ``module`` is None)."""
    cmd = [python, "-m", "torch.distributed.run"]  # the module behind the torchrun executable
    if endpoint is None:
        if nnodes != 1:
            raise ValueError("several nodes need a rendezvous endpoint HOST:PORT")
        cmd += ["--standalone", "--nnodes", "1"]
    else:
        cmd += ["--nnodes", str(nnodes), "--node-rank", str(node_rank), "--rdzv-backend", "c10d",
                "--rdzv-endpoint", endpoint, "--rdzv-id", run_id, "--local-addr", endpoint.rsplit(":", 1)[0]]
    cmd += ["--nproc-per-node", str(nproc_per_node), "--max-restarts", "0"]
    return cmd + (["-m", module] if module else []) + [str(a) for a in args]


def group_alive(pgid: int) -> bool:
    """True while a process of the process group ``pgid`` runs (zombies, which have exited and only wait
    for their parent to read their status, do not count; without ``/proc`` any member counts)."""
    if Path("/proc").is_dir():
        for entry in Path("/proc").glob("[0-9]*"):
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[2] == pgid:
                return True
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _proc_stat(pid: int) -> tuple[int, int, int] | None:
    """``(parent PID, start time, process group)`` of ``pid`` from ``/proc``, or None when it is gone or a zombie (or no
    /proc): a zombie has exited and holds no resources, only an entry its parent has not read yet."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), int(fields[19]), int(fields[2])


def descendants(pid: int) -> dict[int, int]:
    """``{PID: start time}`` of every live descendant of ``pid`` (empty where there is no ``/proc``)."""
    parents: dict[int, list[tuple[int, int]]] = {}
    for entry in Path("/proc").glob("[0-9]*") if Path("/proc").is_dir() else ():
        stat = _proc_stat(int(entry.name))
        if stat is not None:
            parents.setdefault(stat[0], []).append((int(entry.name), stat[1]))
    found, todo = {}, [pid]
    while todo:
        for child, start in parents.get(todo.pop(), []):
            if child not in found:
                found[child] = start
                todo.append(child)
    return found


def _same_alive(pid: int, start: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[1] == start


def stop_group(pgid: int, grace_s: float = 5.0) -> None:
    """SIGTERM the process group ``pgid``, then SIGKILL whatever is left after ``grace_s``."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and group_alive(pgid):
            time.sleep(0.05)
        if not group_alive(pgid):
            return


def _env(extra: dict | None) -> dict:
    env = dict(os.environ)
    env.update({"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    root = str(Path(__file__).resolve().parents[2])  # the workers import this checkout of ttslab
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


def run_commands(commands: list[list[str]], *, timeout_s: float = 120.0, env: dict | None = None,
                 cwd: str | Path | None = None, grace_s: float = 5.0) -> LaunchResult:
    """Start every command (each in its own session), wait for all within ``timeout_s``; on a timeout or
    as soon as one fails, stop every group by PID (SIGTERM, SIGKILL after ``grace_s``), then every
    recorded descendant. Afterwards no process of any group is alive (:attr:`LaunchResult.left_alive`)."""
    env = _env(env)
    logs, procs, seen = [], [], {}
    t0 = time.monotonic()
    last_scan = 0.0
    try:
        for cmd in commands:
            log = tempfile.TemporaryFile(mode="w+b")
            logs.append(log)
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                          start_new_session=True))
        timed_out = False
        while any(p.poll() is None for p in procs):
            if any(p.poll() not in (None, 0) for p in procs):
                break  # one failed: the others would wait for it at the next collective
            if time.monotonic() - t0 > timeout_s:
                timed_out = True
                break
            if time.monotonic() - last_scan > 0.5:
                for p in procs:
                    seen.update(descendants(p.pid))
                last_scan = time.monotonic()
            time.sleep(0.05)
    finally:
        for p in procs:
            seen.update(descendants(p.pid))
        for p in procs:  # also on success: a worker that outlived its torchrun is stopped here
            stop_group(p.pid, grace_s)
            p.wait()
        for pid, start in seen.items():
            if _same_alive(pid, start):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and any(_same_alive(pid, start) for pid, start in seen.items()):
            time.sleep(0.05)
    left = [pid for pid, start in seen.items() if _same_alive(pid, start)]
    left += [p.pid for p in procs if group_alive(p.pid)]
    output = []
    for cmd, log in zip(commands, logs):
        log.seek(0)
        output.append(f"$ {' '.join(cmd)}\n" + log.read().decode("utf-8", "replace"))
        log.close()
    return LaunchResult(commands, [p.returncode for p in procs], "\n".join(output), time.monotonic() - t0,
                        timed_out, [p.pid for p in procs] + sorted(seen), left)


def launch(args: list[str], *, nproc_per_node: int = 2, timeout_s: float = 120.0, env: dict | None = None,
           cwd: str | Path | None = None, module: str | None = ENTRY, grace_s: float = 5.0) -> LaunchResult:
    """``torchrun --standalone --nproc-per-node N -m ttslab.distributed.run ARGS`` on this machine
    (torchrun's standalone rendezvous takes a free port on localhost itself)."""
    return run_commands([torchrun_command(args, nproc_per_node=nproc_per_node, module=module)],
                        timeout_s=timeout_s, env=env, cwd=cwd, grace_s=grace_s)


def launch_nodes(args: list[str], *, nnodes: int = 2, nproc_per_node: int = 1, timeout_s: float = 120.0,
                 env: dict | None = None, cwd: str | Path | None = None, module: str | None = ENTRY,
                 grace_s: float = 5.0) -> LaunchResult:
    """The multi-node form with ``nnodes`` torchrun processes, every "node" on 127.0.0.1 and a free port."""
    endpoint = f"{LOOPBACK}:{free_port()}"
    run_id = f"ttslab-{os.getpid()}-{int(time.time())}"
    commands = [torchrun_command(args, nproc_per_node=nproc_per_node, nnodes=nnodes, node_rank=r,
                                 endpoint=endpoint, run_id=run_id, module=module) for r in range(nnodes)]
    return run_commands(commands, timeout_s=timeout_s, env=env, cwd=cwd, grace_s=grace_s)
