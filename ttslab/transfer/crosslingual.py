"""Cross-lingual transfer: an English FastSpeech teacher becomes a voice of Spanish or German.

The teacher (:mod:`ttslab.models.fastspeech`) was trained on English speakers only. A new language
brings two kinds of novelty:

* **a new speaker**: a new row of the speaker table (:meth:`FastSpeech.add_speakers`), started at the
  mean of the English rows, with pitch/energy statistics measured on the new speaker's data;
* **phones the teacher never saw** (Spanish trilled /r/, German /ç/ and /x/, the pure vowels /a e o/,
  front rounded /y ø/, affricates /ts pf/ ...). Their rows of the phone-embedding table exist (the
  inventory :data:`ttslab.text.phoneset.PHONES` is shared by every language) but were never trained:
  they are still the random numbers of initialisation. The rule here: **copy the row of the nearest
  phone the teacher knows**, nearest by articulatory features (:func:`articulatory_distance`).

The distance is a weighted count of feature differences (``kind`` must match: a vowel never maps to
a consonant; silences only to themselves)::

    vowels:     0.5 |height_a - height_b| + 0.5 |back_a - back_b| + 0.6 [rounded differs] + 0.3 [diphthong differs]
    consonants: manner_cost(m_a, m_b) + 0.5 |place_a - place_b| + 0.5 [voicing differs] + 1.0 [rhotic differs]

with heights (high .. low), backness (front .. back) and places (bilabial .. glottal) as ordinal
positions on the IPA chart, ``manner_cost`` 0 for the same manner, 0.5 for neighbouring manners (stop
and affricate, fricative and affricate, tap/trill/liquid, liquid and glide), else 1. The *rhotic*
flag (r-sounds: /ɹ r ɾ ɝ/) separates /r/ from /l/, which share manner, place and voicing. Ties go to
the first phone of the known list (inventory order), so the rule is deterministic.

>>> nearest_known_phone("rr", ["l", "r", "d"])[0]      # Spanish trill -> English approximant r
'r'
>>> nearest_known_phone("cc", ["hh", "sh", "k", "s"])  # German ich-Laut -> English sh
('sh', 0.5)
>>> round(articulatory_distance("a", "aa"), 2), round(articulatory_distance("e", "ey"), 2)
(0.5, 0.3)

Why copy a neighbour and not leave the random row: a random row gives the encoder an input it has
never seen, so the phone's first fine-tuning steps are spent finding where it belongs; a neighbour's
row starts it where a listener's ear would (an English speaker's first Spanish /r/ is their own /r/).
The fine-tuning then moves it. :func:`transfer_model` and :func:`scratch_model` build the two models
that ``benchmarks/crosslingual.py`` compares, trained by :func:`fine_tune` on the same utterances.
"""

from __future__ import annotations

import copy
from typing import Iterable, Mapping, Sequence

import torch

from ttslab.text.phoneset import (BACKNESSES, HEIGHTS, PHONES, PLACES, SILENCES, features, phone_id,
                                  validate_phones)

__all__ = ["RHOTICS", "articulatory_distance", "nearest_known_phone", "phone_mapping", "phones_of",
           "UnmappablePhonesError", "init_phone_embeddings", "transfer_model", "scratch_model", "fine_tune",
           "mapping_table"]

#: r-sounds: English approximant /ɹ/ and r-coloured /ɝ/, the trill /r/ and the tap /ɾ/.
RHOTICS = frozenset({"r", "rr", "dx", "er"})
#: Pairs of manners of articulation that are close (cost 0.5 instead of 1).
_CLOSE_MANNERS = {frozenset(p) for p in (("stop", "affricate"), ("fricative", "affricate"), ("tap", "trill"),
                                         ("tap", "liquid"), ("trill", "liquid"), ("liquid", "glide"))}
#: Default largest distance :func:`phone_mapping` accepts (a manner + a place + voicing apart).
MAX_DISTANCE = 2.5


class UnmappablePhonesError(ValueError):
    """Phones of a new language that have no usable neighbour among the phones the teacher knows."""


