"""Training an HTS-style voice: monophone state segmentation, statistics, clustering, GV (see the package docstring)."""

from __future__ import annotations

import time
from typing import Mapping, Sequence

import numpy as np

from ttslab.classical import hmm
from ttslab.classical.hts.config import STREAMS, HTSConfig
from ttslab.classical.hts.durations import spread_states
from ttslab.classical.hts.voice import Voice
from ttslab.classical.mlpg import global_variance
from ttslab.classical.tree import ItemStatistics, Tree, grow_tree
from ttslab.data.speakers import espeak_voice_for
from ttslab.dsp.streams import Observations, extract_features, phone_frame_ranges, split_features


def _phone_hmm(X_segments: list[np.ndarray], n_states: int, variance_floor: np.ndarray) -> hmm.HMM:
    """A left-to-right HMM started from the uniform segmentation of ``X_segments`` (HTK's HInit, one pass)."""
    X = np.concatenate(X_segments)
    states = np.concatenate([spread_states(len(x), n_states) for x in X_segments])
    counts = np.bincount(states, minlength=n_states)[:, None].astype(np.float64)
    means = np.stack([X[states == s].mean(axis=0) for s in range(n_states)])
    second = np.stack([(X[states == s] ** 2).sum(axis=0) for s in range(n_states)])
    covars = np.maximum(second / counts - means**2, variance_floor)
    emission = hmm.GaussianEmission(means, covars, variance_floor=variance_floor)
    end = np.zeros(n_states)
    end[-1] = 1.0  # every path ends in the last state: the phone is over at its boundary
    return hmm.HMM(n_states, emission, topology="left-to-right", params="tmc", endprob=end)


def _baum_welch_step(model: hmm.HMM, X_segments: list[np.ndarray]) -> float:
    """One Baum-Welch iteration over the segments of one phone; returns their total log-likelihood."""
    stats = model.expected_statistics(X_segments)
    model.m_step(stats)
    return stats.log_likelihood


def train_monophones(observations: np.ndarray, labels: Sequence[str], ranges: np.ndarray, config: HTSConfig,
                     progress: bool = True) -> dict[str, hmm.HMM]:
    """One left-to-right ``n_states`` HMM per phone, Baum-Welch on its segments (those of >= S frames).

    ``observations`` ``(F, D)`` stacks every frame of the corpus; phone instance ``i`` owns rows
    ``ranges[i, 0]:ranges[i, 1]`` and is a ``labels[i]``. Only the frames inside each phone's own
    boundaries are used, so no phone can drift into its neighbours.
    """
    from tqdm.auto import tqdm

    S = config.n_states
    variance_floor = config.floor_ratio * observations.var(axis=0)
    by_phone: dict[str, list[np.ndarray]] = {}
    for label, (a, b) in zip(labels, ranges):
        if b - a >= S:
            by_phone.setdefault(label, []).append(observations[a:b])
    models = {}
    for label in tqdm(sorted(by_phone), desc="monophone HMMs", unit="phone", disable=not progress):
        model = _phone_hmm(by_phone[label], S, variance_floor)
        for _ in range(config.bw_iterations):
            _baum_welch_step(model, by_phone[label])
        models[label] = model
    return models


def segment_states(observations: np.ndarray, labels: Sequence[str], ranges: np.ndarray,
                   models: Mapping[str, hmm.HMM], n_states: int) -> np.ndarray:
    """State of every frame ``(F,)``: Viterbi inside each phone with its monophone HMM, or
    :func:`spread_states` for phones that are too short or have no model."""
    states = np.zeros(len(observations), dtype=np.int64)
    for label, (a, b) in zip(labels, ranges):
        model = models.get(label)
        if model is not None and b - a >= n_states:
            states[a:b] = model.predict(observations[a:b])
        else:
            states[a:b] = spread_states(b - a, n_states)
    return states


# ----------------------------------------------------------------------------- statistics for clustering


