"""The built-in corpus: a parallel, multi-speaker corpus synthesized locally with eSpeak NG.

Every speaker reads the same prompts (so the corpus is parallel), and because eSpeak reports the
exact start sample of each phone, every utterance comes with exact phone boundaries. The English
adaptation speakers (:data:`ttslab.data.speakers.ADAPTATION_SPEAKERS`) read the English prompts with
the same train/test split as the source speakers; adding them left every source speaker's
utterances, ids and splits as they were (``tests/test_corpus.py`` pins them).

Layout of a built corpus (``ttslab.config.data_home() / "builtin-<mode>"`` by default)::

    manifest.json             eSpeak version, speakers, prompt hashes, every utterance + checksums
    wav/<speaker>/<id>.wav    22050 Hz, mono, 16-bit PCM
    lab/<speaker>/<id>.lab    HTK label file, 100 ns units, covering the whole WAV
    meta/<speaker>/<id>.json  per-utterance record (lets an interrupted build resume)

**Stop-closure convention.** An eSpeak phone event often marks where a stop's *burst* starts, so
the closure of a stop (``p t k b d g``) or affricate (``ch jh``) would fall at the end of the
preceding segment. Here a stop starts at its closure: when the preceding segment ends in a quiet
stretch (digital silence, or breath noise 25 dB below that segment's peak), the boundary moves back
to where the quiet begins, leaving the preceding phone at least
:data:`ttslab.text.frontend.MIN_PHONE_SAMPLES` long.
Voiced stops between voiced sounds usually have no quiet closure and keep eSpeak's boundary, as do
stops whose event already sits at the closure. After a pause, the closure stays in the pause. The
result is the TIMIT ``tcl`` + ``t`` span labelled as one ``t``. The labelling itself is the
front-end's (:func:`ttslab.text.frontend.analyze`), the one every model reads text with.

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
from ttslab.dsp.spectral import SAMPLE_RATE
from ttslab.data.speakers import SPEAKERS, Speaker, speaker
from ttslab.io import atomic_write_bytes, atomic_write_json, sha256_bytes, sha256_file, wav_bytes
from ttslab.text.frontend import Analysis, analyze  # the corpus is labelled by the models' own front-end

BUILDER_VERSION = 1
#: Utterances of one speaker built by one forked process (progress is reported per chunk).
CHUNK_SIZE = 60

#: Prompt files (package data) and how many of each a mode uses (None = all).
PROMPT_FILES = {"en_train": ("en", "train"), "en_test": ("en", "test"), "es": ("es", None), "de": ("de", None)}
MODE_SLICES = {"ci": {"en_train": 40, "en_test": 10, "es": 12, "de": 12}, "full": {}}
#: Other languages have no separate test file: their last prompts are held out.
HELD_OUT_PER_LANGUAGE = {"ci": 2, "full": 10}


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
        """What the utterance's bytes depend on; a stored utterance with the same key is reused.

        The speaker's ``role`` is left out: it does not change the audio, and leaving it out keeps
        the keys of corpora built before roles existed."""
        voice = {k: v for k, v in asdict(self.speaker).items() if k != "role"}
        blob = json.dumps([BUILDER_VERSION, espeak_version, voice, self.text, self.split], sort_keys=True)
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


def _write_utterance(job: Job, root: Path, key: str, analysis: Analysis) -> dict:
    """Write one analysed utterance's WAV, label and record atomically; return the record."""
    spk = job.speaker
    if analysis.sample_rate != SAMPLE_RATE:
        raise RuntimeError(f"eSpeak produced {analysis.sample_rate} Hz, expected {SAMPLE_RATE} Hz")
    segments = analysis.segments
    wav = wav_bytes(analysis.audio, SAMPLE_RATE)
    lab = format_htk_lab(segments, SAMPLE_RATE).encode()
    rec = {
        "id": job.utt_id, "speaker": spk.id, "language": spk.language, "split": job.split, "text": job.text,
        "words": list(analysis.words), "segments": [[s.label, s.start, s.end, s.word, s.stress] for s in segments],
        "num_samples": int(len(analysis.audio)), "key": key,
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
    espeak.preload_voice(voices.pop())
    records = []
    for job in jobs:
        key = job.key(espeak_version)
        rec = _stored_record(job, root, key)
        if rec is None:
            try:  # the front-end every model reads text with labels the corpus too
                analysis = analyze(job.text, job.speaker.espeak_voice)
            except ValueError as exc:
                raise ValueError(f"{job.utt_id} ({job.speaker.voice}: {job.text!r}): {exc}") from None
            rec = _write_utterance(job, root, key, analysis)
        records.append(rec)
    return records


def _worker(args):
    from ttslab.text import espeak

    jobs, root, version = args
    return espeak.run_forked(_build_chunk, jobs, Path(root), version)


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


def build_corpus(mode: str, root: str | Path | None = None, *, jobs: int = 2,
                 progress: bool = True) -> Corpus:
    """Build (or finish building) the built-in corpus and return it.

    ``mode`` is "ci" (a small slice) or "full"; ``root`` defaults to
    ``data_home()/builtin-<mode>``. Utterances already on disk with matching checksums are reused.
    """
    from tqdm.auto import tqdm

    from ttslab.text import espeak

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


def load_builtin(mode: str, root: str | Path | None = None) -> Corpus:
    """Load a built corpus of ``mode`` ("ci" or "full") from its manifest (fast: reads no audio)."""
    if mode not in MODE_SLICES:
        raise ValueError(f"mode must be 'ci' or 'full', got {mode!r} (notebooks pass ttslab.config.mode())")
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
    missing = sorted({s.id for s in SPEAKERS} - set(manifest.get("speakers", ())))
    if missing:  # built by an older ttslab: the speakers added since would be "unknown" much later
        raise CorpusNotFoundError(
            f"the built-in corpus at {root} predates speaker(s) {missing} of this ttslab version; finish it with "
            f"`python -m ttslab build-corpus --mode {mode}` (utterances already on disk are reused)")
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
