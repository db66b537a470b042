"""Failures during federated training: a client that breaks mid-round, a straggler past the deadline,
and a server killed with SIGKILL that resumes bit for bit with every round's privacy counted once."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from test_federated_core import Toy, toy_data, toy_loss  # tests/ is on sys.path under pytest (rootdir conftest)
from ttslab.federated import ClientConfig, FedAvg, SkipMalformed, client_update, initial_weights
from ttslab.federated.privacy import epsilon_for
from ttslab.federated.simulator import SimulationConfig, latest_checkpoint, simulate

ROOT = Path(__file__).resolve().parents[1]
JOB = Path(__file__).with_name("federated_resume_job.py")
CC = ClientConfig(local_steps=4, batch_size=2, lr=0.05, optimizer="sgd")


def test_a_client_failing_mid_round_and_a_straggler_past_the_deadline_leave_a_correctly_weighted_round():
    data = [toy_data(k, n=2 + 3 * k, seed=k) for k in range(5)]
    sim = SimulationConfig(rounds=1, clients_per_round=5, straggler=0.4, straggler_policy="drop", seed=1)
    broken = 2

    def crash_mid_upload(reply, weights, t):      # client 2 dies half way through writing its update
        if reply.client_id != broken:
            return reply
        w = {n: v.clone() for n, v in reply.weights.items()}
        first = next(iter(w))
        w[first].view(-1)[w[first].numel() // 2:] = float("nan")
        return dataclasses.replace(reply, weights=w)

    result = simulate(Toy, toy_loss, data, SkipMalformed(FedAvg()), CC, sim, reply_fn=crash_mid_upload,
                      progress=False)
    row = result.history[0]
    late = row["stragglers"]
    assert late and broken not in late                    # the seed gives both kinds of failure
    survivors = [k for k in range(5) if k not in late and k != broken]
    assert row["replied"] == [k for k in range(5) if k not in late]      # the broken reply arrived, was refused
    w0 = initial_weights(Toy, seed=CC.seed)
    replies = [client_update(w0, data[k], CC, model_fn=Toy, loss_fn=toy_loss, server_round=1).reply for k in survivors]
    total = sum(len(data[k]) for k in survivors)          # n_k of the survivors only
    for name in w0:
        expected = sum(len(data[r.client_id]) * r.weights[name].double().numpy() for r in replies) / total
        np.testing.assert_array_equal(result.weights[name].numpy(), expected.astype(np.float32))


def run_job(out, rounds, folder=None, pause=0.0, wait=True):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    args = [sys.executable, str(JOB), str(out), str(rounds)] + ([str(folder), str(pause)] if folder else [])
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if wait:
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output.decode()[-2000:]
    return proc


def newest_round(folder: Path) -> int:
    path = latest_checkpoint(folder) if folder.is_dir() else None
    return int(path.name[len("round_"):-len(".pt")]) if path is not None else 0


@pytest.mark.slow
def test_a_server_killed_by_sigkill_resumes_bit_identically_and_counts_each_round_once(tmp_path):
    rounds = 8
    run_job(tmp_path / "straight.pt", rounds)
    folder = tmp_path / "ckpt"
    proc = run_job(tmp_path / "never.pt", rounds, folder, pause=0.5, wait=False)
    try:
        deadline = time.monotonic() + 240
        while newest_round(folder) < 3:                 # let it checkpoint a few rounds, then kill it
            assert proc.poll() is None, "the job ended before it could be killed"
            assert time.monotonic() < deadline, "the job made no checkpoint in time"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)               # a real crash: no handler, no clean-up
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (tmp_path / "never.pt").exists()
    killed_after = newest_round(folder)
    assert 3 <= killed_after < rounds
    run_job(tmp_path / "resumed.pt", rounds, folder)
    straight = torch.load(tmp_path / "straight.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert resumed["resumed_from"] == killed_after and straight["resumed_from"] == 0
    assert list(resumed["weights"]) == list(straight["weights"])
    assert all(torch.equal(resumed["weights"][n], straight["weights"][n]) for n in straight["weights"])
    assert resumed["counted"] == straight["counted"] == list(range(1, rounds + 1))
    assert resumed["epsilon"] == straight["epsilon"] == epsilon_for(0.8, 0.5, rounds, 1e-5)
