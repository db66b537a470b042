"""Secure aggregation against plain FedAvg: bytes and seconds per round, and the error of the mean.

Random replies shaped like a small model (``--elements`` float32 weights in a few named tensors) from
``--clients`` clients go through :func:`ttslab.federated.secure_fedavg` (fixed point mod 2^64, 24
fractional bits, threshold ``floor(n/2) + 1``) with 0 and with ``--drop`` clients dropping out after
committing, and through :class:`ttslab.federated.FedAvg`. Per configuration: bytes on the wire (masked
vectors, Shamir shares at setup, shares revealed for recovery) against plain FedAvg (``num_bytes`` of
each update plus ``n_k``), setup / mask / unmask seconds (best of ``--repeats``) against FedAvg's
aggregation, and the largest difference of the two means against the bound ``|S| 2^-f / 2 / sum n_k``.

    python benchmarks/secure_aggregation.py --mode ci       # 8 clients, 20k weights (~2 s)
    python benchmarks/secure_aggregation.py --mode full     # 8 and 32 clients, 200k weights

Results go to ``<out>/secure_aggregation_<mode>.json`` and ``.md``.
"""

from __future__ import annotations

import time
from collections import OrderedDict

try:
    import harness  # run as `python benchmarks/secure_aggregation.py`: this folder is on the import path
except ModuleNotFoundError:
    from benchmarks import harness  # imported from the repository root (tests)

if __name__ == "__main__":
    harness.pin_blas_env()  # one BLAS thread, before numpy/torch start their pools

SETTINGS = {"ci": {"clients": [8], "elements": 20_000}, "full": {"clients": [8, 32], "elements": 200_000}}


def make_replies(clients: int, elements: int, seed: int = 0):
    import torch

    from ttslab.federated import Reply

    g = torch.Generator().manual_seed(seed)
    shapes = OrderedDict([("encoder.weight", (elements // 2,)), ("encoder.bias", (elements // 4,)),
                          ("decoder.weight", (elements - elements // 2 - elements // 4,))])
    make = lambda: OrderedDict((n, 0.1 * torch.randn(s, generator=g)) for n, s in shapes.items())  # noqa: E731
    return make(), [Reply(k, make(), 10 + 7 * k) for k in range(clients)]


def measure(clients: int, elements: int, drop: int, repeats: int) -> dict:
    from ttslab.federated import FedAvg, FixedPoint, max_abs_diff, secure_fedavg

    g, replies = make_replies(clients, elements)
    dropped = list(range(drop))
    kept = [r for r in replies if r.client_id not in dropped]
    codec = FixedPoint(64, 24)
    best, plain_s = None, float("inf")
    for _ in range(repeats):
        out, _, cost = secure_fedavg(g, replies, dropped=dropped, seed=1, server_round=1, codec=codec)
        total = cost.setup_s + cost.mask_s + cost.unmask_s
        if best is None or total < best[1].setup_s + best[1].mask_s + best[1].unmask_s:
            best = (out, cost)
        start = time.perf_counter()
        plain = FedAvg().aggregate(g, kept, server_round=1)
        plain_s = min(plain_s, time.perf_counter() - start)
    out, cost = best
    bound = len(kept) * codec.step / 2 / sum(r.num_examples for r in kept)
    return {"clients": clients, "elements": elements, "dropped": drop, **cost.as_dict(), "fedavg_s": plain_s,
            "max_abs_diff": max_abs_diff(out, plain), "bound_before_float32_cast": bound}


def to_markdown(results: dict) -> str:
    lines = ["# Secure aggregation against plain FedAvg", "",
             "| clients | dropped | weights | plain bytes | secure bytes (masked + shares + revealed) | ratio | "
             "setup s | mask s (all clients) | unmask s | FedAvg s | max abs diff |",
             "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in results["runs"]:
        lines.append(f"| {r['clients']} | {r['dropped']} | {r['elements']} | {r['plain_bytes']} | {r['secure_bytes']} "
                     f"({r['masked_bytes']} + {r['share_bytes']} + {r['reveal_bytes']}) | {r['bytes_ratio']:.2f} | "
                     f"{r['setup_s']:.4f} | {r['mask_s']:.4f} | {r['unmask_s']:.4f} | {r['fedavg_s']:.4f} | "
                     f"{r['max_abs_diff']:.2e} |")
    lines += ["", results["note"]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = harness.make_parser(__doc__, "secure_aggregation")
    parser.add_argument("--drop", type=int, default=2, help="clients that drop out after committing")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration (best time kept)")
    args, run = harness.start("secure_aggregation", parser, argv)
    settings = SETTINGS[args.mode]
    runs = [measure(n, settings["elements"], d, args.repeats) for n in settings["clients"] for d in (0, args.drop)]
    note = ("Masked vectors are 64-bit ring elements (2x float32) plus one element for n_k; shares cost "
            "8 n (n-1)^2 bytes per round whatever the model size, so the ratio tends to 2 for large models. "
            "Mask time is one PRG expansion per peer per client (O(n^2 L) in total); each dropout costs the "
            "server |S| more expansions. max abs diff is after the float32 cast (one float32 ulp on top of "
            "the fixed-point bound).")
    return run.write({"summary": {f"n{r['clients']}_d{r['dropped']}_ratio": r["bytes_ratio"] for r in runs},
                      "runs": runs, "settings": settings, "note": note}, to_markdown)


if __name__ == "__main__":
    main()
