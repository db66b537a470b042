"""The built-in corpus: determinism, exact label coverage, speakers, conventions, bad input."""

import collections
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ttslab.data import builtin
from ttslab.text import frontend
from ttslab.data.corpus import CorpusNotFoundError, Segment
from ttslab.data.labels import read_htk_lab, format_textgrid
from ttslab.io import AudioFileError
from ttslab.text.phoneset import PHONES


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_builds_are_byte_identical(ci_corpus, tmp_path):
    again = builtin.build_corpus("ci", tmp_path / "again", jobs=1, progress=False)
    assert tree_hashes(ci_corpus.root) == tree_hashes(again.root)


def test_labels_cover_each_wav_exactly(ci_corpus):
    for utt in ci_corpus:
        info = sf.info(str(utt.wav_path))
        assert info.samplerate == 22050 and info.channels == 1 and info.subtype == "PCM_16"
        assert info.frames == utt.num_samples
        lab = read_htk_lab(ci_corpus.root / "lab" / utt.speaker / f"{utt.id}.lab", 22050)
        assert [(s.label, s.start, s.end) for s in lab] == [(s.label, s.start, s.end) for s in utt.segments]
        assert lab[0].start == 0 and lab[-1].end == info.frames
        assert all(a.end == b.start for a, b in zip(lab, lab[1:]))
        assert all(s.end > s.start for s in lab)


def test_speakers_languages_and_parallel_prompts(ci_corpus):
    english = ci_corpus.filter(language="en")
    assert len(english.speakers) >= 8
    genders = collections.Counter(builtin.speaker(s).gender for s in english.speakers)
    assert genders["male"] >= 3 and genders["female"] >= 3
    assert len({builtin.speaker(s).accent for s in english.speakers}) >= 6
    assert set(ci_corpus.languages) >= {"en", "es", "de"}
    texts = {s: [u.text for u in english.filter(speakers=s)] for s in english.speakers}
    assert len({tuple(t) for t in texts.values()}) == 1  # every speaker reads the same prompts
    train = {u.text for u in english.filter(split="train")}
    test = {u.text for u in english.filter(split="test")}
    assert test and not train & test


def test_speakers_sound_different(ci_corpus):
    """Median F0 separates the speakers (a cheap acoustic distinctness check)."""
    import librosa

    medians = {}
    for spk in ci_corpus.filter(language="en").speakers:
        utt = ci_corpus.filter(speakers=spk, split="test")[0]
        f0, voiced, _ = librosa.pyin(utt.load_audio(), fmin=60, fmax=400, sr=22050, hop_length=512)
        medians[spk] = float(np.nanmedian(f0[voiced]))
    female = [m for s, m in medians.items() if builtin.speaker(s).gender == "female"]
    male = [m for s, m in medians.items() if builtin.speaker(s).gender == "male"]
    assert min(female) > max(male), medians


def test_every_label_is_in_the_inventory(ci_corpus):
    labels = {s.label for u in ci_corpus for s in u.segments}
    assert labels <= set(PHONES), labels - set(PHONES)
    assert all(u.segments[0].label == "sil" or u.segments[0].start == 0 for u in ci_corpus)
    assert all(u.segments[-1].label == "sil" for u in ci_corpus)


def test_stops_start_at_their_closure(ci_corpus):
    """Voiceless stops after a vowel open quietly (closure inside the stop), and the vowel does not end quietly."""
    def db(x):
        return 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-12)

    checked = good = 0
    for utt in ci_corpus.filter(language="en")[::3]:
        audio = utt.load_audio()
        segs = utt.segments
        for prev, seg in zip(segs, segs[1:]):
            if seg.label in {"p", "t", "k"} and prev.label in {"aa", "ae", "ah", "eh", "ih", "iy", "uw", "ow"}:
                checked += 1
                peak = max(db(audio[i:i + 44]) for i in range(prev.start, prev.end - 44, 22))
                head = np.median([db(audio[i:i + 22]) for i in range(seg.start, seg.start + 110, 22)])
                tail = db(audio[prev.end - 44:prev.end])
                good += bool(head < peak - 25 and tail > peak - 30)
    assert checked > 100
    assert good / checked > 0.9, (good, checked)


def test_closure_start_examples():
    x = np.r_[np.full(300, 800), np.zeros(200), np.full(100, 900)].astype(np.int16)
    assert abs(frontend.closure_start(x, 500, earliest=110) - 300) <= frontend.ENVELOPE_SAMPLES // 2
    rng = np.random.default_rng(0)
    breathy = x + np.r_[np.zeros(300), rng.normal(0, 5, 200), np.zeros(100)].astype(np.int16)
    assert abs(frontend.closure_start(breathy, 500, earliest=110) - 300) <= frontend.ENVELOPE_SAMPLES // 2
    assert frontend.closure_start(x, 500, earliest=400) == 400  # never before `earliest`
    voiced = np.full(600, 700, np.int16)
    assert frontend.closure_start(voiced, 500, earliest=110) == 500  # no silent closure


