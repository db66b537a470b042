"""Who holds which recordings: partitions of a corpus' utterances into federated clients.

Every function takes the utterances (a :class:`~ttslab.data.corpus.Corpus` or any sequence of objects
with ``.id``, ``.speaker`` and, for :func:`by_language`, ``.language``; :class:`UtteranceKey` is the
smallest such object), optional filters (``speakers``, ``languages``, ``split``), and returns a
:class:`Partition`: client ids ``0 .. K-1`` -> the utterance ids that client holds, each id in exactly
one client, listed in corpus order. A partition is a function of its arguments (and ``seed``) only.

====================  ==============================================================================
:func:`by_speaker`    one client per speaker (the natural non-IID split of TTS: a voice never shared)
:func:`by_language`   one client per language
:func:`dirichlet`     a Dirichlet mix over speakers; ``alpha`` from near one speaker per client
                      (``alpha -> 0``) to near IID (``alpha -> inf``); equal sizes or sizes that
                      follow the mixes (``balanced=False``)
:func:`iid`           the control: shuffle, split evenly
====================  ==============================================================================

How non-IID a partition is: client ``k``'s speaker distribution ``p_k`` (its histogram over ``n_k``)
against the global one ``g`` (all ``N`` selected utterances), by total variation::

    TV_k = 1/2 sum_s |p_k(s) - g(s)|  =  1 - sum_s min(p_k(s), g(s))          (in [0, 1])
    TV   = sum_k (n_k / N) TV_k                        (size-weighted mean: :func:`tv_distance`)

Since ``min(a, b) >= a b`` on [0, 1], ``TV <= 1 - sum_s g(s)^2`` (:func:`max_tv_distance`, the
Gini-Simpson index of ``g``), with equality exactly when every client holds a single speaker, as
:func:`by_speaker` does. :func:`non_iid_index` divides by it: 0 for clients that match ``g``, 1 for
single-speaker clients. An IID client of size ``n`` has ``E[TV_k] <= 1/2 sum_s sqrt(g(s)(1-g(s))/n)``
(Jensen on each term; drawing without replacement only lowers the variance).
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, Mapping, NamedTuple, Sequence

import numpy as np

KINDS = ("speaker", "language", "dirichlet", "iid")


class UtteranceKey(NamedTuple):
    """The fields a partition reads from an utterance (any object with these attributes will do)."""

    id: str
    speaker: str
    language: str = "en"


@dataclass(frozen=True)
class Partition:
    """Client id -> the ids of its utterances (``clients``), with what the summaries need.

    ``speakers``: utterance id -> speaker, for every partitioned utterance; ``labels``: client id -> a
    readable name (the speaker or language of a one-speaker / one-language client); ``params``: how it
    was made (kind, seed, alpha, filters), enough to make it again.
    """

    kind: str
    clients: Mapping[int, tuple[str, ...]]
    speakers: Mapping[str, str]
    labels: Mapping[int, str] = field(default_factory=dict)
    params: Mapping = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.clients)

    @property
    def client_ids(self) -> list[int]:
        return list(self.clients)

    @property
    def num_utterances(self) -> int:
        return sum(len(ids) for ids in self.clients.values())

    def counts(self) -> dict[int, int]:
        """Client id -> number of utterances ``n_k``."""
        return {k: len(ids) for k, ids in self.clients.items()}

    def global_histogram(self) -> dict[str, int]:
        """Speaker -> utterances over all clients (sorted by speaker)."""
        c = Counter(self.speakers[u] for ids in self.clients.values() for u in ids)
        return {s: c[s] for s in sorted(c)}

    def speaker_histograms(self) -> dict[int, dict[str, int]]:
        """Client id -> {speaker: utterances} (speakers it holds, sorted)."""
        out = {}
        for k, ids in self.clients.items():
            c = Counter(self.speakers[u] for u in ids)
            out[k] = {s: c[s] for s in sorted(c)}
        return out

    def utterances(self, corpus, client_id: int) -> list:
        """The utterance objects of one client, looked up in ``corpus`` (a Corpus or a sequence)."""
        if client_id not in self.clients:
            raise KeyError(f"no client {client_id!r}; this partition has clients 0..{len(self) - 1}")
        if hasattr(corpus, "filter") and hasattr(corpus, "speakers"):
            return [corpus[u] for u in self.clients[client_id]]
        by_id = {u.id: u for u in corpus}
        missing = [u for u in self.clients[client_id] if u not in by_id]
        if missing:
            raise KeyError(f"utterances {missing[:3]} of client {client_id} are not in the given corpus")
        return [by_id[u] for u in self.clients[client_id]]

    def summary(self) -> dict:
        """Counts, speaker histograms and the non-IID measures, as a JSON-ready dict."""
        hist = self.speaker_histograms()
        return {"kind": self.kind, "params": dict(self.params), "num_clients": len(self),
                "num_utterances": self.num_utterances, "num_speakers": len(self.global_histogram()),
                "counts": {str(k): n for k, n in self.counts().items()},
                "labels": {str(k): v for k, v in self.labels.items()},
                "speaker_histograms": {str(k): h for k, h in hist.items()},
                "tv_distance": tv_distance(self), "tv_distance_unweighted": tv_distance(self, weighted=False),
                "max_tv_distance": max_tv_distance(self), "non_iid_index": non_iid_index(self)}

    def table(self) -> str:
        """A plain-text table: one row per client with its size, label and top speakers."""
        rows = [f"{'client':>6} {'n':>5} {'TV':>6}  label / speakers"]
        tvs = client_tv_distances(self)
        for k, h in self.speaker_histograms().items():
            top = ", ".join(f"{s}:{c}" for s, c in sorted(h.items(), key=lambda x: (-x[1], x[0]))[:4])
            more = f" (+{len(h) - 4})" if len(h) > 4 else ""
            rows.append(f"{k:>6} {sum(h.values()):>5} {tvs[k]:6.3f}  {self.labels.get(k, '')} {top}{more}".rstrip())
        return "\n".join(rows)


# --- selection ------------------------------------------------------------------------------------

def _names(value, what: str) -> set[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    value = set(value)
    if not value:
        raise ValueError(f"the {what} filter is empty: give None for no filter")
    return value


def select_utterances(utterances: Iterable, *, speakers: str | Iterable[str] | None = None,
                      languages: str | Iterable[str] | None = None, split: str | None = None) -> list:
    """The utterances that pass every given filter, in their order; clear errors for an empty corpus,
    duplicate ids, unknown speakers or languages, and filters that leave nothing.

    >>> select_utterances([UtteranceKey("a1", "a"), UtteranceKey("b1", "b")], speakers="b")
    [UtteranceKey(id='b1', speaker='b', language='en')]
    """
    utts = list(utterances)
    if not utts:
        raise ValueError("the corpus is empty: there is nothing to partition")
    for u in utts[:1]:
        if not (hasattr(u, "id") and hasattr(u, "speaker")):
            raise TypeError(f"utterances need .id and .speaker (a Corpus, Utterance or UtteranceKey), got "
                            f"{type(u).__name__}")
    ids = [u.id for u in utts]
    if len(set(ids)) != len(ids):
        dup = [i for i, c in Counter(ids).items() if c > 1]
        raise ValueError(f"duplicate utterance ids {dup[:3]}: every utterance must go to exactly one client")
    spk, lang = _names(speakers, "speakers"), _names(languages, "languages")
    known_spk = {u.speaker for u in utts}
    if spk is not None and (unknown := spk - known_spk):
        raise ValueError(f"unknown speaker(s) {sorted(unknown)}; the utterances have {sorted(known_spk)}")
    if lang is not None:
        known_lang = {getattr(u, "language", None) for u in utts}
        if unknown := lang - known_lang:
            raise ValueError(f"unknown language(s) {sorted(unknown)}; the utterances have "
                             f"{sorted(str(x) for x in known_lang)}")
    chosen = [u for u in utts
              if (spk is None or u.speaker in spk)
              and (lang is None or getattr(u, "language", None) in lang)
              and (split is None or getattr(u, "split", None) == split)]
    if not chosen:
        raise ValueError(f"the filters speakers={sorted(spk) if spk else None}, languages="
                         f"{sorted(lang) if lang else None}, split={split!r} leave no utterance "
                         f"(splits present: {sorted({str(getattr(u, 'split', None)) for u in utts})})")
    return chosen


def _check_clients(num_clients, n: int) -> int:
    if isinstance(num_clients, bool) or not isinstance(num_clients, (int, np.integer)) or num_clients < 1:
        raise ValueError(f"num_clients must be an int >= 1, got {num_clients!r}")
    if num_clients > n:
        raise ValueError(f"{num_clients} clients but only {n} utterances: every client needs at least one "
                         f"(use fewer clients or more data)")
    return int(num_clients)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return int(seed)


def balanced_sizes(n: int, num_clients: int) -> list[int]:
    """``n`` split into ``num_clients`` sizes differing by at most one, the larger first.

    >>> balanced_sizes(10, 4)
    [3, 3, 2, 2]
    """
    q, r = divmod(n, num_clients)
    return [q + 1 if k < r else q for k in range(num_clients)]


def _build(kind: str, chosen: list, groups: list[list[str]], labels: dict, params: dict) -> Partition:
    order = {u.id: i for i, u in enumerate(chosen)}
    clients = OrderedDict((k, tuple(sorted(g, key=order.__getitem__))) for k, g in enumerate(groups))
    return Partition(kind, clients, {u.id: u.speaker for u in chosen}, labels, params)


def _filters(speakers, languages, split) -> dict:
    listed = lambda v: None if v is None else ([v] if isinstance(v, str) else sorted(v))  # noqa: E731
    return {"speakers": listed(speakers), "languages": listed(languages), "split": split}


# --- the four partitions --------------------------------------------------------------------------

def by_speaker(utterances: Iterable, *, speakers=None, languages=None, split: str | None = None) -> Partition:
    """One client per speaker, speakers in sorted order (client ``k`` is the ``k``-th speaker by name;
    ``labels[k]`` names it). No randomness. Every client is single-speaker, so :func:`tv_distance`
    reaches :func:`max_tv_distance`.

    >>> p = by_speaker([UtteranceKey("b1", "b"), UtteranceKey("a1", "a"), UtteranceKey("b2", "b")])
    >>> dict(p.clients), p.labels
    ({0: ('a1',), 1: ('b1', 'b2')}, {0: 'a', 1: 'b'})
    """
    chosen = select_utterances(utterances, speakers=speakers, languages=languages, split=split)
    names = sorted({u.speaker for u in chosen})
    groups = [[u.id for u in chosen if u.speaker == s] for s in names]
    return _build("speaker", chosen, groups, dict(enumerate(names)),
                  {"kind": "speaker", **_filters(speakers, languages, split)})


def by_language(utterances: Iterable, *, speakers=None, languages=None, split: str | None = None) -> Partition:
    """One client per language (sorted by code; ``labels[k]`` names it). No randomness."""
    chosen = select_utterances(utterances, speakers=speakers, languages=languages, split=split)
    missing = [u.id for u in chosen if getattr(u, "language", None) is None]
    if missing:
        raise ValueError(f"utterances {missing[:3]} have no .language; by_language needs one per utterance")
    names = sorted({u.language for u in chosen})
    groups = [[u.id for u in chosen if u.language == lang] for lang in names]
    return _build("language", chosen, groups, dict(enumerate(names)),
                  {"kind": "language", **_filters(speakers, languages, split)})


def iid(utterances: Iterable, num_clients: int, *, seed: int = 0, speakers=None, languages=None,
        split: str | None = None) -> Partition:
    """The IID control: a permutation of the utterances (``numpy.random.default_rng(seed).permutation``)
    cut into :func:`balanced_sizes` consecutive pieces. Each client is a simple random sample without
    replacement, so its speaker mix matches the global one up to sampling noise.

    >>> p = iid([UtteranceKey(f"u{i}", "ab"[i % 2]) for i in range(5)], 2, seed=0)
    >>> p.counts(), p.num_utterances
    ({0: 3, 1: 2}, 5)
    """
    chosen = select_utterances(utterances, speakers=speakers, languages=languages, split=split)
    k = _check_clients(num_clients, len(chosen))
    seed = _check_seed(seed)
    perm = np.random.default_rng(seed).permutation(len(chosen))
    groups, start = [], 0
    for size in balanced_sizes(len(chosen), k):
        groups.append([chosen[i].id for i in perm[start:start + size]])
        start += size
    return _build("iid", chosen, groups, {c: f"iid-{c}" for c in range(k)},
                  {"kind": "iid", "num_clients": k, "seed": seed, **_filters(speakers, languages, split)})


def check_alpha(alpha) -> float:
    """Dirichlet concentration as a float; ``ValueError`` unless finite and > 0."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not math.isfinite(alpha) \
            or alpha <= 0:
        raise ValueError(f"the Dirichlet concentration alpha must be a finite number > 0 (small: about one "
                         f"speaker per client; large: about IID), got {alpha!r}")
    return float(alpha)


