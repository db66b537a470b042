"""Data-parallel training (ttslab.distributed): 2 processes x B/2 == 1 process x B, with torchrun + gloo.

Tolerance, and why these settings. Every comparison is of the final weights after 4 steps:

* tiny FastSpeech (real CI-corpus utterances, masked frame/phone losses, the loss scaled by each
  shard's share of frames and phones), **SGD**: max |w_2proc - w_1proc| measured 1.2e-7, asserted
  <= 1e-6. SGD keeps float noise in a gradient noise-sized in the weights. With AdamW the same runs
  differ by up to 1e-4, all of it in parameters whose true gradient is zero or tiny: the attention's
  key bias (softmax ignores a constant added to every key) gets a gradient of pure rounding noise,
  and Adam divides by its RMS, turning noise into steps of size lr. That is Adam, not DDP.
* an MLP on real mel frames (plain mean over equal items) with the recipe optimizer **AdamW**:
  measured 1.5e-8, asserted <= 1e-6.
* gradient accumulation, in one process (2 micro-batches == 1 batch) and across two torchrun
  "nodes" on 127.0.0.1 (2 nodes x 2 micro-batches of B/4), <= 1e-6.
* resume (tiny FastSpeech, AdamW, warm-up + cosine): an interrupted 2-process run resumed by 2
  processes equals the uninterrupted 2-process run bit for bit (gloo reduces in a fixed order).

Every launch goes through ttslab.distributed.launch (127.0.0.1, a timeout, stopped by PID), and
every test asserts that no process it started is alive afterwards.
"""

from __future__ import annotations

import json

import pytest
import torch

from ttslab.checkpoint import load_checkpoint
from ttslab.distributed import launch, launch_nodes, shard
from ttslab.distributed import run as entry
from ttslab.distributed.launch import descendants

TOL = 1e-6
FS = ["--model", "tiny-fastspeech", "--corpus-mode", "ci", "--utterances", "16", "--batch-size", "8",
      "--steps", "4", "--optimizer", "sgd", "--lr", "0.05"]
MLP = ["--model", "mlp", "--corpus-mode", "ci", "--utterances", "4", "--batch-size", "16", "--steps", "4"]


def weights(path) -> dict:
    return load_checkpoint(path)["model"]


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


def losses(path, key: str = "loss") -> list[float]:
    """The global ``key`` (loss, grad_norm...) of every step, from the run's ``<out>.json``."""
    return [row[key] for row in json.loads(path.with_name(path.name + ".json").read_text())["train"]]


def launched(result):
    """The launch succeeded and left nothing behind."""
    assert result.ok, result.output[-3000:]
    assert result.left_alive == [], result.left_alive
    for pid in result.pids[:1]:
        assert descendants(pid) == {}
    return result


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, ci_corpus):
    """The reference: 1 process x batch B, in this process (no torchrun, no process group)."""
    out = tmp_path_factory.mktemp("one")
    entry.main([*FS, "--out", str(out / "fs.pt")])
    entry.main([*MLP, "--out", str(out / "mlp.pt")])
    return out


def test_shards_are_disjoint_and_their_union_is_the_global_batch():
    batch = list(range(10, 21))  # 11 items: uneven pieces
    for world, acc in ((1, 1), (2, 1), (2, 2), (3, 2)):
        pieces = [p for r in range(world) for p in shard(batch, r, world, acc)]
        assert len(pieces) == world * acc
        assert sum(pieces, []) == batch  # disjoint, complete, in order
        assert max(map(len, pieces)) - min(map(len, pieces)) <= 1
    with pytest.raises(ValueError, match="cannot feed"):
        shard([1, 2, 3], 0, 2, 2)


def test_two_processes_equal_one_tiny_fastspeech(one_process, tmp_path):
    launched(launch([*FS, "--out", str(tmp_path / "fs.pt")], nproc_per_node=2, timeout_s=120))
    summary = json.loads((tmp_path / "fs.pt.json").read_text())
    assert summary["world_size"] == 2 and summary["backend"] == "gloo"
    d = max_diff(weights(one_process / "fs.pt"), weights(tmp_path / "fs.pt"))
    print(f"tiny FastSpeech, SGD, 4 steps: max |w2 - w1| = {d:.3g}")
    assert d <= TOL
    for key in ("loss", "frames", "phones", "grad_norm"):  # the gradient's size too, not only its direction
        assert losses(tmp_path / "fs.pt", key) == pytest.approx(losses(one_process / "fs.pt", key), rel=1e-6), key
    # the runs moved: equal weights are not just the untrained initial ones
    assert losses(one_process / "fs.pt")[-1] < 0.9 * losses(one_process / "fs.pt")[0]


def test_two_processes_equal_one_mlp_adamw(one_process, tmp_path):
    launched(launch([*MLP, "--out", str(tmp_path / "mlp.pt")], nproc_per_node=2, timeout_s=120))
    d = max_diff(weights(one_process / "mlp.pt"), weights(tmp_path / "mlp.pt"))
    print(f"MLP, AdamW, 4 steps: max |w2 - w1| = {d:.3g}")
    assert d <= TOL