def test_manifest_records_versions_and_hashes(ci_corpus):
    m = json.loads((ci_corpus.root / "manifest.json").read_text())
    assert m["espeak_version"].startswith("1.52") and m["sample_rate"] == 22050
    assert set(m["prompts_sha256"]) == set(builtin.PROMPT_FILES)
    u = m["utterances"][0]
    assert hashlib.sha256((ci_corpus.root / u["wav"]).read_bytes()).hexdigest() == u["wav_sha256"]
    assert "time" not in json.dumps({k: v for k, v in m.items() if k != "utterances"}).lower().replace("total_seconds", "")


def test_rerun_reuses_and_repairs(tmp_path):
    jobs = [j for j in builtin.plan("ci") if j.speaker.id in {"en_us_m", "de_f"}][:6]
    root = tmp_path / "c"
    recs = builtin._build_chunk([j for j in jobs if j.speaker.id == "en_us_m"], root, "1.52.0")
    first = root / recs[0]["wav"]
    second = root / recs[1]["wav"]
    mtime = second.stat().st_mtime_ns
    good = first.read_bytes()
    first.write_bytes(good[: len(good) // 2])  # a truncated file is rebuilt
    recs2 = builtin._build_chunk([j for j in jobs if j.speaker.id == "en_us_m"], root, "1.52.0")
    assert recs2 == recs and first.read_bytes() == good
    assert second.stat().st_mtime_ns == mtime  # an intact file is reused, not rewritten


def test_corrupt_audio_is_detected(ci_corpus, tmp_path):
    utt = ci_corpus[0]
    bad = tmp_path / "bad.wav"
    data = bytearray(utt.wav_path.read_bytes())
    data[1000] ^= 0xFF
    bad.write_bytes(bytes(data))
    from dataclasses import replace

    with pytest.raises(AudioFileError, match="checksum"):
        replace(utt, wav_path=bad).load_audio()


def test_missing_corpus_names_the_fix(tmp_path):
    with pytest.raises(CorpusNotFoundError, match="python -m ttslab build-corpus --mode ci"):
        builtin.load_builtin("ci", tmp_path / "nothing")


def test_corrupt_manifest_names_the_fix(tmp_path):
    (tmp_path / "manifest.json").write_text("{ not json")
    with pytest.raises(CorpusNotFoundError, match="corrupt"):
        builtin.load_builtin("ci", tmp_path)


def test_unknown_speaker_and_mode():
    with pytest.raises(KeyError, match="unknown built-in speaker"):
        builtin.speaker("nobody")
    with pytest.raises(ValueError, match="mode"):
        builtin.plan("huge")


def test_full_plan_is_big_enough():
    jobs = builtin.plan("full")
    english = [j for j in jobs if j.speaker.language == "en"]
    prompts = {j.text for j in english if j.split == "train"}
    assert len(prompts) >= 300
    assert len({j.speaker.id for j in english}) >= 8
    assert len({j.speaker.language for j in jobs}) >= 3
    ci = {j.utt_id for j in builtin.plan("ci")}
    assert ci <= {j.utt_id for j in jobs}  # the CI slice is a subset of the full corpus


def test_textgrid_has_both_tiers(ci_corpus):
    utt = ci_corpus[0]
    tg = format_textgrid(utt.segments, 22050, utt.words)
    assert tg.count('class = "IntervalTier"') == 2 and f'text = "{utt.words[0]}"' in tg


def test_synthesize_speaker_is_the_corpus_speaker_with_rate_and_pitch(ci_corpus):
    """Defaults reproduce the corpus bytes; rate shortens, pitch shifts the median F0 in semitones."""
    from ttslab.dsp import f0_pyworld

    utt = ci_corpus.filter(speakers="en_gb_f", split="test")[0]
    audio, sr = builtin.synthesize_speaker(utt.text, "en_gb_f")
    assert sr == 22050 and audio.dtype == np.float32 and audio.ndim == 1
    assert np.array_equal(audio, utt.load_audio())  # rate 1, pitch 0 = the built-in speaker
    fast, _ = builtin.synthesize_speaker(utt.text, builtin.speaker("en_gb_f"), rate=1.5)
    assert 0.55 < len(fast) / len(audio) < 0.8

    def median_f0(x):
        f0 = f0_pyworld(x.astype(np.float64), sr, method="dio")
        return np.median(f0[f0 > 0])

    for shift in (-6, 6):
        shifted, _ = builtin.synthesize_speaker(utt.text, "en_gb_f", pitch=shift)
        assert abs(12 * np.log2(median_f0(shifted) / median_f0(audio)) - shift) < 1.5, shift
    slowest, _ = builtin.synthesize_speaker("Slowly.", "en_la_m", rate=0.5)  # 78 wpm -> eSpeak's 80
    assert slowest.size > 0


def test_synthesize_speaker_rejects_bad_controls():
    with pytest.raises(KeyError, match="unknown built-in speaker"):
        builtin.synthesize_speaker("Hello.", "nobody")
    with pytest.raises(ValueError, match="outside what eSpeak can do for en_wm_f"):
        builtin.synthesize_speaker("Hello.", "en_wm_f", pitch=8)
    with pytest.raises(ValueError, match="rate"):
        builtin.synthesize_speaker("Hello.", "en_us_m", rate=0)


#: sha256 of the sorted [utt_id, speaker, split, text] of every source speaker's utterance and of their
#: build keys (eSpeak 1.52.0), computed on the corpus plan before the adaptation speakers were added.
SOURCE_PLAN_PINS = {
    "ci": (548, "dd87ea60c0f53c383ea8637aeb195b5ac1398ff39d871e069fe934e481ea35a2",
           "38215c96fed8be7ce662c3523cad06f78d2234a112e315764b5543929675679e"),
    "full": (3940, "1133f013682c0526efca988143ab1cd918046b8c5dec00c155a405e6de0f4850",
             "3062a5a3370f2d8a758b0a828a7938616f5d7820e75658f73e1cd30d78722637"),
}


@pytest.mark.parametrize("mode", ["ci", "full"])
def test_source_speakers_utterances_and_splits_are_pinned(mode):
    """Adding the adaptation speakers changed none of the existing utterances, ids, splits or audio keys."""
    jobs = [j for j in builtin.plan(mode) if j.speaker.role == "source"]
    rows = sorted([j.utt_id, j.speaker.id, j.split, j.text] for j in jobs)
    keys = sorted(j.key("1.52.0") for j in jobs)
    n, rows_sha, keys_sha = SOURCE_PLAN_PINS[mode]
    assert len(rows) == n
    assert hashlib.sha256(json.dumps(rows).encode()).hexdigest() == rows_sha
    assert hashlib.sha256(json.dumps(keys).encode()).hexdigest() == keys_sha


def test_adaptation_speakers_are_new_voices_with_held_out_sentences():
    from ttslab.data.speakers import ADAPTATION_SPEAKERS, ENGLISH_SPEAKERS, SPEAKERS

    assert ENGLISH_SPEAKERS == ("en_us_m", "en_us_f", "en_gb_m", "en_gb_f", "en_rp_f", "en_sc_m", "en_ca_f",
                                "en_ny_m", "en_la_m", "en_wm_f")
    new = [builtin.speaker(s) for s in ADAPTATION_SPEAKERS]
    assert len(new) >= 4 and {s.gender for s in new} == {"male", "female"} and {s.language for s in new} == {"en"}
    combos = lambda ss: {(s.voice, s.rate, s.pitch, s.pitch_range) for s in ss}
    assert not combos(new) & combos(s for s in SPEAKERS if s.role == "source")  # eSpeak settings not heard before
    assert len({s.voice for s in new}) == len(new)
    for mode in ("ci", "full"):
        jobs = builtin.plan(mode)
        mine = [j for j in jobs if j.speaker.id in ADAPTATION_SPEAKERS]
        source_test = {j.text for j in jobs if j.speaker.id == "en_us_m" and j.split == "test"}
        for s in ADAPTATION_SPEAKERS:
            test = {j.text for j in mine if j.speaker.id == s and j.split == "test"}
            train = {j.text for j in mine if j.speaker.id == s and j.split == "train"}
            assert test == source_test and train and not train & test
    with pytest.raises(ValueError, match="role"):
        builtin.Speaker("x", "en", "en", "x", "male", role="teacher")


def test_corpus_built_before_new_speakers_names_the_fix(ci_corpus, tmp_path):
    """A corpus built by an older ttslab (fewer speakers) is refused at load, not 'unknown speaker' later."""
    import json

    from ttslab.data.builtin import load_builtin

    root = tmp_path / "old"
    root.mkdir()
    manifest = json.loads((ci_corpus.root / "manifest.json").read_text())
    manifest["speakers"] = {k: v for k, v in manifest["speakers"].items() if k != "tgt_us_f"}
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorpusNotFoundError, match=r"predates speaker\(s\) \['tgt_us_f'\].*build-corpus --mode ci"):
        load_builtin("ci", root)
    shutil.copy(ci_corpus.root / "manifest.json", root / "manifest.json")
    assert len(load_builtin("ci", root)) == len(ci_corpus)
