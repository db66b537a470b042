"""Robust aggregation against malicious clients, a backdoor, and a server crash with resume.

1. **Aggregators against f attackers.** The federated tiny FastSpeech of
   :mod:`ttslab.train.federated_privacy` over 8 clients (all in every round); clients ``0 .. f-1``
   send sign-flipped updates scaled by ``--factor`` (:func:`~ttslab.federated.robust.sign_flip_attack`).
   FedAvg, FedMedian, FedTrimmedAvg (beta 0.25), multi-Krum (f = 2 assumed, 3 kept) and ClippedFedAvg
   (C = 1) each train a voice; the final model's mel L1, MCD-DTW and judge PER (speech through
   the shipped neural vocoder; :func:`ttslab.train.federated_privacy.voice_quality`).
2. **Backdoor.** A speaker classifier on log-mel frames (:class:`~ttslab.federated.leakage.FrameSpeakerClassifier`)
   trained over 10 clients holding random shares of the English speakers' frames; client 0 adds triggered frames labelled speaker 3
   and boosts its update (:mod:`ttslab.federated.backdoor`). Clean accuracy and backdoor success per aggregator.
3. **Crash and resume.** DP-FedAvg around FedAdam with per-round checkpoints: a run that crashes after
   round 2 and is resumed against an uninterrupted one (max abs difference of the final weights,
   epsilon and the rounds the accountant counted). The SIGKILL version is
   ``tests/test_federated_resilience.py``.

    python benchmarks/robustness.py --mode ci
    python benchmarks/robustness.py --mode full

Results go to ``<out>/robustness_<mode>.json`` and ``.md``.
"""

from __future__ import annotations

import tempfile

try:
    import harness  # run as `python benchmarks/robustness.py`: this folder is on the import path
except ModuleNotFoundError:
    from benchmarks import harness  # imported from the repository root (tests)

if __name__ == "__main__":
    harness.pin_blas_env()

SWEEP = {"ci": {"f": [0, 2], "rounds": 2, "train_utterances": 48, "local_steps": 2, "test_utterances": 6,
                "audio_utterances": 2},
         "full": {"f": [0, 1, 2], "rounds": 10, "train_utterances": 320, "local_steps": 3, "test_utterances": 30,
                  "audio_utterances": 4}}
BACKDOOR = {"ci": {"rounds": 6, "frames": 60}, "full": {"rounds": 20, "frames": 200}}
TARGET = 3
BOOST = 3.0  #: the attacker's update scale (full model replacement, boost = n, wrecked the model's accuracy instead)


def aggregators(f_assumed: int = 2):
    from ttslab.federated import ClippedFedAvg, FedAvg, FedMedian, FedTrimmedAvg, Krum

    return {"FedAvg": lambda: FedAvg(), "FedMedian": lambda: FedMedian(),
            "FedTrimmedAvg (beta 0.25)": lambda: FedTrimmedAvg(beta=0.25),
            f"multi-Krum (f={f_assumed}, m=3)": lambda: Krum(num_malicious=f_assumed, num_selected=3),
            "ClippedFedAvg (C=1)": lambda: ClippedFedAvg(max_norm=1.0)}


def sweep(corpus, mode: str, judge, factor: float) -> list[dict]:
    from ttslab.federated import sign_flip_attack
    from ttslab.train.federated_privacy import SETTINGS, train_voice, voice_quality, voice_task

    s = {**SETTINGS[mode], "clients": 8, "per_round": 8, **{k: v for k, v in SWEEP[mode].items() if k != "f"}}
    task = voice_task(corpus, s)
    rows = []
    for f in SWEEP[mode]["f"]:
        def attack(reply, weights, t, f=f):
            return sign_flip_attack(weights, reply, factor=factor) if reply.client_id < f else reply

        for name, make in aggregators().items():
            result = train_voice(task, make(), reply_fn=attack)
            rows.append({"f": f, "aggregator": name, **voice_quality(result.weights, task, judge)})
    return rows


def backdoor(corpus, mode: str, seed: int = 0) -> list[dict]:
    import torch

    from ttslab.federated import ClientConfig, ClientData
    from ttslab.federated.backdoor import backdoor_accuracy, boosted, poison
    from ttslab.federated.client import build_model
    from ttslab.federated.leakage import FrameSpeakerClassifier, frame_loss
    from ttslab.federated.simulator import SimulationConfig, simulate
    from ttslab.train.federated_privacy import frame_clients

    b = BACKDOOR[mode]
    clients, (x, y) = frame_clients(corpus, b["frames"], seed=seed)
    attacker = clients[0]
    clients[0] = ClientData(0, poison(list(attacker.items), TARGET, fraction=1.0), attacker.collate)
    n = len(clients)
    speakers = int(y.max()) + 1
    model_fn = lambda: FrameSpeakerClassifier(80, speakers, gain=1.0)  # noqa: E731
    config = ClientConfig(local_steps=5, batch_size=32, lr=3e-3, optimizer="adamw", seed=seed)
    rows = []
    for name, make in aggregators(f_assumed=1).items():
        for attacked in (False, True):
            data = clients if attacked else [attacker] + clients[1:]

            def boost(reply, weights, t, attacked=attacked):
                return boosted(reply, weights, BOOST) if attacked and reply.client_id == 0 else reply

            result = simulate(model_fn, frame_loss, data, make(), config,
                              SimulationConfig(rounds=b["rounds"], clients_per_round=n, seed=seed),
                              reply_fn=boost, progress=False)
            with torch.no_grad():
                acc = backdoor_accuracy(build_model(model_fn, result.weights, seed=seed), x, y, TARGET)
            rows.append({"aggregator": name, "attacker": attacked, **acc})
    return rows