def articulatory_distance(a: str, b: str) -> float:
    """Distance between two phones of the inventory (formula in the module docstring); ``inf`` across kinds.

    >>> articulatory_distance("p", "b"), articulatory_distance("s", "sh"), articulatory_distance("ts", "ch")
    (0.5, 0.5, 0.5)
    >>> articulatory_distance("iy", "k")
    inf
    """
    fa, fb = features(a), features(b)
    if fa["kind"] != fb["kind"]:
        return float("inf")
    if fa["kind"] == "silence":
        return 0.0 if a == b else 1.0
    if fa["kind"] == "vowel":
        return (0.5 * abs(HEIGHTS.index(fa["height"]) - HEIGHTS.index(fb["height"]))
                + 0.5 * abs(BACKNESSES.index(fa["backness"]) - BACKNESSES.index(fb["backness"]))
                + 0.6 * (fa["rounded"] != fb["rounded"]) + 0.3 * (fa["diphthong"] != fb["diphthong"]))
    if fa["manner"] == fb["manner"]:
        manner = 0.0
    else:
        manner = 0.5 if frozenset((fa["manner"], fb["manner"])) in _CLOSE_MANNERS else 1.0
    return (manner + 0.5 * abs(PLACES.index(fa["place"]) - PLACES.index(fb["place"]))
            + 0.5 * (fa["voiced"] != fb["voiced"]) + 1.0 * ((a in RHOTICS) != (b in RHOTICS)))


def nearest_known_phone(phone: str, known: Sequence[str]) -> tuple[str, float]:
    """``(neighbour, distance)``: the phone of ``known`` nearest to ``phone`` (first one on ties)."""
    validate_phones([phone, *known])
    if not known:
        raise UnmappablePhonesError(f"no known phones to map {phone!r} to")
    best = min(known, key=lambda k: (articulatory_distance(phone, k), known.index(k)))
    return best, articulatory_distance(phone, best)


def phones_of(utterances: Iterable) -> list[str]:
    """The distinct phone labels of ``utterances`` (their segments), in inventory order."""
    seen = {p for u in utterances for p in (u.phones if u.phones is not None else ())}
    return [p for p in PHONES if p in seen] + sorted(p for p in seen if p not in PHONES)


def phone_mapping(phones: Iterable[str], known: Sequence[str], *, max_distance: float = MAX_DISTANCE,
                  language: str = "the target language") -> dict[str, str]:
    """``{new phone: known neighbour}`` for every phone of ``phones`` that is not in ``known``.

    Raises :class:`UnmappablePhonesError` naming every phone that is not in the inventory (a language
    written in symbols ttslab does not have, e.g. French nasal vowels) or whose nearest known phone is
    farther than ``max_distance`` (e.g. a teacher that knows no vowel at all), with the fix.

    >>> phone_mapping(["k", "a", "rr", "o"], ["k", "aa", "r", "l", "ow"])
    {'a': 'aa', 'rr': 'r', 'o': 'ow'}
    """
    phones = list(dict.fromkeys(phones))
    known = list(dict.fromkeys(known))
    outside = [p for p in phones + known if p not in PHONES]
    if outside:
        raise UnmappablePhonesError(
            f"{language}: phone(s) {outside} are not in ttslab's inventory (ttslab.text.phoneset.PHONES), so no "
            "articulatory features are known for them; add them to the phone set (with their features) or map "
            "them to inventory phones in the front-end first")
    mapping, far = {}, []
    for p in phones:
        if p in known:
            continue
        q, d = nearest_known_phone(p, known) if known else (None, float("inf"))
        if d > max_distance:
            far.append(f"{p} (nearest {q}, distance {d:.2f})" if q is not None and d < float("inf") else p)
        else:
            mapping[p] = q
    if far:
        raise UnmappablePhonesError(
            f"{language}: cannot map phone(s) {far} to a phone the teacher knows within distance {max_distance} "
            f"(known: {known}); give a teacher that knows phones of the same kind, raise max_distance, or train "
            "those phones from scratch")
    return mapping


