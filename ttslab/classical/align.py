"""HTK-style flat-start forced alignment: monophone HMMs trained from transcripts alone.

Given audio and the phones spoken in it (no timings), find where each phone starts and ends. The
recipe is the one of the HTK Book's tutorial (ch. 3), written from scratch on top of
:mod:`ttslab.classical.hmm`:

1. **Features** (:func:`mfcc_features`): 20 MFCCs (c0..c19, librosa, 40 mel bands) + deltas +
   delta-deltas = 60 per frame, every 5 ms (hop 110 at 22050 Hz), each utterance normalised to zero
   mean and unit variance (CMVN). 25 ms Hamming window, pre-emphasis 0.97 and cepstral lifter 22
   as in HTK; deltas by regression over +-2 frames (+-10 ms). 20 cepstra rather than HTK's 13 and
   the short delta window each gained 1-2 points of boundary accuracy on training data.
2. **Models** (:func:`phone_models`): one HMM per phone with 3 emitting states, left to right
   (``0 -> 0, 0 -> 1, ...``); ``sil`` (``pau`` shares it) adds HTK's skip ``0 -> 2`` and
   back-loop ``2 -> 0`` (first/last state); ``sp`` (short pause between words) is a one-state *tee* model that may be
   skipped entirely and whose state is ``sil``'s middle state (tied, as in HTK). Every model is an
   HTK-style transition matrix over ``n + 2`` states: row 0 is the non-emitting entry, the last
   column the non-emitting exit, so ``trans[0, n + 1]`` is the tee (skip-the-model) probability.
3. **Flat start** (HCompV): every state's Gaussian = the global mean and variance of all training
   frames; uniform transition probabilities; variance floor = 0.01 x the global variance.
4. **Embedded Baum-Welch** (HERest): for each utterance, string its phones' models into one
   composite left-to-right HMM (:func:`composite_hmm`), run forward-backward
   (:func:`ttslab.classical.hmm.posteriors`) and add the expected counts to the pooled
   :class:`~ttslab.classical.hmm.Statistics` (state emissions) and to each model's transition
   counts (:func:`transition_counts`); one M-step per iteration. The states of a phone share one
   variance (``tie_variances``; see :meth:`ForcedAligner._tie_variances` for why: it took the
   held-out accuracy from ~85 % to ~92 %). The total log-likelihood never decreases (EM), which
   :attr:`ForcedAligner.history_` records.
5. **Mixtures** (HHEd ``MU``): then double every state's Gaussians (``mu +- 0.2 sigma``, halved
   weights, :func:`split_mixtures`) and re-estimate again, up to ``mixtures`` components. A split
   may lower the log-likelihood once; it rises again from the next iteration.
6. **Alignment**: Viterbi through the composite HMM; the frames each phone occupies give its segment.

Frame/sample convention: frame ``t`` is centred on sample ``t * hop`` (librosa ``center=True``), so
an utterance of ``n`` samples has ``1 + n // hop`` frames. When phone ``k`` starts at frame ``t``
its boundary is half-way between the centres of frames ``t - 1`` and ``t``, sample
``t * hop - hop // 2``; the first segment starts at 0 and the last ends at ``n``, so the segments
tile the audio. A skipped ``sp`` gives no segment; an ``sp`` that takes frames becomes a ``pau``.

Measured on the built-in corpus' held-out test utterances (speaker-dependent models trained on each
speaker's train split, all 10 English speakers; ``benchmarks/aligner.py``, results in
``benchmarks/results/aligner_*.md``): CI mode (40 training utterances per speaker) 93.2 % of the
boundaries within 20 ms, mean absolute error 8.5 ms; full mode (330) 92.0 % within 20 ms, mean
9.1 ms (per speaker 86.5-95.2 %: the breathy female voices en_rp_f and en_ca_f fall below 90 %).
Most of the remaining errors are systematic, not random: eSpeak puts the boundary between two sonorants (nasal -> vowel,
vowel -> l) near the end of the formant transition, where maximum likelihood puts it in the middle
(10-25 ms earlier), and in the breathy voices a stop's closure stays in the preceding phone (the
corpus moves a closure into the stop only when it is quiet), where the models put it in the stop.
Models trained on the reference segmentation itself reach ~95 %, so that is about the ceiling of
this model family on these labels.

>>> aligner = train_aligner(load_builtin("ci"), speakers="en_us_m")        # doctest: +SKIP
>>> segments = aligner.align_utterance(load_builtin("ci").filter(speakers="en_us_m", split="test")[0])  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

import numpy as np

from ttslab.classical.hmm import GMMEmission, Statistics, accumulate, posteriors, safe_log, viterbi
from ttslab.data.corpus import Corpus, Segment, Utterance
from ttslab.dsp.spectral import SAMPLE_RATE
from ttslab.text.phoneset import PHONES

__all__ = [
    "AlignerConfig", "ForcedAligner", "Transcript", "train_aligner", "transcript", "transcript_phones",
    "mfcc_features", "phone_models", "composite_hmm", "transition_counts", "split_mixtures",
    "boundary_errors", "accuracy_within", "word_boundary_errors", "word_starts",
]

log = logging.getLogger(__name__)

#: The short-pause tee model's name; it may appear in transcripts besides the phones of the phone set.
SP = "sp"
SILENCE_MODEL = "sil"


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class AlignerConfig:
    """Every choice of the aligner; the defaults are the ones the benchmark measures.

    Training runs ``n_iter`` Baum-Welch iterations with one Gaussian per state, then for each
    doubling of the mixture size up to ``mixtures`` (1, 2, 4, ...) one split and ``mixup_iter``
    more iterations: ``n_iter + log2(mixtures) * mixup_iter`` iterations in all.
    """

    sample_rate: int = SAMPLE_RATE
    hop: int = 110                   # 5 ms frame shift
    win_length: int = 551            # 25 ms analysis window
    n_fft: int = 1024
    n_mels: int = 40
    n_mfcc: int = 20                 # c0..c19; c0 (log energy) is what separates silence best
    lifter: int = 22
    preemphasis: float = 0.97
    delta_width: int = 5             # regression over +-2 frames = +-10 ms
    n_states: int = 3                # emitting states per phone
    n_iter: int = 10                 # single-Gaussian Baum-Welch iterations
    mixtures: int = 2                # Gaussians per state at the end (a power of 2)
    mixup_iter: int = 3              # iterations after each doubling
    variance_floor: float = 0.01     # x global variance
    tie_variances: bool = True       # the states of a phone share one diagonal variance
    sp_model: bool = True            # lexicon transcripts get a skippable ``sp`` between words
    tie_pau: bool = True             # ``pau`` uses the ``sil`` model
    progress: bool = True

    def __post_init__(self):
        m = self.mixtures
        if m < 1 or m & (m - 1):
            raise ValueError(f"mixtures must be a power of 2 (1, 2, 4, ...), got {m}")
        if self.n_states < 1 or self.n_iter < 0 or self.mixup_iter < 0:
            raise ValueError("need n_states >= 1, n_iter >= 0 and mixup_iter >= 0")
        if self.hop < 1 or self.win_length > self.n_fft:
            raise ValueError(f"need hop >= 1 and win_length <= n_fft, got {self.hop}, {self.win_length}, {self.n_fft}")

    @property
    def frame_seconds(self) -> float:
        return self.hop / self.sample_rate


# ----------------------------------------------------------------------------- features


def mfcc_features(audio, config: AlignerConfig = AlignerConfig()) -> np.ndarray:
    """``(T, 3 * n_mfcc)`` MFCC + delta + delta-delta, normalised per utterance, ``T = 1 + len // hop``.

    Per-utterance CMVN (``(x - mean) / std`` over the utterance's frames) removes the channel and
    most of the speaker's level, so a model trained on one recording applies to the next. Digital
    silence has finite features: librosa floors the log-mel at 80 dB below the utterance's peak.
    """
    import librosa

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or len(audio) == 0:
        raise ValueError(f"audio must be a non-empty 1-D array, got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio contains NaN or infinite samples")
    c = config
    y = librosa.effects.preemphasis(audio, coef=c.preemphasis) if c.preemphasis else audio
    mfcc = librosa.feature.mfcc(y=y, sr=c.sample_rate, n_mfcc=c.n_mfcc, n_fft=c.n_fft, hop_length=c.hop,
                                win_length=c.win_length, window="hamming", n_mels=c.n_mels, lifter=c.lifter)
    # mode="nearest" replicates the edge frames (as ttslab.dsp.deltas does) and works for any length.
    d1 = librosa.feature.delta(mfcc, width=c.delta_width, order=1, mode="nearest")
    d2 = librosa.feature.delta(mfcc, width=c.delta_width, order=2, mode="nearest")
    X = np.concatenate([mfcc, d1, d2]).T.astype(np.float64)
    return (X - X.mean(axis=0)) / np.maximum(X.std(axis=0), 1e-8)


# ----------------------------------------------------------------------------- transcripts


@dataclass(frozen=True)
class Transcript:
    """Phones to align (no timings) with the word index (-1 for pauses) and stress of each, and the words."""

    phones: tuple[str, ...]
    word_index: tuple[int, ...]
    stress: tuple[int, ...]
    words: tuple[str, ...] = ()


def transcript(utt: Utterance, *, sp: bool = True, lexicon=None, from_text: bool = False) -> Transcript:
    """The phones of ``utt`` without their timings.

    A built-in utterance (it has segments) gives its segment labels, exactly what was spoken.
    A real-corpus utterance (or ``from_text=True``) is transcribed from its text with
    :meth:`ttslab.text.lexicon.Lexicon.transcribe` (``sil`` at the ends, ``pau`` at punctuation)
    and, with ``sp``, gets an ``sp`` between words that no pause separates already.
    """
    if utt.segments is not None and not from_text:
        segs = utt.segments
        return Transcript(tuple(s.label for s in segs), tuple(s.word for s in segs), tuple(s.stress for s in segs),
                          tuple(utt.words or ()))
    if lexicon is None:
        from ttslab.text.lexicon import Lexicon

        lexicon = Lexicon()
    seq = lexicon.transcribe(utt.text)
    phones, words, stress = [], [], []
    for i, (p, w, s) in enumerate(zip(seq.phones, seq.word_index, seq.stress)):
        if sp and i > 0 and w >= 0 and words[-1] >= 0 and w != words[-1]:
            phones.append(SP), words.append(-1), stress.append(0)
        phones.append(p), words.append(w), stress.append(s)
    return Transcript(tuple(phones), tuple(words), tuple(stress), seq.words)


def transcript_phones(utt: Utterance, *, sp: bool = True, lexicon=None, from_text: bool = False) -> tuple[str, ...]:
    """Just the phones of :func:`transcript` (built-in: segment labels; real corpora: lexicon + ``sp``)."""
    return transcript(utt, sp=sp, lexicon=lexicon, from_text=from_text).phones


def _check_phones(phones: Sequence[str]) -> list[str]:
    phones = list(phones)
    if not phones:
        raise ValueError("the phone sequence is empty: there is nothing to align")
    unknown = sorted({p for p in phones if p not in _KNOWN})
    if unknown:
        raise ValueError(f"unknown phone(s) {unknown}: phones must be of ttslab.text.phoneset.PHONES "
                         f"(lowercase ARPAbet without stress digits, pau, sil) or {SP!r}")
    if all(p == SP for p in phones):
        raise ValueError("the phone sequence holds only skippable 'sp' models")
    return phones


_KNOWN = frozenset(PHONES) | {SP}


# ----------------------------------------------------------------------------- phone models


@dataclass
class PhoneModel:
    """One phone's HMM: pooled emission ``rows`` of its ``n`` emitting states and an HTK-style
    ``trans`` of shape ``(n + 2, n + 2)``: state 0 is the entry and ``n + 1`` the exit (both
    non-emitting), ``trans[1 + i, 1 + j]`` is emitting ``i -> j``, ``trans[1 + i, n + 1]`` leaving
    from ``i``, ``trans[0, 1 + j]`` entering at ``j`` and ``trans[0, n + 1]`` skipping the model (tee)."""

    rows: np.ndarray
    trans: np.ndarray

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def min_frames(self) -> int:
        """Fewest frames a path from entry to exit can take (3 for a phone, 2 for ``sil``, 0 for ``sp``)."""
        reach = self.trans > 0
        dist, frontier, steps = {0: 0}, [0], 0
        while frontier:  # breadth-first search; every step into an emitting state costs one frame
            steps += 1
            nxt = [j for i in frontier for j in np.flatnonzero(reach[i]) if j not in dist]
            for j in nxt:
                dist[j] = steps
            frontier = list(dict.fromkeys(nxt))
        return dist[self.n + 1] - 1


def _proto_trans(n: int, kind: str) -> np.ndarray:
    """Uniform HTK-style transitions: each allowed move from a state gets the same probability.

    ``phone``: left to right, ``i -> i, i + 1``; ``sil``: plus the skip first -> last and the back-loop
    last -> first of HTK's tutorial (``0 -> 2``, ``2 -> 0`` with 3 states: lets silence be as short as
    2 frames, or long and varied); ``tee``: the one-state ``sp`` that may be skipped.
    """
    allowed = np.zeros((n + 2, n + 2), dtype=bool)
    allowed[0, 1] = True
    for i in range(1, n + 1):
        allowed[i, i] = allowed[i, i + 1] = True
    if kind == "sil" and n >= 3:
        allowed[1, n] = allowed[n, 1] = True
    if kind == "tee":
        allowed[0, n + 1] = True
    trans = allowed.astype(np.float64)
    trans[: n + 1] /= trans[: n + 1].sum(axis=1, keepdims=True)
    return trans


def model_name(phone: str, config: AlignerConfig) -> str:
    """The model a transcript phone uses (``pau`` -> ``sil`` when ``tie_pau``)."""
    return SILENCE_MODEL if phone == "pau" and config.tie_pau else phone


def phone_models(config: AlignerConfig) -> tuple[dict[str, PhoneModel], int]:
    """A model for every phone of the phone set (unseen ones stay at the flat start) plus ``sp``.

    Returns the models and the number of pooled emission rows. ``sp``'s single state is row
    ``sil.rows[n // 2]``: tied, so its frames train the silence model (HTK's ``TI`` tie).

    >>> models, n_rows = phone_models(AlignerConfig())
    >>> models["k"].trans.round(2).tolist()             # entry, 3 emitting states, exit
    [[0.0, 1.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5, 0.0], [0.0, 0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0, 0.0]]
    >>> models["k"].min_frames, models["sil"].min_frames, models["sp"].min_frames
    (3, 2, 0)
    >>> bool(models["sp"].rows[0] == models["sil"].rows[1]), n_rows    # 52 models x 3 states (pau uses sil)
    (True, 156)
    """
    names = list(dict.fromkeys(model_name(p, config) for p in PHONES))
    n, models, row = config.n_states, {}, 0
    for name in names:
        kind = "sil" if name in ("sil", "pau") else "phone"
        models[name] = PhoneModel(np.arange(row, row + n), _proto_trans(n, kind))
        row += n
    models[SP] = PhoneModel(models[SILENCE_MODEL].rows[[n // 2]], _proto_trans(1, "tee"))
    return models, row


# ----------------------------------------------------------------------------- composite HMM


@dataclass
class Composite:
    """The utterance HMM: ``K`` emitting states, state ``k`` = emission row ``rows[k]`` of model
    instance ``owner[k]`` (the ``owner[k]``-th phone of the transcript); log start/transition/end
    probabilities and the fewest frames a path needs."""

    rows: np.ndarray
    owner: np.ndarray
    log_start: np.ndarray
    log_trans: np.ndarray
    log_end: np.ndarray
    min_frames: int


def composite_hmm(names: Sequence[str], models: dict[str, PhoneModel]) -> Composite:
    """String the models ``names`` together, eliminating their non-emitting entry/exit states.

    ``enter[m]`` is where a path that reaches model ``m``'s entry goes next: into one of its states
    (``trans[0, 1:]``), or through its tee into ``enter[m + 1]``; ``enter[M]`` is the end. Then

        start      = enter[0]
        A[i, j]    = trans_m[i, j]  (i, j in model m)   +   exit_m(i) * enter[m + 1][j]
        end(i)     = exit_m(i) * enter[m + 1][end]

    so consecutive tees (or a final ``sp``) need no special case.
    """
    instances = [models[n] for n in names]
    sizes = np.array([m.n for m in instances])
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    K, M = int(offsets[-1]), len(instances)
    enter = np.zeros((M + 1, K + 1))   # last column: the end of the utterance
    enter[M, K] = 1.0
    for m in range(M - 1, -1, -1):
        t, a = instances[m].trans, offsets[m]
        enter[m, a:a + sizes[m]] = t[0, 1:-1]
        enter[m] += t[0, -1] * enter[m + 1]
    A = np.zeros((K, K + 1))
    for m, model in enumerate(instances):
        a, b = offsets[m], offsets[m + 1]
        A[a:b, a:b] = model.trans[1:-1, 1:-1]
        A[a:b] += model.trans[1:-1, -1][:, None] * enter[m + 1][None, :]
    return Composite(rows=np.concatenate([m.rows for m in instances]), owner=np.repeat(np.arange(M), sizes),
                     log_start=safe_log(enter[0, :K]),
                     log_trans=safe_log(A[:, :K]), log_end=safe_log(A[:, K]),
                     min_frames=sum(m.min_frames for m in instances))


def transition_counts(comp: Composite, gamma: np.ndarray, xi_sum: np.ndarray) -> list[np.ndarray]:
    """Expected uses of every HTK-style transition of every model instance, ``(n + 2, n + 2)`` each.

    From the composite posteriors (``gamma`` ``(T, K)``, ``xi_sum`` ``(K, K)``): a move inside one
    instance counts for that model's ``i -> j``; a move from instance ``a`` to ``b > a`` counts as an
    exit of ``a``, an entry of ``b`` and a tee of every instance in between; the first frame is an
    entry (after tees from the start), the last an exit (then tees to the end). Summed over an
    utterance's instances of each model and normalised by rows, this is HERest's transition update.
    """
    owner = comp.owner
    M = int(owner[-1]) + 1
    same = owner[:, None] == owner[None, :]
    cross = np.where(same, 0.0, xi_sum)
    exits = cross.sum(axis=1) + gamma[-1]
    entries = cross.sum(axis=0) + gamma[0]
    # jumps[a, b]: expected moves from instance a - 1 to instance b - 1 (0 = start, M + 1 = end)
    jumps = np.zeros((M + 2, M + 2))
    np.add.at(jumps, (owner[:, None] + 1, owner[None, :] + 1), cross)
    np.add.at(jumps, (0, owner + 1), gamma[0])
    np.add.at(jumps, (owner + 1, M + 1), gamma[-1])
    # instance m is teed by every jump from before it (rows <= m) to after it (columns >= m + 2)
    tees = np.cumsum(np.cumsum(jumps[:, ::-1], axis=1)[:, ::-1], axis=0)   # tees[r, c] = sum jumps[:r+1, c:]
    counts = []
    starts = np.searchsorted(owner, np.arange(M + 1))
    for m in range(M):
        a, b = starts[m], starts[m + 1]
        n = b - a
        c = np.zeros((n + 2, n + 2))
        c[1:-1, 1:-1] = xi_sum[a:b, a:b]
        c[1:-1, -1] = exits[a:b]
        c[0, 1:-1] = entries[a:b]
        c[0, -1] = tees[m, m + 2]
        counts.append(c)
    return counts


# ----------------------------------------------------------------------------- mixtures


def split_mixtures(emission: GMMEmission) -> GMMEmission:
    """Double every state's mixture (HHEd ``MU``): each component ``(w, mu, s2)`` becomes
    ``(w/2, mu - 0.2 sigma, s2)`` and ``(w/2, mu + 0.2 sigma, s2)``; deterministic."""
    offset = 0.2 * np.sqrt(emission.covars)
    return GMMEmission(weights=np.repeat(emission.weights / 2.0, 2, axis=1),
                       means=np.stack([emission.means - offset, emission.means + offset], axis=2).reshape(
                           emission.means.shape[0], -1, emission.n_features),
                       covars=np.repeat(emission.covars, 2, axis=1), variance_floor=emission.variance_floor)


# ----------------------------------------------------------------------------- the aligner


@dataclass
class _Item:
    id: str
    features: np.ndarray
    phones: list[str]
    word_index: tuple[int, ...] | None = None
    stress: tuple[int, ...] | None = None
    n_samples: int = 0


class ForcedAligner:
    """Flat-start monophone HMM aligner (module docstring): :meth:`fit`, then :meth:`align`.

    After :meth:`fit`: ``emission`` (a pooled :class:`~ttslab.classical.hmm.GMMEmission`),
    ``models`` (name -> :class:`PhoneModel`), ``history_`` (one dict per iteration: ``iteration``,
    ``mixtures``, ``log_likelihood`` (total, before that iteration's M-step), ``per_frame``),
    ``trained_phones_`` (models that saw data) and ``fit_seconds_``. ``lexicon`` (default: CMUdict
    :class:`~ttslab.text.lexicon.Lexicon`) transcribes utterances that have no segments.
    """

    def __init__(self, config: AlignerConfig | None = None, *, lexicon=None, **overrides):
        self.config = replace(config or AlignerConfig(), **overrides)
        self.lexicon = lexicon
        self.emission: GMMEmission | None = None
        self.models: dict[str, PhoneModel] = {}
        self.history_: list[dict] = []
        self.trained_phones_: set[str] = set()

    # --- inputs

    def _item(self, entry) -> _Item:
        """An Utterance (audio + :func:`transcript`) or an ``(audio, phones, sample_rate)`` triple -> features
        + phones."""
        if isinstance(entry, Utterance):
            tr = transcript(entry, sp=self.config.sp_model, lexicon=self.lexicon)
            audio = entry.load_audio(sample_rate=self.config.sample_rate)
            return _Item(entry.id, mfcc_features(audio, self.config), _check_phones(tr.phones),
                         tr.word_index, tr.stress, len(audio))
        if not isinstance(entry, (tuple, list)) or len(entry) != 3:
            got = f"{type(entry).__name__} of length {len(entry)}" if isinstance(entry, (tuple, list)) else \
                type(entry).__name__
            raise TypeError(f"training items must be Utterances or (audio, phones, sample_rate) triples, got {got}; "
                            f"the sample rate is needed to check the audio is at {self.config.sample_rate} Hz")
        audio, phones, sample_rate = entry
        audio = self._checked_audio(audio, sample_rate)
        return _Item("<audio>", mfcc_features(audio, self.config), _check_phones(phones), n_samples=len(audio))

    def _checked_audio(self, audio, sample_rate) -> np.ndarray:
        """``audio`` as an array after checking it is at the aligner's rate (MFCC frames, the HMMs and the
        returned sample positions all assume ``config.sample_rate``; other audio aligns to nonsense)."""
        rate = self.config.sample_rate
        if sample_rate is None:
            raise TypeError(f"give the sample rate of the audio: sample_rate=<Hz> (this aligner works at {rate} Hz; "
                            f"align_utterance(utt) reads and resamples a corpus utterance for you)")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
        if sample_rate != rate:
            from ttslab.io import SampleRateError

            raise SampleRateError(f"audio is at {sample_rate} Hz but this aligner works at {rate} Hz "
                                  f"(config.sample_rate); resample it first: "
                                  f"librosa.resample(audio, orig_sr={sample_rate}, target_sr={rate})")
        return np.asarray(audio)

    def _composite(self, item: _Item) -> Composite:
        comp = composite_hmm([model_name(p, self.config) for p in item.phones], self.models)
        T = len(item.features)
        if T < comp.min_frames:
            raise ValueError(f"{item.id}: audio too short for its phone sequence: {T} frames of "
                             f"{self.config.hop} samples, but {len(item.phones)} phones need at least "
                             f"{comp.min_frames} frames ({self.config.n_states} states per phone)")
        return comp

    # --- training

    def fit(self, utterances: Iterable) -> ForcedAligner:
        """Flat start + embedded Baum-Welch on ``utterances`` (Utterances, or ``(audio, phones, sample_rate)``
        triples; the rate must be ``config.sample_rate``)."""
        from tqdm.auto import tqdm

        cfg, started = self.config, time.perf_counter()
        entries = list(utterances)
        if not entries:
            raise ValueError("no training utterances")
        items = [self._item(e) for e in tqdm(entries, desc="aligner features", unit="utt", disable=not cfg.progress)]
        self.models, n_rows = phone_models(cfg)
        composites = [self._composite(it) for it in items]

        # Flat start (HCompV): every state = the global Gaussian; floor = a fraction of the global variance.
        frames = np.concatenate([it.features for it in items])
        mean, var = frames.mean(axis=0), frames.var(axis=0)
        self.emission = GMMEmission(weights=np.ones((n_rows, 1)), means=np.tile(mean, (n_rows, 1, 1)),
                                    covars=np.tile(var, (n_rows, 1, 1)), variance_floor=cfg.variance_floor * var)
        self.trained_phones_ = {model_name(p, cfg) for it in items for p in it.phones}
        self.history_ = []
        schedule = [1] * cfg.n_iter
        m = 1
        while m < cfg.mixtures:
            m *= 2
            schedule += [m] * cfg.mixup_iter
        bar = tqdm(schedule, desc="aligner Baum-Welch", unit="it", disable=not cfg.progress)
        for iteration, n_mix in enumerate(bar, 1):
            while self.emission.weights.shape[1] < n_mix:
                self.emission = split_mixtures(self.emission)
            ll = self._baum_welch_iteration(items, composites)
            self.history_.append({"iteration": iteration, "mixtures": n_mix, "log_likelihood": ll,
                                  "per_frame": ll / len(frames)})
            log.info("aligner iteration %d (%d mix): log-likelihood %.4f per frame", iteration, n_mix, ll / len(frames))
            bar.set_postfix(ll_per_frame=f"{ll / len(frames):.3f}")
        self.n_train_frames_ = len(frames)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _baum_welch_iteration(self, items: list[_Item], composites: list[Composite]) -> float:
        """One E-step over all utterances, then the M-step of emissions and transitions; returns sum log p(X)."""
        stats = Statistics.zeros(self.emission)
        trans_counts = {name: np.zeros_like(model.trans) for name, model in self.models.items()}
        for item, comp in zip(items, composites):
            log_b = self._log_emissions(item.features, comp.rows)
            try:
                gamma, xi_sum, ll = posteriors(comp.log_start, comp.log_trans, log_b, comp.log_end)
            except ValueError as exc:
                raise ValueError(f"{item.id}: {exc}") from None
            accumulate(stats, item.features, gamma, xi_sum, self.emission, comp.rows, ll)
            names = [model_name(p, self.config) for p in item.phones]
            for name, counts in zip(names, transition_counts(comp, gamma, xi_sum)):
                trans_counts[name] += counts
        self.emission.m_step(stats)
        if self.config.tie_variances:
            self._tie_variances(stats)
        for name, counts in trans_counts.items():
            model = self.models[name]
            totals = counts.sum(axis=1, keepdims=True)
            # rows never used keep their probabilities; the exit row has none (it is non-emitting)
            model.trans = np.where(totals > 0, counts / np.where(totals > 0, totals, 1.0), model.trans)
        return stats.log_likelihood

    def _tie_variances(self, stats: Statistics) -> None:
        """One variance per phone (all its states and components): the ML estimate under that tie,

            s2_p = sum_{j in p, m} sum_t gamma_t(j, m) (x_t - mu_jm)^2 / sum_{j in p, m} sum_t gamma_t(j, m)

        floored as usual. Why: with a variance per state, the first state of a phone learns the
        varied transition out of whatever came before, gets broad, and then wins the ambiguous
        frames at the end of the previous phone, so flat-start boundaries drift early by 10-30 ms
        (nasal -> vowel, liquid -> vowel ...). A shared variance lets the means decide.
        """
        em = self.emission
        mu = em.means
        # sum_t gamma (x - mu)^2 = S - 2 mu F + n mu^2, per state and component
        scatter = stats.second - 2.0 * mu * stats.first + stats.occupancy[..., None] * mu**2
        for name, model in self.models.items():
            if name == SP:  # its state is sil's; tied with sil
                continue
            occupancy = stats.occupancy[model.rows].sum()
            if occupancy > 0:
                pooled = scatter[model.rows].sum(axis=(0, 1)) / occupancy
                em.covars[model.rows] = np.maximum(pooled, em.variance_floor)

    def _log_emissions(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``(T, K)`` log b for the composite states, each distinct emission row evaluated once."""
        unique, columns = np.unique(rows, return_inverse=True)
        return self.emission.log_prob(X, unique)[:, columns]

    # --- alignment

    def _check_fitted(self):
        if self.emission is None:
            raise RuntimeError("the aligner is not trained yet: call fit(...) first (or train_aligner)")

    def align(self, audio, phones: Sequence[str], word_index: Sequence[int] | None = None,
              stress: Sequence[int] | None = None, *, sample_rate: int | None = None) -> list[Segment]:
        """Viterbi-align ``phones`` (no timings) to ``audio``: Segments tiling it, in samples.

        ``sample_rate`` (required) is the rate of ``audio``; it must equal ``config.sample_rate``, else
        :class:`~ttslab.io.SampleRateError` says how to resample (the MFCCs, the trained models and the
        sample positions returned all assume that rate).
        """
        audio = self._checked_audio(audio, sample_rate)
        self._check_fitted()
        item = _Item("<audio>", mfcc_features(audio, self.config), _check_phones(phones),
                     None if word_index is None else tuple(word_index), None if stress is None else tuple(stress),
                     len(audio))
        return self._align_item(item)

    def align_utterance(self, utt: Utterance, *, from_text: bool = False) -> list[Segment]:
        """Align ``utt`` to its :func:`transcript` (segment labels, or lexicon phones with ``sp``)."""
        self._check_fitted()
        tr = transcript(utt, sp=self.config.sp_model, lexicon=self.lexicon, from_text=from_text)
        audio = utt.load_audio(sample_rate=self.config.sample_rate)
        item = _Item(utt.id, mfcc_features(audio, self.config), _check_phones(tr.phones), tr.word_index,
                     tr.stress, len(audio))
        segments = self._align_item(item)
        if utt.sample_rate != self.config.sample_rate:  # back to the utterance's own sample positions
            scale = utt.sample_rate / self.config.sample_rate
            n = utt.num_samples or int(round(len(audio) * scale))
            cuts = [0] + [min(int(round(s.start * scale)), n) for s in segments[1:]] + [n]
            segments = [replace(s, start=a, end=b) for s, a, b in zip(segments, cuts, cuts[1:])]
        return segments

    def _align_item(self, item: _Item) -> list[Segment]:
        unseen = sorted({p for p in item.phones if model_name(p, self.config) not in self.trained_phones_} - {SP})
        if unseen:
            warnings.warn(f"phone(s) {unseen} did not occur in the training data: their models are the flat "
                          "start (global mean and variance), so their boundaries are guesses", stacklevel=3)
        comp = self._composite(item)
        path, _ = viterbi(comp.log_start, comp.log_trans, self._log_emissions(item.features, comp.rows), comp.log_end)
        return self._segments(item, comp.owner[path])

    def _segments(self, item: _Item, instance_per_frame: np.ndarray) -> list[Segment]:
        """Frames -> segments: instance ``k`` starting at frame ``t`` starts at sample ``t * hop - hop // 2``."""
        hop, n = self.config.hop, item.n_samples
        change = np.flatnonzero(np.diff(instance_per_frame)) + 1
        first_frames = np.concatenate([[0], change])
        instances = instance_per_frame[first_frames]
        starts = np.minimum(first_frames * hop - hop // 2, n)
        starts[0] = 0
        ends = np.append(starts[1:], n)
        words = item.word_index or (-1,) * len(item.phones)
        stress = item.stress or (0,) * len(item.phones)
        out = []
        for k, a, b in zip(instances, starts, ends):
            label = item.phones[k]
            out.append(Segment("pau" if label == SP else label, int(a), int(b), int(words[k]), int(stress[k])))
        return out

    def __repr__(self) -> str:
        state = "untrained" if self.emission is None else f"{len(self.trained_phones_)} trained models"
        return f"ForcedAligner({state}, {self.config.n_states} states, {self.config.mixtures} mix)"


def train_aligner(corpus_or_utterances, speakers: str | Sequence[str] | None = None, split: str | None = "train",
                  config: AlignerConfig | None = None, **overrides) -> ForcedAligner:
    """Train a :class:`ForcedAligner` on a corpus' ``split`` (default ``"train"``) or on a list of utterances.

    Speaker-dependent by default: with a multi-speaker :class:`~ttslab.data.corpus.Corpus`, pass
    ``speakers="en_us_m"`` (one speaker: its own models, the accurate choice) or a list of ids for
    one multi-speaker model; leaving ``speakers`` out is an error then, so nobody pools speakers
    by accident. ``overrides`` replace fields of ``config`` (e.g. ``n_iter=4, progress=False``).
    """
    utts = corpus_or_utterances
    if isinstance(utts, Corpus):
        if speakers is None and len(utts.speakers) > 1:
            raise ValueError(f"the corpus has {len(utts.speakers)} speakers: pass speakers='<id>' for a "
                             "speaker-dependent aligner (recommended) or speakers=[...] to pool several")
        utts = utts.filter(speakers=speakers, split=split)
    utts = list(utts)
    if not utts:
        raise ValueError(f"no utterances to train on (speakers={speakers!r}, split={split!r})")
    return ForcedAligner(config, **overrides).fit(utts)


# ----------------------------------------------------------------------------- evaluation


def boundary_errors(reference: Sequence[Segment], hypothesis: Sequence[Segment], sample_rate: int = SAMPLE_RATE
                    ) -> np.ndarray:
    """Absolute errors (seconds) of the internal boundaries both segmentations share.

    A boundary is the start of a segment other than the first. When the label sequences are equal,
    every internal boundary counts; otherwise they are matched with a Levenshtein alignment and a
    boundary counts only where both phones on either side of it match (a ``k | ae`` boundary is
    compared with the hypothesis' ``k | ae`` boundary, never with a boundary of an inserted phone).
    """
    ref_labels, hyp_labels = [s.label for s in reference], [s.label for s in hypothesis]
    if ref_labels == hyp_labels:
        pairs = [(i, i) for i in range(len(reference))]
    else:
        from ttslab.text.lexicon import align_phone_sequences

        pairs, i, j = [], 0, 0
        for op, _, _ in align_phone_sequences(ref_labels, hyp_labels):
            if op == "match":
                pairs.append((i, j))
            i += op != "ins"
            j += op != "del"
    errors = [abs(reference[i].start - hypothesis[j].start)
              for (pi, pj), (i, j) in zip(pairs, pairs[1:]) if i == pi + 1 and j == pj + 1]
    return np.asarray(errors, dtype=np.float64) / sample_rate


def accuracy_within(errors, tolerance: float = 0.020) -> float:
    """Share of boundary ``errors`` (seconds) at most ``tolerance`` seconds (the usual 20 ms figure).

    >>> accuracy_within([0.004, 0.012, 0.020, 0.031], 0.020)
    0.75
    """
    errors = np.asarray(errors, dtype=np.float64)
    if errors.size == 0:
        raise ValueError("no boundaries to score")
    return float(np.mean(errors <= tolerance + 1e-12))


def word_boundary_errors(reference: Sequence[Segment], reference_words: Sequence[str], hypothesis: Sequence[Segment],
                         hypothesis_words: Sequence[str], sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Absolute errors (seconds) of word starts, for the words both transcripts share.

    The two word lists (e.g. eSpeak's words and the lexicon's normalised words) are matched
    case-insensitively with a Levenshtein alignment; each matched word that has segments on both
    sides contributes ``|start_ref - start_hyp|`` (:func:`word_starts`).
    """
    from ttslab.text.lexicon import align_phone_sequences

    ref_starts, hyp_starts = word_starts(reference), word_starts(hypothesis)
    errors, i, j = [], 0, 0
    for op, _, _ in align_phone_sequences([w.lower() for w in reference_words], [w.lower() for w in hypothesis_words]):
        if op == "match" and i in ref_starts and j in hyp_starts:
            errors.append(abs(ref_starts[i] - hyp_starts[j]))
        i += op != "ins"
        j += op != "del"
    return np.asarray(errors, dtype=np.float64) / sample_rate


def word_starts(segments: Sequence[Segment]) -> dict[int, int]:
    """Start sample of each word: ``{word index: start of its first segment}`` (pauses have no word)."""
    starts: dict[int, int] = {}
    for s in segments:
        if s.word >= 0 and s.word not in starts:
            starts[s.word] = s.start
    return starts
