"""A federated training run for the crash-and-resume test (tests/test_federated_resilience.py).

    python tests/federated_resume_job.py OUT.pt ROUNDS [CHECKPOINT_DIR] [PAUSE_S]

Trains a small MLP over 6 clients with DP-FedAvg around FedAdam (clipping, Gaussian noise, server
moments, an accountant: every piece of server state a resume must restore), sampling 3 clients a round
with dropouts and stragglers, and writes the final weights, epsilon and the accountant's rounds to
OUT.pt. With CHECKPOINT_DIR the simulator checkpoints after every round and resumes from the newest
checkpoint; PAUSE_S sleeps after each round so a test can kill the process mid-run.
"""

import sys
import time

import torch

from ttslab.config import set_threads
from ttslab.federated import ClientConfig, ClientData, FedAdam
from ttslab.federated.privacy import DPFedAvg
from ttslab.federated.simulator import SimulationConfig, simulate
from ttslab.io import atomic_write_bytes


def model_fn():
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 2))


def loss_fn(model, batch):
    err = model(batch["x"]) - batch["y"]
    return (err ** 2).mean(), {}


def collate(items):
    return {"x": torch.stack([it["x"] for it in items]), "y": torch.stack([it["y"] for it in items])}


def client(k):
    g = torch.Generator().manual_seed(100 + k)
    a = torch.randn(2, 4, generator=g)
    items = []
    for _ in range(5 + 2 * k):
        x = torch.randn(4, generator=g)
        items.append({"x": x, "y": a @ x})
    return ClientData(k, items, collate)


def main(out, rounds, folder=None, pause=0.0):
    set_threads(1)
    strategy = DPFedAvg(max_norm=0.5, noise_multiplier=0.8, sample_rate=3 / 6, inner=FedAdam(server_lr=0.05), seed=7)
    sim = SimulationConfig(rounds=rounds, clients_per_round=3, dropout=0.2, straggler=0.3, seed=5, checkpoint_dir=folder)

    def evaluate_fn(weights, t):
        time.sleep(pause)                  # a slow server: time for the test to kill it mid-run
        return {}

    result = simulate(model_fn, loss_fn, [client(k) for k in range(6)], strategy,
                      ClientConfig(local_steps=2, batch_size=4, lr=0.05, optimizer="sgd", seed=3), sim,
                      evaluate_fn=evaluate_fn, progress=False)
    import io

    buf = io.BytesIO()
    torch.save({"weights": dict(result.weights), "epsilon": strategy.epsilon(), "resumed_from": result.resumed_from,
                "counted": [h[0] for h in strategy.accountant.history]}, buf)
    atomic_write_bytes(out, buf.getvalue())


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None,
         float(sys.argv[4]) if len(sys.argv) > 4 else 0.0)