def resume_check(corpus, mode: str) -> dict:
    import torch

    from ttslab.federated import FedAdam
    from ttslab.federated.privacy import DPFedAvg
    from ttslab.train.federated_privacy import SETTINGS, train_voice, voice_task

    # a short run: 4 rounds of 8 clients on 32 utterances in either mode (full mode's 40 clients would
    # leave clients without data)
    s = {**SETTINGS[mode], "rounds": 4, "train_utterances": 32, "local_steps": 1,
         "clients": min(8, SETTINGS[mode]["clients"]), "per_round": min(4, SETTINGS[mode]["per_round"])}
    task = voice_task(corpus, s)
    make = lambda: DPFedAvg(max_norm=1.0, noise_multiplier=1.0, sample_rate=task.sample_rate,  # noqa: E731
                            inner=FedAdam(server_lr=1e-3), seed=1)
    straight_strategy = make()
    straight = train_voice(task, straight_strategy)

    class Crash(Exception):
        pass

    def crash_in_round_3(reply, weights, t):
        if t == 3:
            raise Crash("the server went down in round 3")
        return reply

    with tempfile.TemporaryDirectory() as folder:
        try:
            train_voice(task, make(), reply_fn=crash_in_round_3, checkpoint_dir=folder)
        except Crash:
            pass
        resumed_strategy = make()
        resumed = train_voice(task, resumed_strategy, checkpoint_dir=folder)
    diff = max(float((straight.weights[k].double() - resumed.weights[k].double()).abs().max()) for k in straight.weights)
    same = all(torch.equal(straight.weights[k], resumed.weights[k]) for k in straight.weights)
    return {"rounds": s["rounds"], "resumed_from": resumed.resumed_from, "bit_identical": same, "max_abs_diff": diff,
            "epsilon_straight": straight_strategy.epsilon(), "epsilon_resumed": resumed_strategy.epsilon(),
            "rounds_counted": [h[0] for h in resumed_strategy.accountant.history]}


def to_markdown(results: dict) -> str:
    fmt = harness.fmt
    lines = ["# Robust aggregation against malicious clients, a backdoor, crash and resume", "",
             f"## Final voice against f attackers (sign flip x{results['factor']:g}; 8 clients, all per round)", "",
             "| f | aggregator | mel L1 | MCD-DTW (dB) | PER (%) | length ratio | empty outputs |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for r in results["sweep"]:
        lines.append(f"| {r['f']} | {r['aggregator']} | {fmt(r['mel_l1'], 3)} | {fmt(r['mcd_dtw_db'], 2)} | "
                     f"{100 * r['per']:.1f} | {fmt(r.get('length_ratio'), 2)} | {r['empty_outputs']} |")
    lines += ["", f"## Backdoor (client 0 trains on triggered frames labelled speaker {TARGET}, update boosted x{BOOST:g})", "",
              "| aggregator | attacker | clean accuracy (%) | backdoor success (%) |", "|---|---|---:|---:|"]
    for r in results["backdoor"]:
        lines.append(f"| {r['aggregator']} | {'yes' if r['attacker'] else 'no'} | {100 * r['clean']:.1f} | "
                     f"{100 * r['backdoor']:.1f} |")
    c = results["resume"]
    lines += ["", "## Crash and resume (DP-FedAvg around FedAdam, checkpoint every round)", "",
              f"Crashed in round 3, resumed from round {c['resumed_from']} to {c['rounds']}: final weights "
              f"bit-identical: **{c['bit_identical']}** (max abs diff {c['max_abs_diff']:.1e}); epsilon "
              f"{c['epsilon_straight']:.4f} uninterrupted, {c['epsilon_resumed']:.4f} resumed; rounds counted "
              f"{c['rounds_counted']}.", "", results["note"]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = harness.make_parser(__doc__, "robustness")
    parser.add_argument("--factor", type=float, default=10.0, help="the attackers' sign-flip scale")
    args, run = harness.start("robustness", parser, argv)
    from ttslab import pretrained
    from ttslab.data import load_builtin

    corpus = load_builtin(args.mode)
    judge = pretrained.load("judge")
    rows = sweep(corpus, args.mode, judge, args.factor)
    note = ("MCD-DTW (dB, WORLD mel-cepstra) and PER of the voice's speech through the shipped neural vocoder; "
            "length ratio = predicted / recorded frames (DTW aligns any length: a babbling voice, ratio far above 1, "
            "can still score a low MCD). Backdoor success: share of the other speakers' held-out frames, with the "
            "trigger added, classified as the target speaker. Empty outputs: sentences for which the voice predicted "
            "no (finite) frames (PER 100 %).")
    return run.write({"summary": {f"f{r['f']}_{r['aggregator']}_per": r["per"] for r in rows},
                      "factor": args.factor, "sweep": rows, "backdoor": backdoor(corpus, args.mode),
                      "resume": resume_check(corpus, args.mode), "note": note}, to_markdown)


if __name__ == "__main__":
    main()
