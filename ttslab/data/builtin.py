"""The built-in corpus: a parallel, multi-speaker corpus synthesized locally with eSpeak NG.

Every speaker reads the same prompts (so the corpus is parallel), and because eSpeak reports the
exact start sample of each phone, every utterance comes with exact phone boundaries.

Layout of a built corpus (``ttslab.config.data_home() / "builtin-<mode>"`` by default)::

    manifest.json             eSpeak version, speakers, prompt hashes, every utterance + checksums
    wav/<speaker>/<id>.wav    22050 Hz, mono, 16-bit PCM
    lab/<speaker>/<id>.lab    HTK label file, 100 ns units, covering the whole WAV
    meta/<speaker>/<id>.json  per-utterance record (lets an interrupted build resume)

**Stop-closure convention.** An eSpeak phone event often marks where a stop's *burst* starts, so
the closure of a stop (``p t k b d g``) or affricate (``ch jh``) would fall at the end of the
preceding segment. Here a stop starts at its closure: when the preceding segment ends in a quiet
stretch (digital silence, or breath noise 25 dB below that segment's peak), the boundary moves back
to where the quiet begins, leaving the preceding phone at least :data:`MIN_PHONE_SAMPLES` long.
Voiced stops between voiced sounds usually have no quiet closure and keep eSpeak's boundary, as do
stops whose event already sits at the closure. After a pause, the closure stays in the pause. The
result is the TIMIT ``tcl`` + ``t`` span labelled as one ``t``.

**Determinism.** Each utterance is synthesized in a freshly forked process (see
:mod:`ttslab.text.espeak`), files are written atomically with sorted JSON, and the manifest holds no
times or absolute paths: two builds with the same eSpeak version are byte-identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import sys
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ttslab import config
from ttslab.data.corpus import Corpus, CorpusNotFoundError, Segment, Utterance
from ttslab.data.labels import format_htk_lab
from ttslab.io import atomic_write_bytes, atomic_write_json, sha256_bytes, sha256_file, wav_bytes

BUILDER_VERSION = 1
SAMPLE_RATE = 22050
#: Phones that start at their closure (see the module docstring).
STOPS = frozenset({"p", "t", "k", "b", "d", "g", "ch", "jh", "ts", "pf"})
#: Envelope (moving RMS) at or below this magnitude is silence whatever the level around it.
SILENCE_LEVEL = 2
#: A closure is this many dB below the loudest point of the segment before the stop.
CLOSURE_DB = 25.0
#: Width of the moving-RMS envelope used to find closures (2 ms).
ENVELOPE_SAMPLES = 44
#: A silent run must end within this many samples of the stop event to count as its closure.
CLOSURE_TOLERANCE = 22  # 1 ms
#: A silent run shorter than this is not a closure.
MIN_CLOSURE_SAMPLES = 44  # 2 ms
#: Utterances of one speaker built by one forked process (progress is reported per chunk).
CHUNK_SIZE = 60
#: No phone is shortened below this by moving a stop boundary.
MIN_PHONE_SAMPLES = 110  # 5 ms


@dataclass(frozen=True)
class Speaker:
    """A built-in speaker: an eSpeak voice (+variant) with its own rate and pitch."""

    id: str
    voice: str
    language: str
    accent: str
    gender: str
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50


SPEAKERS: tuple[Speaker, ...] = (
    Speaker("en_us_m", "en-us", "en", "General American", "male", rate=165, pitch=45, pitch_range=50),
    Speaker("en_us_f", "en-us+f3", "en", "General American", "female", rate=170, pitch=55, pitch_range=60),
    Speaker("en_gb_m", "en+m3", "en", "Southern British", "male", rate=160, pitch=40, pitch_range=45),
    Speaker("en_gb_f", "en+f5", "en", "Southern British", "female", rate=175, pitch=60, pitch_range=55),
    Speaker("en_rp_f", "en-gb-x-rp+f4", "en", "Received Pronunciation", "female", rate=160, pitch=50, pitch_range=65),
    Speaker("en_sc_m", "en-gb-scotland+m7", "en", "Scottish", "male", rate=170, pitch=50, pitch_range=40),
    Speaker("en_ca_f", "en-029+f2", "en", "Caribbean", "female", rate=180, pitch=45, pitch_range=60),
    Speaker("en_ny_m", "en-us-nyc+m2", "en", "New York City", "male", rate=185, pitch=40, pitch_range=55),
    Speaker("en_la_m", "en-gb-x-gbclan+m4", "en", "Lancastrian", "male", rate=155, pitch=55, pitch_range=45),
    Speaker("en_wm_f", "en-gb-x-gbcwmd+f1", "en", "West Midlands", "female", rate=165, pitch=65, pitch_range=50),
    Speaker("es_m", "es", "es", "Castilian Spanish", "male", rate=165, pitch=45),
    Speaker("es_f", "es+f2", "es", "Castilian Spanish", "female", rate=170, pitch=55),
    Speaker("de_m", "de", "de", "Standard German", "male", rate=160, pitch=45),
    Speaker("de_f", "de+f4", "de", "Standard German", "female", rate=165, pitch=55),
)

#: Prompt files (package data) and how many of each a mode uses (None = all).
PROMPT_FILES = {"en_train": ("en", "train"), "en_test": ("en", "test"), "es": ("es", None), "de": ("de", None)}
MODE_SLICES = {"ci": {"en_train": 40, "en_test": 10, "es": 12, "de": 12}, "full": {}}
#: Other languages have no separate test file: their last prompts are held out.
HELD_OUT_PER_LANGUAGE = {"ci": 2, "full": 10}


def speaker(speaker_id: str) -> Speaker:
    for s in SPEAKERS:
        if s.id == speaker_id:
            return s
    raise KeyError(f"unknown built-in speaker {speaker_id!r}; choose one of {[s.id for s in SPEAKERS]}")


_speaker = speaker  # for functions whose argument is called ``speaker``

#: eSpeak ``pitch`` units per semitone of median-F0 shift. eSpeak scales the base of the pitch
#: contour by 2^((pitch - 50) / 50) (an octave per 50 units) but not its range, so the median F0
#: moves about 3/4 of that: 50/9 units per semitone puts it within about a semitone of the
#: request over ±6 semitones (measured on the English speakers).
PITCH_UNITS_PER_SEMITONE = 50 / 9
#: eSpeak's speaking-rate limits in words per minute; relative rates are clipped to them.
RATE_LIMITS = (80, 450)


def synthesize_speaker(text: str, speaker: str | Speaker, rate: float = 1.0, pitch: float = 0.0):
    """Speak ``text`` with a built-in speaker, faster/slower and higher/lower: ``(audio, sr)``.

    ``rate`` multiplies the speaker's words per minute (clipped to eSpeak's 80..450 wpm) and
    ``pitch`` shifts its voice by about that many semitones (see :data:`PITCH_UNITS_PER_SEMITONE`;
    a shift that leaves eSpeak's 0..100 pitch scale raises ``ValueError``). ``audio`` is float32
    in [-1, 1) at 22050 Hz; with the defaults it is exactly what the corpus holds for a prompt.
    The signature fits :func:`ttslab.widgets.synthesis_panel` as it is.

    >>> audio, sr = synthesize_speaker("Hello.", "en_us_f", rate=1.5, pitch=2)
    >>> sr, audio.dtype.name
    (22050, 'float32')
    """
    from ttslab.text import espeak

    spk = speaker if isinstance(speaker, Speaker) else _speaker(speaker)
    if not rate > 0:
        raise ValueError(f"rate is a speed multiplier and must be > 0, got {rate}")
    wpm = int(np.clip(round(spk.rate * rate), *RATE_LIMITS))
    value = spk.pitch + pitch * PITCH_UNITS_PER_SEMITONE
    if not -0.5 <= value <= 100.5:
        lo, hi = -spk.pitch / PITCH_UNITS_PER_SEMITONE, (100 - spk.pitch) / PITCH_UNITS_PER_SEMITONE
        raise ValueError(f"pitch shift {pitch:+g} semitones is outside what eSpeak can do for {spk.id} "
                         f"({lo:+.1f} to {hi:+.1f} semitones)")
    syn = espeak.synthesize(text, spk.voice, rate=wpm, pitch=int(round(np.clip(value, 0, 100))),
                            pitch_range=spk.pitch_range)
    return syn.float_audio(), syn.sample_rate


def read_prompts(name: str) -> list[str]:
    """The prompts of one package prompt file (one sentence a line)."""
    text = resources.files("ttslab.data").joinpath("prompts", f"{name}.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class Job:
    utt_id: str
    speaker: Speaker
    text: str
    split: str

    def key(self, espeak_version: str) -> str:
        """What the utterance's bytes depend on; a stored utterance with the same key is reused."""
        blob = json.dumps([BUILDER_VERSION, espeak_version, asdict(self.speaker), self.text, self.split], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def plan(mode: str) -> list[Job]:
    """Every utterance of ``mode`` ("ci" or "full"), in a fixed order."""
    if mode not in MODE_SLICES:
        raise ValueError(f"mode must be 'ci' or 'full', got {mode!r}")
    jobs = []
    for name, (language, split) in PROMPT_FILES.items():
        prompts = read_prompts(name)
        limit = MODE_SLICES[mode].get(name)
        if split is None:  # hold out the last prompts of the language
            n_test = HELD_OUT_PER_LANGUAGE["full"]
            train, test = prompts[:-n_test], prompts[-n_test:]
            if mode == "ci":
                train, test = train[: limit - HELD_OUT_PER_LANGUAGE["ci"]], test[: HELD_OUT_PER_LANGUAGE["ci"]]
            numbered = [(i, p, "train") for i, p in enumerate(train)] + [(len(prompts) - n_test + i, p, "test")
                                                                       for i, p in enumerate(test)]
        else:
            numbered = [(i, p, split) for i, p in enumerate(prompts[:limit])]
        for spk in (s for s in SPEAKERS if s.language == language):
            for i, text, sp in numbered:
                jobs.append(Job(f"{spk.id}-{name}_{i + 1:04d}", spk, text, sp))
    return jobs


# ---------------------------------------------------------------------------------------------
# From eSpeak's phone events to labelled segments

def _envelope(x: np.ndarray, width: int = ENVELOPE_SAMPLES) -> np.ndarray:
    """Moving RMS over ``width`` samples (centred), in the units of ``x``."""
    power = np.convolve(x.astype(np.float64) ** 2, np.ones(width) / width, mode="same")
    return np.sqrt(power)


def closure_start(audio: np.ndarray, stop_start: int, earliest: int, segment_start: int | None = None) -> int:
    """Where the quiet closure before ``stop_start`` begins (``stop_start`` if there is none).

    A sample is quiet when the moving RMS is :data:`CLOSURE_DB` below the loudest point of the
    preceding segment (which begins at ``segment_start``, default ``earliest``) or under
    :data:`SILENCE_LEVEL`: eSpeak renders closures as digital silence, or as faint breath noise in
    the breathy (female) variants. The quiet run must end within :data:`CLOSURE_TOLERANCE` samples
    of the stop event, last at least :data:`MIN_CLOSURE_SAMPLES`, and may not reach before ``earliest``.

    >>> x = np.r_[np.ones(300), np.zeros(200), np.ones(100)].astype(np.int16) * 1000
    >>> closure_start(x, 500, earliest=110), closure_start(x, 500, earliest=400)
    (322, 400)
    >>> closure_start(np.full(600, 500, np.int16), 500, earliest=110)
    500
    """
    if segment_start is None:
        segment_start = earliest
    if stop_start - earliest < MIN_CLOSURE_SAMPLES:
        return stop_start
    env = _envelope(audio[segment_start:stop_start])
    threshold = max(env.max() * 10 ** (-CLOSURE_DB / 20), SILENCE_LEVEL)
    quiet = env[earliest - segment_start:] <= threshold
    end = len(quiet)  # skip at most CLOSURE_TOLERANCE loud samples just before the event
    while end > 0 and len(quiet) - end < CLOSURE_TOLERANCE and not quiet[end - 1]:
        end -= 1
    if end == 0 or not quiet[end - 1]:
        return stop_start
    loud = np.flatnonzero(~quiet[:end])
    begin = int(loud[-1]) + 1 if loud.size else 0
    if end - begin < MIN_CLOSURE_SAMPLES:
        return stop_start
    return earliest + begin


def segments_from_events(audio: np.ndarray, phones, language: str) -> list[Segment]:
    """Turn eSpeak phone events into segments that tile ``[0, len(audio))`` exactly.

    Leading and trailing silence become ``sil``, pauses inside ``pau``; stress marks move into
    :attr:`Segment.stress`; stops start at their closure (module docstring).
    """
    from ttslab.text.espeak_phones import MARKERS, MERGE_WITH_NEXT, split_stress, to_inventory

    n = len(audio)
    if n == 0 or not phones:
        raise ValueError("eSpeak returned no audio or no phones for this text")
    # 1. (label, start, word, stress) for each sounding event, in time order
    raw = []
    carry_start = None
    for ev in phones:
        name, stress = split_stress(ev.name)
        if name in MARKERS:
            continue
        if name in MERGE_WITH_NEXT:
            carry_start = ev.sample if carry_start is None else carry_start
            continue
        label = to_inventory(name, language)
        start = min(ev.sample if carry_start is None else carry_start, n)
        carry_start = None
        raw.append([label, start, -1 if label == "pau" else ev.word, stress if label != "pau" else 0])
    # 2. segments between consecutive starts; drop empty ones, merge neighbouring pauses
    segs: list[list] = []
    if raw and raw[0][1] > 0:
        segs.append(["sil", 0, raw[0][1], -1, 0])
    for i, (label, start, word, stress) in enumerate(raw):
        end = raw[i + 1][1] if i + 1 < len(raw) else n
        if end <= start:
            continue
        if label == "pau" and segs and segs[-1][0] in ("pau", "sil"):
            segs[-1][2] = end
            continue
        segs.append([label, start, end, word, stress])
    if not segs:
        raise ValueError("eSpeak produced only silence for this text")
    if segs[-1][0] == "pau":
        segs[-1][0] = "sil"
    elif segs[-1][2] < n:
        segs.append(["sil", segs[-1][2], n, -1, 0])
    # 3. stops start at their closure
    for i in range(1, len(segs)):
        label, prev = segs[i][0], segs[i - 1]
        if label in STOPS and prev[0] not in ("pau", "sil"):
            new_start = closure_start(audio, segs[i][1], earliest=prev[1] + MIN_PHONE_SAMPLES, segment_start=prev[1])
            prev[2] = segs[i][1] = new_start
    segs[0][1], segs[-1][2] = 0, n
    out = [Segment(str(l), int(a), int(b), int(w), int(s)) for l, a, b, w, s in segs]
    for a, b in zip(out, out[1:]):
        assert a.end == b.start and a.start < a.end, (a, b)
    return out


# ---------------------------------------------------------------------------------------------
# Building

def _stored_record(job: Job, root: Path, key: str) -> dict | None:
    """The record of an utterance already on disk with the same key and intact files, if any."""
    meta_path = root / "meta" / job.speaker.id / f"{job.utt_id}.json"
    try:
        rec = json.loads(meta_path.read_text())
        if (rec.get("key") == key and sha256_file(root / rec["wav"]) == rec["wav_sha256"]
                and sha256_file(root / rec["lab"]) == rec["lab_sha256"]):
            return rec
    except (OSError, ValueError, KeyError):
        pass  # missing, unreadable or stale: synthesize again
    return None


def _write_utterance(job: Job, root: Path, key: str, syn) -> dict:
    """Label one synthesized utterance, write its WAV, label and record atomically; return the record."""
    spk = job.speaker
    if syn.sample_rate != SAMPLE_RATE:
        raise RuntimeError(f"eSpeak produced {syn.sample_rate} Hz, expected {SAMPLE_RATE} Hz")
    try:
        segments = segments_from_events(syn.audio, syn.phones, spk.language)
    except ValueError as exc:
        raise ValueError(f"{job.utt_id} ({spk.voice}: {job.text!r}): {exc}") from None
    wav = wav_bytes(syn.audio, SAMPLE_RATE)
    lab = format_htk_lab(segments, SAMPLE_RATE).encode()
    rec = {
        "id": job.utt_id, "speaker": spk.id, "language": spk.language, "split": job.split, "text": job.text,
        "words": list(syn.words), "segments": [[s.label, s.start, s.end, s.word, s.stress] for s in segments],
        "num_samples": int(len(syn.audio)), "key": key,
        "wav": f"wav/{spk.id}/{job.utt_id}.wav", "wav_sha256": sha256_bytes(wav),
        "lab": f"lab/{spk.id}/{job.utt_id}.lab", "lab_sha256": sha256_bytes(lab),
    }
    # no fsync per file: checksums in the records catch a file lost to a crash, and it is rebuilt
    atomic_write_bytes(root / rec["wav"], wav, fsync=False)
    atomic_write_bytes(root / rec["lab"], lab, fsync=False)
    atomic_write_json(root / "meta" / spk.id / f"{job.utt_id}.json", rec, fsync=False)
    return rec


def _build_chunk(jobs: list[Job], root: Path, espeak_version: str) -> list[dict]:
    """Build one speaker's chunk of utterances. Runs in a forked child of a pristine process.

    The voice is set here once, so each per-utterance grandchild inherits the loaded voice and
    dictionary (setting a voice costs ~7 ms; a voice set on top of *other* voices would change the
    audio of some variants, which is why this happens in a fresh fork per speaker chunk).
    """
    from ttslab.text import espeak

    voices = {job.speaker.voice for job in jobs}
    if len(voices) != 1:
        raise ValueError(f"a chunk must hold one voice, got {sorted(voices)}")
    espeak._set_voice(espeak._library(), voices.pop())
    records = []
    for job in jobs:
        key = job.key(espeak_version)
        rec = _stored_record(job, root, key)
        if rec is None:
            spk = job.speaker
            syn = espeak.synthesize(job.text, spk.voice, rate=spk.rate, pitch=spk.pitch, pitch_range=spk.pitch_range)
            rec = _write_utterance(job, root, key, syn)
        records.append(rec)
    return records


def _worker(args):
    from ttslab.text import espeak

    jobs, root, version = args
    return espeak._run_forked(_build_chunk, jobs, Path(root), version)


def _chunks(jobs: list[Job], size: int) -> list[list[Job]]:
    """Consecutive runs of at most ``size`` jobs of one speaker."""
    out: list[list[Job]] = []
    for job in jobs:
        if out and out[-1][0].speaker == job.speaker and len(out[-1]) < size:
            out[-1].append(job)
        else:
            out.append([job])
    return out


def default_root(mode: str) -> Path:
    return config.data_home() / f"builtin-{mode}"


def build_corpus(mode: str | None = None, root: str | Path | None = None, *, jobs: int = 2,
                 progress: bool = True) -> Corpus:
    """Build (or finish building) the built-in corpus and return it.

    ``mode`` is "ci" (a small slice) or "full" (default from ``TTSLAB_CI``); ``root`` defaults to
    ``data_home()/builtin-<mode>``. Utterances already on disk with matching checksums are reused.
    """
    from tqdm.auto import tqdm

    from ttslab.text import espeak

    mode = mode or config.mode()
    root = Path(root) if root is not None else default_root(mode)
    info = espeak.library_info()
    todo = plan(mode)
    args = [(chunk, str(root), info["version"]) for chunk in _chunks(todo, CHUNK_SIZE)]
    root.mkdir(parents=True, exist_ok=True)
    records = []
    bar = tqdm(total=len(todo), desc=f"building built-in corpus ({mode})", unit="utt", disable=not progress)
    if jobs > 1:
        # 'spawn' keeps workers small and independent of whatever the caller has imported
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            for recs in pool.imap_unordered(_worker, args):
                records.extend(recs)
                bar.update(len(recs))
    else:
        for a in args:
            recs = _worker(a)
            records.extend(recs)
            bar.update(len(recs))
    bar.close()
    records.sort(key=lambda r: r["id"])
    manifest = {
        "name": "ttslab-builtin", "format": 1, "builder_version": BUILDER_VERSION, "mode": mode,
        "sample_rate": SAMPLE_RATE, "espeak_version": info["version"],
        "speakers": {s.id: asdict(s) for s in SPEAKERS},
        "prompts_sha256": {name: sha256_bytes("\n".join(read_prompts(name)).encode()) for name in PROMPT_FILES},
        "stop_convention": "stops and affricates start at their silent closure (see ttslab.data.builtin)",
        "num_utterances": len(records),
        "total_seconds": round(sum(r["num_samples"] for r in records) / SAMPLE_RATE, 3),
        "utterances": [{k: v for k, v in r.items() if k != "key"} for r in records],
    }
    atomic_write_json(root / "manifest.json", manifest)
    return load_builtin(mode, root)


def load_builtin(mode: str | None = None, root: str | Path | None = None) -> Corpus:
    """Load a built corpus from its manifest (fast: reads no audio)."""
    mode = mode or config.mode()
    root = Path(root) if root is not None else default_root(mode)
    path = root / "manifest.json"
    if not path.is_file():
        raise CorpusNotFoundError(
            f"no built-in corpus at {root} (missing {path.name}). Build it with "
            f"`python -m ttslab build-corpus --mode {mode}` (about a minute), or call "
            f"ttslab.data.builtin.build_corpus(mode={mode!r}); set TTSLAB_DATA to use another folder."
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        utts = [
            Utterance(
                id=r["id"], speaker=r["speaker"], text=r["text"], wav_path=root / r["wav"], sample_rate=manifest["sample_rate"],
                language=r["language"], split=r["split"], words=tuple(r["words"]),
                segments=tuple(Segment(l, a, b, w, s) for l, a, b, w, s in r["segments"]),
                num_samples=r["num_samples"], sha256=r["wav_sha256"],
            )
            for r in manifest["utterances"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise CorpusNotFoundError(f"{path} is corrupt ({exc}); delete it and rebuild with "
                                  f"`python -m ttslab build-corpus --mode {mode}`") from exc
    info = {k: v for k, v in manifest.items() if k != "utterances"}
    return Corpus("builtin", utts, root, info)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ttslab build-corpus", description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=["ci", "full"], default=config.mode())
    p.add_argument("--root", type=Path, default=None, help="output folder (default: TTSLAB_DATA/builtin-<mode>)")
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args(argv)
    corpus = build_corpus(a.mode, a.root, jobs=a.jobs)
    print(f"{corpus!r}: {corpus.info['total_seconds'] / 60:.1f} min of audio in {corpus.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
