"""Tests of ttslab.federated.partitions: who holds which utterances, and how non-IID that is.

Most tests run on the real CI corpus without its adaptation speakers (548 utterances, 14 speakers: ten
English speakers with 50 utterances, four German/Spanish ones with 12; the adaptation speakers are held
out for the transfer notebook, as every federated experiment holds them out); references are hand computations or the documented
Dirichlet procedure written out again here in plain Python."""

from __future__ import annotations

import doctest
import json
import math
from collections import Counter

import numpy as np
import pytest

from ttslab.federated import partitions as P
from ttslab.federated import Partition, UtteranceKey, by_language, by_speaker, dirichlet, iid, make_partition
from ttslab.federated import max_tv_distance, non_iid_index, tv_distance

ALPHAS = (0.05, 0.5, 5, 500)


def test_doctests():
    assert doctest.testmod(P, optionflags=doctest.ELLIPSIS).failed == 0



@pytest.fixture(scope="module")
def ci_corpus(ci_corpus):
    """The CI corpus without the adaptation speakers (their counts are pinned by these tests)."""
    from ttslab.data.speakers import ADAPTATION_SPEAKERS

    return ci_corpus.filter(speakers=[s for s in ci_corpus.speakers if s not in ADAPTATION_SPEAKERS])

def _all(ci_corpus, **filters):
    return [
        by_speaker(ci_corpus, **filters), by_language(ci_corpus, **filters),
        dirichlet(ci_corpus, 8, 0.5, seed=1, **filters), iid(ci_corpus, 8, seed=1, **filters),
        dirichlet(ci_corpus, 13, 0.05, seed=1, balanced=False, **filters),
    ]


@pytest.mark.parametrize("split", [None, "train"])
def test_every_utterance_in_exactly_one_client(ci_corpus, split):
    expected = sorted(u.id for u in ci_corpus if split is None or u.split == split)
    for p in _all(ci_corpus, split=split):
        held = [u for ids in p.clients.values() for u in ids]
        assert sorted(held) == expected, p.kind            # nothing lost, nothing twice
        assert len(set(held)) == len(held)
        assert all(len(ids) >= 1 for ids in p.clients.values())
        assert p.client_ids == list(range(len(p)))
        assert p.num_utterances == len(expected) == sum(p.counts().values())
        order = {u.id: i for i, u in enumerate(ci_corpus)}
        for ids in p.clients.values():                   # corpus order within a client
            assert [order[u] for u in ids] == sorted(order[u] for u in ids)


def test_speaker_and_language_clients_on_the_ci_corpus(ci_corpus):
    p = by_speaker(ci_corpus)
    assert len(p) == 14 and p.labels[0] == "de_f" and p.labels[13] == "es_m"
    hist = p.speaker_histograms()
    assert all(list(h) == [p.labels[k]] for k, h in hist.items())
    assert p.counts()[0] == 12 and p.counts()[4] == 50
    lang = by_language(ci_corpus)
    assert lang.labels == {0: "de", 1: "en", 2: "es"}
    assert lang.counts() == {0: 24, 1: 500, 2: 24}
    assert lang.speaker_histograms()[0] == {"de_f": 12, "de_m": 12}
    [u] = {u.language for u in lang.utterances(ci_corpus, 2)}
    assert u == "es"


def test_partitions_are_deterministic_per_seed(ci_corpus):
    for make in (lambda s: dirichlet(ci_corpus, 6, 0.5, seed=s), lambda s: iid(ci_corpus, 6, seed=s)):
        a, b, c = make(3), make(3), make(4)
        assert dict(a.clients) == dict(b.clients)
        assert dict(a.clients) != dict(c.clients)


def test_iid_clients_are_balanced_and_near_the_global_mix(ci_corpus):
    p = iid(ci_corpus, 4, seed=0)
    assert sorted(p.counts().values()) == [137] * 4
    bound = P.iid_tv_bound(p, 137)                         # about 0.15 here
    tvs = P.client_tv_distances(p)
    assert tv_distance(p) <= bound                           # E[TV_k] <= bound
    assert max(tvs.values()) <= 1.5 * bound
    assert non_iid_index(p) < 0.2
    # the control must really shuffle: four consecutive pieces of the corpus hold 3 to 5 speakers each
    ids = [u.id for u in ci_corpus]
    cut = P.Partition("cut", {k: tuple(ids[137 * k:137 * (k + 1)]) for k in range(4)},
                      {u.id: u.speaker for u in ci_corpus})
    assert tv_distance(cut) > 4 * bound