def _draw(weights: np.ndarray, u: float) -> int:
    """The first index whose cumulative weight exceeds ``u`` times the total (inverse CDF), skipping
    zero weights (which rounding at the top of the CDF could otherwise land on)."""
    cdf = np.cumsum(weights)
    i = min(int(np.searchsorted(cdf, u * cdf[-1], side="right")), len(weights) - 1)
    while weights[i] <= 0:
        i -= 1
    return i


def dirichlet(utterances: Iterable, num_clients: int, alpha: float, *, seed: int = 0, balanced: bool = True,
              speakers=None, languages=None, split: str | None = None) -> Partition:
    """Clients with Dirichlet-distributed speaker mixes (after Hsu, Qi & Brown 2019), every utterance
    in exactly one client. With ``S`` speakers (sorted by name), ``N`` utterances, ``K`` clients and
    ``rng = numpy.random.default_rng(seed)``, in this order:

    1. pools: per speaker in name order, its utterances in ``rng.permutation`` order;
    2. mixes: ``Q = rng.dirichlet([alpha] * S, size=K)``, row ``q_k`` is client ``k``'s target mix;
    3. ``balanced=True`` (Hsu et al.'s equal sizes): ``n_k`` = :func:`balanced_sizes` ``(N, K)``; round
       robin over slots ``t = 0, 1, ...`` and clients ``k = 0..K-1`` with ``n_k > t``: pick a speaker
       ``s`` with probability ``q_k(s) / sum_{s' in A} q_k(s')`` over the set ``A`` of speakers with
       utterances left (inverse CDF at ``rng.random()``), and give ``k`` the next utterance of ``s``'s
       pool. When ``q_k`` is zero on all of ``A`` (it can be, in floating point, for tiny ``alpha``),
       weight ``A`` by the remaining utterances instead: a uniform draw of what is left.
    4. ``balanced=False`` (sizes follow the mixes): slot ``t = 0`` as above, so no client is empty;
       then, speaker by speaker in name order, each remaining utterance of ``s`` in pool order goes to
       client ``k`` with probability ``q_k(s) / sum_j q_j(s)`` (inverse CDF at ``rng.random()``;
       uniform over clients if that column is all zero).

    Drawing without replacement is what keeps every utterance in one client; the round robin shares
    the depletion of popular speakers fairly among clients instead of starving the last ones.
    ``alpha -> inf``: every ``q_k`` is uniform, so each client ends near the global mix (IID).
    ``alpha -> 0``: each ``q_k`` is nearly one-hot. Unbalanced, a speaker then goes (almost) whole to
    the client(s) that favour it: about one speaker per client, with sizes as uneven as the speakers'.
    Balanced, a client of ``N/K`` utterances holds more than one speaker whenever its favourite has
    fewer, or other clients favour it too; on the CI corpus (14 speakers of 12 or 50 utterances, 14
    clients, ``alpha = 0.05``) the non-IID index is 0.70, not 1 (:func:`by_speaker` is the limit).
    Hsu et al. draw ``Dir(alpha' p)`` with a prior ``p``; for a uniform prior over ``S`` speakers this
    ``alpha`` is their ``alpha' / S``.

    >>> utts = [UtteranceKey(f"{s}{i}", s) for s in "abcd" for i in range(6)]
    >>> [round(tv_distance(dirichlet(utts, 4, a, seed=0)), 2) for a in (0.01, 1000)]
    [0.44, 0.23]
    >>> round(tv_distance(dirichlet(utts, 4, 0.01, seed=0, balanced=False)), 2)
    0.55
    """
    chosen = select_utterances(utterances, speakers=speakers, languages=languages, split=split)
    k_clients = _check_clients(num_clients, len(chosen))
    alpha, seed = check_alpha(alpha), _check_seed(seed)
    rng = np.random.default_rng(seed)
    sizes = balanced_sizes(len(chosen), k_clients) if balanced else [1] * k_clients
    names = sorted({u.speaker for u in chosen})
    pools = []
    for s in names:
        ids = [u.id for u in chosen if u.speaker == s]
        pools.append([ids[i] for i in rng.permutation(len(ids))])
    q = rng.dirichlet(np.full(len(names), alpha), size=k_clients)
    left = np.array([len(p) for p in pools], dtype=np.int64)
    taken = np.zeros(len(names), dtype=np.int64)
    groups: list[list[str]] = [[] for _ in range(k_clients)]
    for t in range(max(sizes)):
        for k in range(k_clients):
            if sizes[k] <= t:
                continue
            w = np.where(left > 0, q[k], 0.0)
            if not w.sum() > 0:
                w = left.astype(np.float64)
            s = _draw(w, rng.random())
            groups[k].append(pools[s][taken[s]])
            taken[s] += 1
            left[s] -= 1
    if not balanced:
        for s in range(len(names)):
            column = q[:, s] if q[:, s].sum() > 0 else np.ones(k_clients)
            for uid in pools[s][taken[s]:]:
                groups[_draw(column, rng.random())].append(uid)
    return _build("dirichlet", chosen, groups, {c: f"dir-{c}" for c in range(k_clients)},
                  {"kind": "dirichlet", "num_clients": k_clients, "alpha": alpha, "seed": seed,
                   "balanced": bool(balanced), **_filters(speakers, languages, split)})


