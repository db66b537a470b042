"""Cross-lingual transfer: the phone initialisation rule, the transferred and from-scratch models,
the recipe's data selection, and the errors for languages and data that cannot be used."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from ttslab.text.phoneset import ENGLISH_PHONES, PHONES, SILENCES, features, phone_id
from ttslab.transfer.crosslingual import (RHOTICS, UnmappablePhonesError, articulatory_distance,
                                          init_phone_embeddings, mapping_table, nearest_known_phone, phone_mapping,
                                          scratch_model, transfer_model)

#: What the English teacher heard: ARPAbet, the US flap, silences.
TEACHER_PHONES = list(ENGLISH_PHONES) + ["dx"] + list(SILENCES)

#: Each new phone and the English phones a phonetician would accept as its stand-in (written by hand).
EXPECTED = {
    "rr": {"r", "dx"},           # Spanish trill /r/ -> an English r-sound
    "cc": {"hh", "sh"},          # German ich-Laut /ç/ -> /h/ or /ʃ/
    "x": {"hh", "k"},            # /x/ (Bach, jota) -> /h/ or /k/
    "a": {"aa", "ah", "ae", "aw", "ay"},
    "e": {"ey", "eh"},
    "o": {"ow", "ao"},
    "ue": {"iy", "ih", "uw"},    # /y/: a high vowel
    "oe": {"ey", "eh", "ow"},    # /ø/: a mid vowel
    "ny": {"n", "ng"},           # /ɲ/: a nasal
    "ts": {"ch", "s", "t"},
    "pf": {"f", "p"},
}


def test_every_new_phone_maps_to_an_expected_english_neighbour():
    new = [p for p in PHONES if p not in TEACHER_PHONES]
    assert sorted(new) == sorted(EXPECTED)
    mapping = phone_mapping(new, TEACHER_PHONES)
    for p, q in mapping.items():
        assert q in EXPECTED[p], (p, q)
        assert features(q)["kind"] == features(p)["kind"]
    assert mapping["rr"] in RHOTICS and mapping["cc"] == "sh"


def test_distance_is_a_symmetric_dissimilarity_that_never_crosses_kinds():
    for a, b in itertools.product(PHONES, PHONES):
        d = articulatory_distance(a, b)
        assert d == articulatory_distance(b, a)
        assert d >= 0 and (a != b or d == 0)
        assert math.isinf(d) == (features(a)["kind"] != features(b)["kind"])
    # hand-computed values (formula in the module docstring)
    assert articulatory_distance("ts", "s") == 0.5          # affricate vs fricative
    assert articulatory_distance("rr", "l") == 1.5          # trill vs liquid + rhotic flag
    assert articulatory_distance("ue", "uw") == 1.0         # front vs back: two steps
    assert articulatory_distance("oe", "ey") == pytest.approx(0.9)   # rounding + diphthong
    assert articulatory_distance("ny", "n") == 1.0 and articulatory_distance("ny", "ng") == 0.5


def test_nearest_is_the_brute_force_minimum_with_the_first_on_ties():
    known = ["t", "s", "ch"]                     # all three are 0.5 from /ts/: the first one wins
    assert nearest_known_phone("ts", known) == ("t", 0.5)
    assert nearest_known_phone("ts", ["ch", "s", "t"])[0] == "ch"
    for p in PHONES:
        q, d = nearest_known_phone(p, TEACHER_PHONES)
        assert d == min(articulatory_distance(p, k) for k in TEACHER_PHONES)


def test_unmappable_languages_and_phones_raise_clear_errors():
    with pytest.raises(UnmappablePhonesError, match=r"not in ttslab's inventory.*add them to the phone set"):
        phone_mapping(["a", "ɑ̃"], TEACHER_PHONES, language="fr")
    consonants_only = [p for p in TEACHER_PHONES if features(p)["kind"] == "consonant"]
    with pytest.raises(UnmappablePhonesError, match=r"es: cannot map phone\(s\) \['a'"):
        phone_mapping(["a", "rr"], consonants_only, language="es")
    with pytest.raises(UnmappablePhonesError, match=r"within distance 0.1"):
        phone_mapping(["rr"], TEACHER_PHONES, max_distance=0.1)
    assert phone_mapping(["k", "aa"], TEACHER_PHONES) == {}   # nothing new, nothing to map
    assert "| rr | r | r | ɹ | 0.5 |" in mapping_table({"rr": "r"})


def _tiny_teacher(seed=0):
    from ttslab.models.fastspeech import FastSpeech, FastSpeechConfig

    torch.manual_seed(seed)
    return FastSpeech(FastSpeechConfig.tiny(speakers=("en_a", "en_b"))).eval()


STATS = {"pitch_mean": 5.0, "pitch_std": 0.2, "energy_mean": 1.0, "energy_std": 0.5}


def test_init_copies_the_neighbours_rows_and_touches_nothing_else():
    model = _tiny_teacher()
    before = model.phone_embedding.weight.detach().clone()
    rows = init_phone_embeddings(model, {"rr": "r", "cc": "sh"})
    after = model.phone_embedding.weight.detach()
    assert rows == [phone_id("rr"), phone_id("cc")]
    assert torch.equal(after[phone_id("rr")], before[phone_id("r")])
    assert torch.equal(after[phone_id("cc")], before[phone_id("sh")])
    others = [i for i in range(len(before)) if i not in rows]
    assert torch.equal(after[others], before[others])
    with pytest.raises(TypeError, match="no phone_embedding table"):
        init_phone_embeddings(torch.nn.Linear(2, 2), {"rr": "r"})
    with pytest.raises(ValueError, match="silences are shared"):
        init_phone_embeddings(model, {"sil": "pau"})


def test_transfer_keeps_the_teacher_and_its_english_voices_exactly():
    teacher = _tiny_teacher(seed=7)   # not the scratch model's seed: fresh weights must differ
    state = {k: v.clone() for k, v in teacher.state_dict().items()}
    model = transfer_model(teacher, "es_x", STATS, {"rr": "r", "a": "aa"})
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in state.items())  # the teacher is untouched
    assert model.speakers == ("en_a", "en_b", "es_x")
    assert torch.allclose(model.speaker_embedding.weight[2], teacher.speaker_embedding.weight.mean(0))
    assert float(model.pitch_mean[2]) == pytest.approx(5.0)
    def inputs(*phones):
        return {"phone_ids": [phone_id(p) for p in phones], "stress": [0] * len(phones),
                "word_position": [1] * len(phones)}

    ids = inputs("sil", "k", "aa", "t", "sil")
    a, b = teacher.infer(ids, "en_b"), model.infer(ids, "en_b")   # English text, English speaker: same output
    assert torch.allclose(a["mel"], b["mel"], atol=1e-5)
    mapped = model.infer(inputs("sil", "k", "a", "rr", "sil"), "es_x")["mel"]
    unmapped = transfer_model(teacher, "es_x", STATS).infer(inputs("sil", "k", "a", "rr", "sil"), "es_x")["mel"]
    assert not torch.allclose(mapped, unmapped) or mapped.shape != unmapped.shape
    scratch = scratch_model(teacher.config, "es_x", STATS, {"mel_mean": [0.0] * 80, "mel_std": [1.0] * 80})
    assert scratch.speakers == ("es_x",)
    assert not torch.equal(scratch.encoder.state_dict()[next(iter(scratch.encoder.state_dict()))],
                           teacher.encoder.state_dict()[next(iter(teacher.encoder.state_dict()))])


def test_recipe_selects_data_and_refuses_bad_requests(ci_corpus):
    from ttslab.train.crosslingual import language_mapping, target_utterances, teacher_phones, train_crosslingual

    utts = target_utterances(ci_corpus, "es_f", 3)
    assert [u.id for u in utts] == [u.id for u in ci_corpus.filter(speakers="es_f", split="train")][:3]
    n = len(target_utterances(ci_corpus, "es_f"))
    with pytest.raises(ValueError, match=f"asked for {n + 1} utterances of 'es_f', which has {n}"):
        target_utterances(ci_corpus, "es_f", n + 1)
    known = teacher_phones(ci_corpus, [s for s in ci_corpus.speakers if s.startswith("en_")])
    assert set(known) <= set(TEACHER_PHONES) and "rr" not in known
    mapping = language_mapping(ci_corpus, "es", known)
    assert mapping["rr"] in RHOTICS and set(mapping) <= set(EXPECTED)
    with pytest.raises(ValueError, match="no utterances of language 'fr'.*cannot be mapped"):
        language_mapping(ci_corpus, "fr", known)
    teacher = _tiny_teacher()
    with pytest.raises(ValueError, match="unknown init"):
        train_crosslingual(teacher, ci_corpus, "es_f", 2, "random")
    from ttslab.models.fastspeech import FastSpeech, FastSpeechConfig

    english = FastSpeech(FastSpeechConfig.tiny(speakers=("es_f",)))
    with pytest.raises(ValueError, match="one of the teacher's own speakers"):
        train_crosslingual(english, ci_corpus, "es_f", 2)


@pytest.mark.slow
def test_fine_tuning_lowers_the_loss_and_both_starts_train(ci_corpus):
    from ttslab.train.crosslingual import train_crosslingual
    from ttslab.train.loop import TrainConfig

    teacher = _tiny_teacher()
    known = TEACHER_PHONES
    tc = TrainConfig(steps=8, batch_size=4, lr=3e-3, warmup=0, valid_every=1000, log_every=1, seed=0)
    for init in ("transfer", "scratch"):
        model, history, info = train_crosslingual(teacher, ci_corpus, "de_m", 3, init, tc, known_phones=known)
        losses = [r["loss"] for r in history.train]
        assert losses[-1] < losses[0], (init, losses)
        assert info["n_utterances"] == 3 and info["language"] == "de"
        assert model.speakers[-1] == "de_m"
    assert info["mapping"] == {} and {"x", "ts", "a"} <= set(info["new_phones"])