def test_gradient_accumulation_in_one_process(one_process, tmp_path):
    entry.main([*FS, "--accumulate", "2", "--out", str(tmp_path / "acc.pt")])
    d = max_diff(weights(one_process / "fs.pt"), weights(tmp_path / "acc.pt"))
    print(f"1 process x 2 micro-batches vs 1 x B: max diff {d:.3g}")
    assert d <= TOL


def test_two_nodes_on_loopback_with_accumulation(one_process, tmp_path):
    """The multi-node command (c10d rendezvous on 127.0.0.1), 1 process per node, 2 micro-batches each."""
    result = launched(launch_nodes([*FS, "--accumulate", "2", "--out", str(tmp_path / "fs.pt")], nnodes=2,
                                   nproc_per_node=1, timeout_s=120))
    assert len(result.commands) == 2 and all("--rdzv-endpoint" in c for c in result.commands)
    assert json.loads((tmp_path / "fs.pt.json").read_text())["world_size"] == 2
    d = max_diff(weights(one_process / "fs.pt"), weights(tmp_path / "fs.pt"))
    print(f"2 nodes x 1 process x 2 micro-batches: max diff {d:.3g}")
    assert d <= TOL


def test_resume_after_interruption_equals_uninterrupted(tmp_path, ci_corpus):
    """AdamW with warm-up and a cosine schedule, so the optimizer's moments and the schedule's position
    must come back too, not just the weights and the batch position."""
    args = [*FS[:-4], "--optimizer", "adamw", "--lr", "0.002", "--warmup", "1", "--schedule", "cosine"]
    ckpt = tmp_path / "ckpt"
    launched(launch([*args, "--ckpt-dir", str(ckpt), "--checkpoint-every", "1", "--stop-after", "2",
                     "--out", str(tmp_path / "part.pt")], timeout_s=120))
    part = load_checkpoint(ckpt / "last.pt")
    assert part["step"] == 2 and part["world_size"] == 2
    launched(launch([*args, "--ckpt-dir", str(ckpt), "--checkpoint-every", "1", "--out", str(tmp_path / "resumed.pt")],
                    timeout_s=120))
    assert load_checkpoint(ckpt / "last.pt")["step"] == 4
    launched(launch([*args, "--out", str(tmp_path / "whole.pt")], timeout_s=120))
    resumed, whole = weights(tmp_path / "resumed.pt"), weights(tmp_path / "whole.pt")
    d = max_diff(resumed, whole)
    assert d == 0.0, d  # bit for bit
    assert losses(tmp_path / "resumed.pt")[-2:] == losses(tmp_path / "whole.pt")[-2:]
    assert max_diff(part["model"], whole) > 1e-3  # the interrupted weights are not the final ones


def test_a_two_process_checkpoint_resumes_in_one_process(one_process, tmp_path):
    """The global batches do not depend on the number of ranks, so a run can change size on resume."""
    ckpt = tmp_path / "ckpt"
    launched(launch([*FS, "--ckpt-dir", str(ckpt), "--checkpoint-every", "1", "--stop-after", "2",
                     "--out", str(tmp_path / "part.pt")], timeout_s=120))
    entry.main([*FS, "--ckpt-dir", str(ckpt), "--out", str(tmp_path / "resumed.pt")])
    assert load_checkpoint(ckpt / "last.pt")["world_size"] == 1
    d = max_diff(weights(tmp_path / "resumed.pt"), weights(one_process / "fs.pt"))
    print(f"2 processes to step 2, then 1 process: max diff {d:.3g}")
    assert d <= TOL
    from ttslab.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="other settings"):  # another schedule would not continue this run
        entry.main([*FS[:-1], "0.01", "--ckpt-dir", str(ckpt), "--steps", "6"])


def test_launcher_stops_a_run_that_times_out(tmp_path):
    script = tmp_path / "hang.py"
    script.write_text("import time\ntime.sleep(120)\n")
    result = launch([str(script)], module=None, nproc_per_node=2, timeout_s=3, grace_s=1)
    assert result.timed_out and not result.ok
    assert len(result.pids) >= 3  # torchrun and its two workers were seen ...
    assert result.left_alive == []  # ... and none of them is alive
    assert result.seconds < 30
    with pytest.raises(RuntimeError, match="timed out"):
        result.check()


def test_launcher_kills_workers_that_left_the_launchers_process_group(tmp_path):
    """torchrun starts each worker in a session of its own: if torchrun itself dies without stopping them
    (SIGKILL, a crash), stopping its process group misses them. The launcher kills them by PID."""
    import sys

    from ttslab.distributed.launch import run_commands

    script = tmp_path / "parent.py"
    script.write_text("import subprocess, sys, time\n"
                      "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
                      "time.sleep(120)\n")
    result = run_commands([[sys.executable, str(script)]], timeout_s=3, grace_s=1)
    assert result.timed_out and len(result.pids) == 2, result.pids
    assert result.left_alive == [], result.left_alive


def test_the_entry_point_refuses_a_batch_too_small_to_shard(tmp_path, ci_corpus):
    with pytest.raises(ValueError, match="cannot feed"):
        entry.main([*FS, "--batch-size", "1", "--accumulate", "2", "--out", str(tmp_path / "x.pt")])
    assert not torch.distributed.is_initialized()
