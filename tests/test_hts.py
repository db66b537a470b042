"""Decision-tree clustering (gains against brute force, MDL, occupancy, determinism) and the HTS voice:
training on a few CI utterances, synthesis, rate control, save/load with checksums, clear errors."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import ttslab.classical.hts as hts_module
import ttslab.classical.tree as tree_module
from ttslab.classical.hts import HTSConfig, Voice, VoiceFileError, allocate_durations, train_voice
from ttslab.classical.tree import ItemStatistics, Tree, grow_tree, mdl_threshold, split_gains

LOG_2PI = np.log(2 * np.pi)


# ----------------------------------------------------------------------------- tree: helpers


def random_items(rng, n_items=60, dim=3, n_questions=8, msd=False):
    """Items with 1..12 frames each; questions 0 and 1 shift the mean, the rest are noise."""
    answers = rng.random((n_items, n_questions)) < 0.5
    frames, voiced = [], []
    for i in range(n_items):
        shift = 3.0 * answers[i, 0] - 2.0 * answers[i, 1]
        frames.append(shift + rng.normal(size=(rng.integers(1, 13), dim)) * (1 + answers[i, 2]))
        voiced.append(rng.random(len(frames[-1])) < (0.9 if answers[i, 3] else 0.2))
    stats = ItemStatistics.from_frames(frames, voiced if msd else None)
    return frames, (voiced if msd else None), answers, stats


def brute_log_likelihood(X, floor, n_total=None):
    """sum_t log N(x_t; mu, diag(max(var, floor))) of the frames themselves (+ MSD weight term)."""
    if len(X) == 0:
        return 0.0
    mu, var = X.mean(axis=0), np.maximum(X.var(axis=0), floor)
    ll = float(np.sum(-0.5 * (LOG_2PI + np.log(var) + (X - mu) ** 2 / var)))
    if n_total is not None:
        w = len(X) / n_total
        ll += len(X) * np.log(w) + ((n_total - len(X)) * np.log(1 - w) if w < 1 else 0.0)
    return ll


# ----------------------------------------------------------------------------- tree


@pytest.mark.parametrize("msd", [False, True], ids=["gaussian", "msd"])
def test_gain_equals_brute_force_likelihood_difference(msd):
    rng = np.random.default_rng(1)
    frames, voiced, answers, stats = random_items(rng, msd=msd)
    floor = np.full(3, 0.05)
    gains, _ = split_gains(stats, answers, floor)
    for q in range(answers.shape[1]):
        def pooled(mask):
            idx = np.flatnonzero(mask)
            X = np.concatenate([frames[i][voiced[i]] if msd else frames[i] for i in idx])
            total = sum(len(frames[i]) for i in idx) if msd else None
            return brute_log_likelihood(X, floor, total)
        everything = np.ones(len(frames), dtype=bool)
        expected = pooled(answers[:, q]) + pooled(~answers[:, q]) - pooled(everything)
        assert gains[q] == pytest.approx(expected, rel=1e-9, abs=1e-7)


def test_gain_is_minus_inf_for_questions_that_do_not_split_or_leave_too_little():
    rng = np.random.default_rng(2)
    _, _, answers, stats = random_items(rng)
    answers[:, 5] = True                                # everyone says yes: no split
    answers[:, 6] = False
    answers[:, 7] = np.arange(len(answers)) == 0        # one item on the yes side
    gains, yes_frames = split_gains(stats, answers, 0.01, min_occupancy=float(stats.occupancy[0]) + 1)
    assert np.isneginf(gains[[5, 6, 7]]).all()
    assert yes_frames[5] == stats.occupancy.sum()


def test_mdl_stops_exactly_where_the_gain_falls_below_the_threshold():
    rng = np.random.default_rng(3)
    _, _, answers, stats = random_items(rng, n_items=120)
    names = [f"q{i}" for i in range(answers.shape[1])]
    floor = np.full(3, 0.05)
    tree = grow_tree(stats, answers, names, variance_floor=floor)
    threshold = mdl_threshold(stats.dim, stats.occupancy.sum())
    assert threshold == pytest.approx(0.5 * 6 * np.log(stats.occupancy.sum()))
    assert set(tree.questions_used[:2]) == {"q0", "q1"}      # the real effects are found first
    for node in tree.nodes:
        items = _items_of(tree, answers, node.id)
        best = split_gains(stats.subset(items), answers[items], floor)[0].max()
        if node.question is None:
            assert best <= threshold                       # MDL refused every split of a leaf
        else:
            assert node.gain > threshold and node.gain == pytest.approx(best)
    assert grow_tree(stats, answers, names, mdl_scale=1e6).n_leaves == 1
    assert grow_tree(stats, answers, names, mdl_scale=0.0, variance_floor=floor).n_leaves > tree.n_leaves


def _items_of(tree: Tree, answers: np.ndarray, node_id: int) -> np.ndarray:
    """Items whose path passes through ``node_id`` (walk every item down, recording visits)."""
    inside = []
    for i, row in enumerate(answers):
        k = 0
        while True:
            if k == node_id:
                inside.append(i)
                break
            if tree.question[k] < 0:
                break
            k = tree.yes[k] if row[tree.question[k]] else tree.no[k]
    return np.array(inside)


def test_min_occupancy_respected_and_leaf_pdfs_are_the_pooled_gaussians():
    rng = np.random.default_rng(4)
    frames, _, answers, stats = random_items(rng, n_items=150)
    names = [f"q{i}" for i in range(answers.shape[1])]
    tree = grow_tree(stats, answers, names, mdl_scale=0.0, min_occupancy=40.0, variance_floor=0.05)
    leaves = tree.predict(answers)
    for leaf in range(tree.n_leaves):
        X = np.concatenate([frames[i] for i in np.flatnonzero(leaves == leaf)])
        assert len(X) >= 40
        np.testing.assert_allclose(tree.means[leaf], X.mean(axis=0), atol=1e-10)
        np.testing.assert_allclose(tree.variances[leaf], np.maximum(X.var(axis=0), 0.05), atol=1e-10)
    assert tree.n_leaves > 2


def test_tree_is_deterministic_printable_and_round_trips():
    rng = np.random.default_rng(5)
    _, _, answers, stats = random_items(rng, n_items=100, msd=True)
    names = [f"q{i}" for i in range(answers.shape[1])]
    a = grow_tree(stats, answers, names, mdl_scale=0.3)
    b = grow_tree(stats, answers, names, mdl_scale=0.3)
    for key, value in a.to_arrays().items():
        np.testing.assert_array_equal(value, b.to_arrays()[key])
    assert a.weights is not None and np.all((a.weights >= 0) & (a.weights <= 1))
    text = a.to_text()
    assert text.count("leaf ") == a.n_leaves and a.questions_used[0] in text.splitlines()[0]
    assert len(a.nodes) == a.n_nodes and a.depth == max(n.depth for n in a.nodes)
    shuffled = names[::-1]  # a reordered question set: questions are stored by name
    c = Tree.from_arrays(a.to_arrays(), shuffled)
    np.testing.assert_array_equal(c.predict(answers[:, ::-1]), a.predict(answers))
    assert [a.leaf(row) for row in answers[:5]] == a.predict(answers[:5]).tolist()
    with pytest.raises(ValueError, match="not in the question set"):
        Tree.from_arrays(a.to_arrays(), ["other"] * len(names))


def test_tree_input_errors():
    stats = ItemStatistics(np.ones(3), np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="answers must have shape"):
        grow_tree(stats, np.zeros((2, 1), bool), ["q"])
    with pytest.raises(ValueError, match="zero occupancy"):
        grow_tree(ItemStatistics(np.zeros(3), np.zeros((3, 2)), np.zeros((3, 2))), np.zeros((3, 1), bool), ["q"])
    with pytest.raises(ValueError, match="cannot exceed"):
        ItemStatistics(np.ones(2), np.zeros((2, 1)), np.zeros((2, 1)), total=np.zeros(2))


def test_allocate_durations_keeps_the_total_and_follows_rate():
    rng = np.random.default_rng(6)
    means, variances = rng.uniform(0, 8, (40, 5)), rng.uniform(0.5, 10, (40, 5))
    d1 = allocate_durations(means, variances)
    assert abs(d1.sum() - means.sum()) <= 1 and (d1.sum(axis=1) >= 1).all()
    d2 = allocate_durations(means, variances, rate=2.0)
    assert d2.sum() < 0.6 * d1.sum()
    with pytest.raises(ValueError, match="rate"):
        allocate_durations(means, variances, rate=0)


def test_docstring_examples():
    for module in (tree_module, hts_module):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, f"{module.__name__}: {result.failed} doctest(s) failed"


# ----------------------------------------------------------------------------- a tiny voice

SPEAKER = "en_us_m"


@pytest.fixture(scope="module")
def tiny(ci_corpus, tmp_path_factory):
    """A voice from 8 CI utterances of one speaker, order-12 mcep, DIO F0, one process (~10 s)."""
    config = HTSConfig(mcep_order=12, f0_method="dio", max_utterances=8, jobs=1, bw_iterations=2,
                       cache_root=str(tmp_path_factory.mktemp("features")))
    voice = train_voice(ci_corpus, SPEAKER, config, progress=False)
    test_utt = ci_corpus.filter(speakers=SPEAKER, split="test")[0]
    return voice, test_utt


def test_tiny_voice_synthesizes_plausible_speech(tiny):
    voice, utt = tiny
    assert voice.info["n_utterances"] == 8 and voice.duration_tree.n_leaves >= 2
    audio, sr = voice.synthesize(utt.text)
    assert sr == 22050 and audio.dtype == np.float32 and np.isfinite(audio).all()
    assert 0.6 < len(audio) / utt.num_samples < 1.6          # as long as the speaker's own reading, roughly
    assert 0.01 < np.sqrt(np.mean(audio**2)) and np.abs(audio).max() < 1.5
    feats = voice.generate_features(utt)
    voiced_f0 = feats["f0"][feats["f0"] > 0]
    assert 0.3 < len(voiced_f0) / len(feats["f0"]) < 0.95      # speech is partly voiced
    assert 60 < np.median(voiced_f0) < 200                     # a male voice's range
    assert feats["mcep"].shape == (len(feats["f0"]), 13) and feats["phones"] == list(utt.phones)


def test_oracle_durations_rate_control_and_phone_input(tiny):
    voice, utt = tiny
    oracle, _ = voice.synthesize_utterance(utt, oracle_durations=True)
    assert len(oracle) == utt.num_samples
    normal = voice.state_durations(utt).sum()
    assert voice.state_durations(utt, rate=2.0).sum() == pytest.approx(normal / 2, rel=0.1)
    audio, _ = voice.synthesize(["hh", "ah0", "l", "ow1"], use_gv=False)
    assert 0.1 < len(audio) / 22050 < 2.0 and np.isfinite(audio).all()


def test_training_is_deterministic(tiny, ci_corpus):
    voice, _ = tiny
    again = train_voice(ci_corpus, SPEAKER, voice.config, progress=False)  # features now from the cache
    first, second = voice.to_arrays(), again.to_arrays()
    assert first.keys() == second.keys()
    for key in first:
        if key != "meta":  # meta holds the training times
            np.testing.assert_array_equal(first[key], second[key], err_msg=key)


def test_save_load_round_trip_and_corruption(tiny, tmp_path):
    voice, utt = tiny
    path = voice.save(tmp_path / "voice.npz")
    loaded = Voice.load(path)
    a, b = voice.generate_features(utt), loaded.generate_features(utt)
    for key in ("mcep", "f0", "bap", "durations"):
        np.testing.assert_array_equal(a[key], b[key])
    assert loaded.speaker == SPEAKER and loaded.config == voice.config and loaded.frontend == voice.frontend

    data = bytearray(path.read_bytes())
    i = data.find(b"means.npy") + 200  # inside a stored array, past its header
    data[i] ^= 0xFF
    (tmp_path / "flipped.npz").write_bytes(bytes(data))
    with pytest.raises(VoiceFileError, match="corrupt|checksum"):
        Voice.load(tmp_path / "flipped.npz")
    (tmp_path / "truncated.npz").write_bytes(path.read_bytes()[: len(data) // 2])
    with pytest.raises(VoiceFileError, match="corrupt or truncated"):
        Voice.load(tmp_path / "truncated.npz")
    with pytest.raises(FileNotFoundError, match="train_voice"):
        Voice.load(tmp_path / "missing.npz")


def test_clear_errors(tiny, ci_corpus):
    voice, _ = tiny
    with pytest.raises(ValueError, match="empty text"):
        voice.synthesize("   ")
    with pytest.raises(ValueError, match="unknown phone"):
        voice.synthesize(["hh", "QQ", "ow"])
    with pytest.raises(ValueError, match="empty phone sequence"):
        voice.synthesize([])
    with pytest.raises(ValueError, match="rate"):
        voice.synthesize("Hello.", rate=0)
    with pytest.raises(KeyError, match="not in this corpus"):
        train_voice(ci_corpus, "nobody", progress=False)
    with pytest.raises(ValueError, match="no training utterances"):
        train_voice(ci_corpus.filter(split="test"), SPEAKER, progress=False)