def mapping_table(mapping: Mapping[str, str]) -> str:
    """The mapping as a Markdown table with IPA and distances (for notebooks and benchmark reports)."""
    from ttslab.text.phoneset import IPA

    rows = ["| new phone | IPA | initialised from | IPA | distance |", "|---|---|---|---|---:|"]
    for p, q in mapping.items():
        rows.append(f"| {p} | {IPA[p]} | {q} | {IPA[q]} | {articulatory_distance(p, q):.1f} |")
    return "\n".join(rows)


def init_phone_embeddings(model, mapping: Mapping[str, str]) -> list[int]:
    """Copy the phone-embedding row of each known neighbour into its new phone's row, in place.

    ``model`` has a ``phone_embedding`` table over :func:`ttslab.text.phoneset.phone_id` ids (e.g.
    :class:`~ttslab.models.fastspeech.FastSpeech`). Returns the ids of the rows written.
    """
    table = getattr(model, "phone_embedding", None)
    if not isinstance(table, torch.nn.Embedding):
        raise TypeError(f"{type(model).__name__} has no phone_embedding table (an nn.Embedding over phone ids)")
    validate_phones(list(mapping) + list(mapping.values()))
    if any(p in SILENCES for p in mapping):
        raise ValueError("silences are shared by every language; they need no mapping")
    rows = []
    with torch.no_grad():
        for p, q in mapping.items():
            table.weight[phone_id(p)] = table.weight[phone_id(q)]
            rows.append(phone_id(p))
    return rows


def transfer_model(teacher, speaker: str, stats: Mapping[str, float], mapping: Mapping[str, str] | None = None):
    """A copy of ``teacher`` ready to fine-tune on ``speaker``: new phones initialised by ``mapping``
    (:func:`init_phone_embeddings`; None leaves their rows as they are), a new speaker row at the mean
    of the teacher's, with the new speaker's pitch/energy ``stats`` (keys as
    :meth:`FastSpeech.speaker_stats`). The teacher is not modified."""
    model = copy.deepcopy(teacher).float()
    if mapping:
        init_phone_embeddings(model, mapping)
    model.add_speakers([speaker], stats={speaker: dict(stats)})
    return model


def scratch_model(teacher_config, speaker: str, stats: Mapping[str, float], mel_stats: Mapping, seed: int = 0):
    """The teacher's architecture with fresh weights (seeded) and one speaker: the from-scratch baseline.

    ``mel_stats`` holds ``mel_mean``/``mel_std`` (80,) of the target data (the teacher's own scale is
    also fine; the transferred model keeps the teacher's)."""
    from dataclasses import replace

    from ttslab.models.fastspeech import FastSpeech

    torch.manual_seed(seed)
    model = FastSpeech(replace(teacher_config, speakers=(speaker,)))
    model.set_stats({**{k: [float(stats[k])] for k in ("pitch_mean", "pitch_std", "energy_mean", "energy_std")},
                     "mel_mean": mel_stats["mel_mean"], "mel_std": mel_stats["mel_std"]})
    return model


def fine_tune(model, items: Sequence[dict], train_config, *, progress: bool = False, desc: str = "fine-tune",
              device="cpu"):
    """Train every weight of ``model`` on ``items`` (:func:`~ttslab.models.fastspeech.fastspeech_items`
    made with ``model.speakers``) with :func:`ttslab.train.fit`; returns the history. No validation
    split: with 10 utterances there is nothing to spare, so the last step's weights are kept."""
    from ttslab.models.fastspeech import collate_fastspeech, fastspeech_loss
    from ttslab.train.loop import Batches, fit

    if not items:
        raise ValueError("no training items to fine-tune on")
    batch_size = min(train_config.batch_size, len(items))
    batches = Batches(list(items), batch_size, collate_fastspeech, lengths=[len(it["mel"]) for it in items],
                      seed=train_config.seed)
    return fit(model, fastspeech_loss, batches, train_config, progress=progress, desc=desc, device=device)