def make_partition(kind: str, utterances: Iterable, **options) -> Partition:
    """:func:`by_speaker`, :func:`by_language`, :func:`dirichlet` or :func:`iid` by name (``kind`` as
    in ``Partition.params``), so a recipe or a Flower node can rebuild a partition from its params."""
    funcs = {"speaker": by_speaker, "language": by_language, "dirichlet": dirichlet, "iid": iid}
    if kind not in funcs:
        raise ValueError(f"unknown partition kind {kind!r}; use one of {KINDS}")
    options = {k: v for k, v in options.items() if k != "kind"}
    return funcs[kind](utterances, **options)


# --- how non-IID ----------------------------------------------------------------------------------

def _histograms(partition_or_hists) -> tuple[list, list[dict[str, int]]]:
    if isinstance(partition_or_hists, Partition):
        h = partition_or_hists.speaker_histograms()
    else:
        h = dict(partition_or_hists)
    if not h:
        raise ValueError("no clients to measure")
    return list(h), [dict(v) for v in h.values()]


def global_distribution(histograms) -> dict[str, float]:
    """``g(s)``: the speaker distribution of all clients together (a Partition or {client: {speaker: n}})."""
    _, hs = _histograms(histograms)
    total = Counter()
    for h in hs:
        total.update(h)
    n = sum(total.values())
    if n == 0:
        raise ValueError("the clients hold no utterances")
    return {s: total[s] / n for s in sorted(total)}