def unit_sums(X: np.ndarray, units: np.ndarray, n_units: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(count, sum x, sum x^2)`` per unit for frames whose (non-decreasing) ``units`` label them.

    Cumulative sums, read at the unit boundaries: ``sum_{t in u} x_t = C[end_u] - C[start_u]``.
    """
    X = np.asarray(X, dtype=np.float64)
    bounds = np.searchsorted(units, np.arange(n_units + 1))
    def window_sum(Y):
        C = np.concatenate([np.zeros((1, Y.shape[1])), np.cumsum(Y, axis=0)])
        return C[bounds[1:]] - C[bounds[:-1]]
    return np.diff(bounds).astype(np.float64), window_sum(X), window_sum(X**2)


def state_statistics(obs: Observations, units: np.ndarray, n_phones: int, n_states: int
                     ) -> dict[str, list[ItemStatistics]]:
    """Per stream, per state position ``s``: the :class:`ItemStatistics` of every phone instance's state ``s``.

    ``units[t] = phone_instance * n_states + state`` of frame ``t``. log-F0 is MSD: voiced frames
    only in ``occupancy``/``first``/``second``, all frames in ``total``.
    """
    n_units = n_phones * n_states
    out = {}
    for name in ("mcep", "bap"):
        n, f, g = unit_sums(obs.stream(name), units, n_units)
        out[name] = [ItemStatistics(n.reshape(n_phones, n_states)[:, s], f.reshape(n_phones, n_states, -1)[:, s],
                                    g.reshape(n_phones, n_states, -1)[:, s]) for s in range(n_states)]
    v = obs.voiced[:, None].astype(np.float64)
    total, nv, _ = unit_sums(v, units, n_units)  # frames, voiced frames
    _, f, g = unit_sums(obs.lf0 * v, units, n_units)  # zeroed unvoiced rows add nothing
    nv, total = nv[:, 0].reshape(n_phones, n_states), total.reshape(n_phones, n_states)
    f, g = f.reshape(n_phones, n_states, -1), g.reshape(n_phones, n_states, -1)
    out["lf0"] = [ItemStatistics(nv[:, s], f[:, s], g[:, s], total=total[:, s]) for s in range(n_states)]
    return out


# ----------------------------------------------------------------------------- training


def _training_utterances(corpus, speaker: str, config: HTSConfig, segments: Mapping | None):
    if speaker not in corpus.speakers:
        raise KeyError(f"speaker {speaker!r} is not in this corpus; it has {corpus.speakers}")
    utts = [u for u in corpus if u.speaker == speaker and u.split == "train"]
    if config.max_utterances is not None:
        utts = utts[: config.max_utterances]
    if not utts:
        raise ValueError(f"speaker {speaker!r} has no training utterances (split 'train')")
    labelled = []
    for u in utts:
        segs = segments.get(u.id) if segments is not None else u.segments
        if segs is None:
            raise ValueError(f"utterance {u.id} has no phone segments; align the corpus first "
                             "(ttslab.classical.align) and pass segments={utt_id: segments}")
        labelled.append((u, list(segs)))
    return labelled


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (feature workers): unlike wall-clock time,
    it does not grow when other programs share the cores."""
    try:
        import resource
    except ImportError:  # not on Windows
        return float("nan")
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def train_voice(corpus, speaker: str, config: HTSConfig | None = None, *, segments: Mapping | None = None,
                progress: bool = True) -> Voice:
    """Train an HTS-style voice on the ``train`` split of ``speaker`` in ``corpus`` (see the module docstring).

    ``segments`` (optional) maps utterance ids to phone segments (label, start, end in samples, word,
    stress) from any source, e.g. a forced aligner; by default each utterance's own ``segments``.
    Deterministic: the same corpus and config give the same voice.
    """
    from tqdm.auto import tqdm

    from ttslab.text.context import answer_matrix, contexts_from_segments, question_set

    config = config or HTSConfig()
    t_start, cpu_start = time.perf_counter(), _cpu_seconds()
    labelled = _training_utterances(corpus, speaker, config, segments)
    features = extract_features([u for u, _ in labelled], config.feature_config(), jobs=config.jobs, cache=config.cache,
                                cache_root=config.cache_root, progress=progress)
    t_features, cpu_features = time.perf_counter() - t_start, _cpu_seconds() - cpu_start

    # frames of every phone, all utterances stacked
    obs_parts, ranges, labels, contexts, offset = [], [], [], [], 0
    for (utt, segs), feats in zip(labelled, features):
        obs_parts.append(Observations.from_features(feats, config.mcep_order))
        ranges.append(phone_frame_ranges(segs, len(feats), config.hop) + offset)
        labels += [s.label for s in segs]
        contexts += contexts_from_segments(segs)
        offset += len(feats)
    obs = Observations.concatenate(obs_parts)
    ranges = np.concatenate(ranges)
    S, P = config.n_states, len(labels)

    # states: monophone HMMs on the spectrum inside each phone, then Viterbi
    models = train_monophones(obs.mcep, labels, ranges, config, progress)
    states = segment_states(obs.mcep, labels, ranges, models, S)
    phone_of_frame = np.repeat(np.arange(P), ranges[:, 1] - ranges[:, 0])
    units = phone_of_frame * S + states
    durations = np.bincount(units, minlength=P * S).reshape(P, S).astype(np.float64)

    # clustering: one tree per stream and state position, one for durations
    questions = question_set()
    names = [q.name for q in questions]
    answers = answer_matrix(questions, contexts)
    stats = state_statistics(obs, units, P, S)
    trees: dict[str, list[Tree]] = {stream: [] for stream in STREAMS}
    jobs = [(stream, s) for s in range(S) for stream in STREAMS]
    for stream, s in tqdm(jobs, desc="clustering", unit="tree", disable=not progress):
        trees[stream].append(grow_tree(stats[stream][s], answers, names, mdl_scale=config.mdl_scale,
                                       min_occupancy=config.min_occupancy, floor_ratio=config.floor_ratio))
    duration_stats = ItemStatistics(np.ones(P), durations, durations**2)
    duration_tree = grow_tree(duration_stats, answers, names, mdl_scale=config.duration_mdl_scale,
                              min_occupancy=config.duration_min_occupancy, floor_ratio=config.floor_ratio)

    # global variance of natural trajectories, one value per utterance; global means for baselines
    mceps, f0s, baps = zip(*(split_features(f, config.mcep_order) for f in features))
    voiced_lf0 = [np.log(f0[f0 > 0])[:, None] for f0 in f0s if (f0 > 0).sum() > 1]
    gv = {"mcep": global_variance(mceps),
          "lf0": global_variance(voiced_lf0) if voiced_lf0 else (np.zeros(1), np.ones(1))}
    global_means = {"mcep": np.concatenate(mceps).mean(axis=0), "bap": np.concatenate(baps).mean(axis=0),
                    "lf0": np.concatenate(voiced_lf0).mean(axis=0) if voiced_lf0 else np.zeros(1)}

    info = {"n_utterances": len(labelled), "n_frames": int(len(obs.voiced)), "n_phones": P,
            "feature_seconds": round(t_features, 2), "training_seconds": round(time.perf_counter() - t_start, 2),
            "model_seconds": round(time.perf_counter() - t_start - t_features, 2),
            "feature_cpu_seconds": round(cpu_features, 2),
            "model_cpu_seconds": round(_cpu_seconds() - cpu_start - cpu_features, 2),
            "leaves": {stream: [t.n_leaves for t in ts] for stream, ts in trees.items()},
            "duration_leaves": duration_tree.n_leaves}
    frontend = espeak_voice_for(speaker, labelled[0][0].language).to_dict()
    return Voice(speaker, config, trees, duration_tree, gv, global_means, frontend, set(labels), info)