@pytest.mark.parametrize("balanced", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dirichlet_tv_decreases_as_alpha_grows(ci_corpus, seed, balanced):
    parts = [dirichlet(ci_corpus, 8, a, seed=seed, balanced=balanced) for a in ALPHAS]
    tvs = [tv_distance(p) for p in parts]
    assert all(x > y for x, y in zip(tvs, tvs[1:])), tvs
    top = max_tv_distance(by_speaker(ci_corpus))
    assert tvs[0] > (0.6 if balanced else 0.75) * top       # alpha = 0.05: far from IID
    sizes = sorted(parts[0].counts().values())
    assert (sizes[-1] - sizes[0] <= 1) == balanced           # unbalanced: sizes follow the mixes
    assert tvs[-1] <= P.iid_tv_bound(by_speaker(ci_corpus), 548 // 8)   # alpha = 500: about IID


def test_one_speaker_per_client_reaches_the_maximum_tv(ci_corpus):
    p = by_speaker(ci_corpus)
    g = Counter(u.speaker for u in ci_corpus)
    top = 1 - sum((n / 548) ** 2 for n in g.values())        # 1 - sum_s g(s)^2 by hand
    assert max_tv_distance(p) == pytest.approx(top, abs=1e-12)
    assert tv_distance(p) == pytest.approx(top, abs=1e-12)
    assert non_iid_index(p) == pytest.approx(1.0, abs=1e-12)
    assert tv_distance(p, weighted=False) == pytest.approx(1 - 1 / 14, abs=1e-12)   # mean of 1 - g(s)
    for q in (dirichlet(ci_corpus, 14, 0.05, seed=0), dirichlet(ci_corpus, 5, 1.0, seed=2), iid(ci_corpus, 3)):
        assert tv_distance(q) < top                           # mixed clients stay below the bound


def test_tv_distance_by_hand():
    h = {0: {"a": 3, "b": 1}, 1: {"b": 4}}                  # g = (3/8, 5/8)
    tvs = P.client_tv_distances(h)
    assert tvs[0] == pytest.approx(0.5 * (abs(0.75 - 0.375) + abs(0.25 - 0.625)))   # 0.375
    assert tvs[1] == pytest.approx(0.5 * (0.375 + 0.375))
    assert tv_distance(h) == pytest.approx(0.375)
    assert max_tv_distance(h) == pytest.approx(1 - (3 / 8) ** 2 - (5 / 8) ** 2)
    with pytest.raises(ValueError, match="holds no utterances"):
        P.client_tv_distances({0: {"a": 1}, 1: {}})


def _pick(w, u):
    acc, target = 0.0, u * float(np.cumsum(w)[-1])
    for s, ws in enumerate(w):
        acc += ws
        if acc > target and ws > 0:
            return s


def _reference_dirichlet(utts, k_clients, alpha, seed, balanced=True):
    """The docstring's procedure, written out without numpy's vector helpers."""
    rng = np.random.default_rng(seed)
    n = len(utts)
    sizes = [n // k_clients + (1 if k < n % k_clients else 0) for k in range(k_clients)]
    if not balanced:
        sizes = [1] * k_clients
    names = sorted({u.speaker for u in utts})
    pools = []
    for s in names:
        ids = [u.id for u in utts if u.speaker == s]
        pools.append([ids[i] for i in rng.permutation(len(ids))])
    q = rng.dirichlet([alpha] * len(names), size=k_clients)
    groups = [[] for _ in range(k_clients)]
    for t in range(max(sizes)):
        for k in range(k_clients):
            if sizes[k] <= t:
                continue
            w = [q[k][s] if pools[s] else 0.0 for s in range(len(names))]
            if sum(w) == 0:
                w = [float(len(p)) for p in pools]
            groups[k].append(pools[_pick(w, rng.random())].pop(0))
    if not balanced:
        for s in range(len(names)):
            column = [q[k][s] for k in range(k_clients)]
            if sum(column) == 0:
                column = [1.0] * k_clients
            for uid in list(pools[s]):
                groups[_pick(column, rng.random())].append(uid)
    return [sorted(g) for g in groups]


@pytest.mark.parametrize("balanced", [True, False])
@pytest.mark.parametrize("alpha", [1e-5, 1e-3, 0.3, 50.0])   # 1e-5: one-hot mixes, the fallback
def test_dirichlet_follows_the_documented_procedure(alpha, balanced):
    utts = [UtteranceKey(f"{s}{i:02d}", s) for s, n in zip("abcde", (9, 3, 7, 1, 5)) for i in range(n)]
    p = dirichlet(utts, 4, alpha, seed=11, balanced=balanced)
    assert [sorted(ids) for ids in p.clients.values()] == _reference_dirichlet(utts, 4, alpha, 11, balanced)


def test_summary_is_json_and_params_rebuild_the_partition(ci_corpus):
    p = dirichlet(ci_corpus, 5, 0.5, seed=7, split="train")
    s = json.loads(json.dumps(p.summary()))
    assert s["num_utterances"] == 440 and sum(s["counts"].values()) == 440
    assert s["speaker_histograms"]["0"] == p.speaker_histograms()[0]
    assert s["tv_distance"] == pytest.approx(tv_distance(p))
    assert dict(make_partition(**p.params, utterances=ci_corpus).clients) == dict(p.clients)
    assert "client" in p.table() and len(p.table().splitlines()) == 6


def test_alpha_sweep_rows(ci_corpus):
    rows = P.alpha_sweep(ci_corpus, 8, ALPHAS, seed=0)
    assert [r["kind"] for r in rows] == ["dirichlet"] * 4 + ["iid", "speaker"]
    assert rows[-1]["non_iid_index"] == pytest.approx(1.0)
    assert rows[0]["speakers_per_client"] < rows[3]["speakers_per_client"]


def test_utterances_of_a_client(ci_corpus):
    p = iid(ci_corpus, 3, seed=0)
    utts = p.utterances(ci_corpus, 1)
    assert [u.id for u in utts] == list(p.clients[1])
    assert [u.id for u in p.utterances(list(ci_corpus), 1)] == list(p.clients[1])   # any sequence
    with pytest.raises(KeyError, match="no client 3"):
        p.utterances(ci_corpus, 3)


@pytest.mark.parametrize("alpha", [0, -1.0, math.nan, math.inf, True, "1"])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        dirichlet([UtteranceKey("a", "s")], 1, alpha)


def test_bad_input_is_refused_clearly(ci_corpus):
    with pytest.raises(ValueError, match="corpus is empty"):
        iid([], 2)
    with pytest.raises(ValueError, match="corpus is empty"):
        by_speaker(ci_corpus[:0])
    with pytest.raises(ValueError, match="549 clients but only 548 utterances"):
        iid(ci_corpus, 549)
    with pytest.raises(ValueError, match="13 clients but only 12 utterances"):
        dirichlet(ci_corpus, 13, 1.0, speakers=["de_f"])
    with pytest.raises(ValueError, match="num_clients must be an int >= 1"):
        iid(ci_corpus, 0)
    with pytest.raises(ValueError, match="leave no utterance"):
        by_speaker(ci_corpus, speakers=["de_f"], languages="en")
    with pytest.raises(ValueError, match="leave no utterance"):
        iid(ci_corpus, 2, split="dev")
    with pytest.raises(ValueError, match=r"unknown speaker\(s\) \['xx_f'\]"):
        dirichlet(ci_corpus, 2, 1.0, speakers=["de_f", "xx_f"])
    with pytest.raises(ValueError, match="speakers filter is empty"):
        by_speaker(ci_corpus, speakers=[])
    with pytest.raises(ValueError, match="duplicate utterance ids"):
        iid([UtteranceKey("a", "s"), UtteranceKey("a", "t")], 1)
    with pytest.raises(ValueError, match="seed must be an int"):
        iid(ci_corpus, 2, seed=-1)
    with pytest.raises(ValueError, match="unknown partition kind"):
        make_partition("label", ci_corpus)
    with pytest.raises(TypeError, match=r"need \.id and \.speaker"):
        iid(["a", "b"], 1)
    assert isinstance(by_speaker(ci_corpus, speakers="de_f"), Partition)