def client_tv_distances(histograms) -> dict:
    """``TV_k = 1/2 sum_s |p_k(s) - g(s)|`` per client (see the module docstring).

    >>> client_tv_distances({0: {"a": 2}, 1: {"a": 1, "b": 1}})
    {0: 0.25, 1: 0.25}
    """
    ids, hs = _histograms(histograms)
    g = global_distribution(dict(zip(ids, hs)))
    out = {}
    for k, h in zip(ids, hs):
        n = sum(h.values())
        if n == 0:
            raise ValueError(f"client {k!r} holds no utterances: its speaker distribution is undefined")
        out[k] = 0.5 * sum(abs(h.get(s, 0) / n - g[s]) for s in g)
    return out


def tv_distance(histograms, *, weighted: bool = True) -> float:
    """Mean ``TV_k`` over clients, weighted by size ``n_k / N`` (default) or plain. The weighted mean
    is bounded by :func:`max_tv_distance`, reached iff every client is single-speaker.

    >>> tv_distance({0: {"a": 3}, 1: {"b": 1}}), tv_distance({0: {"a": 3}, 1: {"b": 1}}, weighted=False)
    (0.375, 0.5)
    """
    ids, hs = _histograms(histograms)
    tvs = client_tv_distances(dict(zip(ids, hs)))
    if not weighted:
        return float(sum(tvs.values()) / len(tvs))
    sizes = {k: sum(h.values()) for k, h in zip(ids, hs)}
    return float(sum(sizes[k] * tvs[k] for k in ids) / sum(sizes.values()))


def max_tv_distance(histograms) -> float:
    """``1 - sum_s g(s)^2``: the largest size-weighted mean TV any partition of these utterances can
    have (every client single-speaker); 0 for a single speaker.

    >>> max_tv_distance({0: {"a": 3}, 1: {"b": 1}})       # 1 - (3/4)^2 - (1/4)^2
    0.375
    """
    g = global_distribution(histograms)
    return float(1.0 - sum(v * v for v in g.values()))


def non_iid_index(histograms) -> float:
    """:func:`tv_distance` / :func:`max_tv_distance` in [0, 1]: 0 when every client matches the global
    speaker mix, 1 when every client holds one speaker (0 when there is only one speaker)."""
    top = max_tv_distance(histograms)
    return 0.0 if top <= 0 else float(tv_distance(histograms) / top)


def iid_tv_bound(histograms, client_size: int) -> float:
    """``1/2 sum_s sqrt(g(s) (1 - g(s)) / n)``: an upper bound on the expected ``TV_k`` of a client of
    ``n = client_size`` utterances drawn at random (what :func:`iid` does)."""
    if client_size < 1:
        raise ValueError(f"client_size must be >= 1, got {client_size!r}")
    g = global_distribution(histograms)
    return float(0.5 * sum(math.sqrt(v * (1 - v) / client_size) for v in g.values()))


def alpha_sweep(utterances: Iterable, num_clients: int, alphas: Sequence[float], *, seed: int = 0,
                balanced: bool = True, **filters) -> list[dict]:
    """For each ``alpha``: the :func:`dirichlet` partition's TV (weighted and plain), its non-IID index
    and mean speakers per client, next to the :func:`by_speaker` and :func:`iid` references (rows with
    ``alpha`` None and ``kind`` saying which), for the notebook's sweep."""
    rows = []

    def row(p: Partition, alpha):
        hist = p.speaker_histograms()
        return {"kind": p.kind, "alpha": alpha, "num_clients": len(p), "tv": tv_distance(p),
                "tv_unweighted": tv_distance(p, weighted=False), "non_iid_index": non_iid_index(p),
                "speakers_per_client": float(np.mean([len(h) for h in hist.values()]))}

    utts = list(utterances)
    for a in alphas:
        rows.append(row(dirichlet(utts, num_clients, a, seed=seed, balanced=balanced, **filters), float(a)))
    rows.append(row(iid(utts, num_clients, seed=seed, **filters), None))
    rows.append(row(by_speaker(utts, **filters), None))
    return rows
