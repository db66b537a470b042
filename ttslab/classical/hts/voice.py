"""A trained HTS-style voice: trees, duration model, GV; synthesis by MLPG and WORLD; storage."""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ttslab.classical.hts.config import FORMAT_VERSION, STREAMS, HTSConfig, VoiceFileError, VoiceNotFoundError
from ttslab.classical.hts.durations import allocate_durations
from ttslab.classical.mlpg import mlpg, mlpg_gv, variance_scaling
from ttslab.classical.tree import Tree
from ttslab.dsp.spectral import num_frames
from ttslab.dsp.streams import phone_frame_ranges
from ttslab.dsp.world import all_pass_alpha, world_synthesis
from ttslab.io import atomic_write_bytes, sha256_bytes
from ttslab.text.frontend import EspeakVoice, segments_for


class Voice:
    """A trained speaker: trees per stream and state, a duration tree, GV statistics and settings.

    ``trees[stream][s]`` clusters state ``s`` of stream ``stream`` (see :data:`STREAMS`);
    ``duration_tree`` maps a phone's context to a 5-dim Gaussian over its state durations (frames);
    ``gv[stream] = (mean, var)``; ``global_means[stream]``: the mean static features of the training
    data (the trivial "one Gaussian for everything" baseline). ``frontend`` is the eSpeak voice used to
    read text.
    """

    def __init__(self, speaker: str, config: HTSConfig, trees: dict[str, list[Tree]], duration_tree: Tree,
                 gv: dict[str, tuple[np.ndarray, np.ndarray]], global_means: dict[str, np.ndarray], frontend: dict,
                 phones: Sequence[str], info: dict | None = None):
        from ttslab.text.context import question_set

        self.speaker, self.config, self.trees, self.duration_tree = speaker, config, trees, duration_tree
        self.gv, self.global_means, self.frontend, self.phones = gv, global_means, dict(frontend), sorted(phones)
        self.info = dict(info or {})
        self.questions = question_set()
        self.sample_rate = config.sample_rate

    def __repr__(self) -> str:
        leaves = {k: sum(t.n_leaves for t in v) for k, v in self.trees.items()}
        return (f"Voice({self.speaker!r}, leaves {leaves}, duration leaves {self.duration_tree.n_leaves}, "
                f"{self.config.frame_shift_ms:.1f} ms frames)")

    # -- from input to contexts

    def _segments(self, item) -> list:
        return segments_for(item, EspeakVoice.from_dict(self.frontend))

    def _answers(self, segments: Sequence) -> np.ndarray:
        from ttslab.text.context import answer_matrix, contexts_from_segments

        unseen = sorted({s.label for s in segments} - set(self.phones))
        if unseen:
            warnings.warn(f"voice {self.speaker!r} never saw the phone(s) {unseen} in training; "
                          "their models come from the nearest contexts in the trees", RuntimeWarning, stacklevel=3)
        return answer_matrix(self.questions, contexts_from_segments(segments))

    # -- generation

    def state_durations(self, item, rate: float = 1.0) -> np.ndarray:
        """Predicted whole frames per state ``(P, S)`` for text / phones / segments."""
        A = self._answers(self._segments(item))
        leaves = self.duration_tree.predict(A)
        return allocate_durations(self.duration_tree.means[leaves], self.duration_tree.variances[leaves], rate)

    def generate_features(self, item, rate: float = 1.0, use_gv: bool = True, durations=None) -> dict:
        """Acoustic features for text, phones, segments or an utterance (see :meth:`synthesize`).

        ``durations``: optional frames per state ``(P, S)`` (e.g. oracle ones) instead of the
        duration model's. Returns a dict: ``mcep (T, M+1)``, ``f0 (T,)`` Hz (0 unvoiced), ``bap (T, B)``,
        ``lf0_mean``/``voiced_weight`` per frame, ``durations (P, S)``, ``phones``, ``frame_period`` (ms).
        """
        segments = self._segments(item)
        A = self._answers(segments)
        S = self.config.n_states
        if durations is None:
            leaves = self.duration_tree.predict(A)
            durations = allocate_durations(self.duration_tree.means[leaves], self.duration_tree.variances[leaves],
                                           rate)
        durations = np.asarray(durations, dtype=np.int64)
        if durations.shape != (len(segments), S) or np.any(durations < 0) or durations.sum() == 0:
            raise ValueError(f"durations must be non-negative whole frames of shape ({len(segments)}, {S})")
        phone_of_frame = np.repeat(np.arange(len(segments)), durations.sum(axis=1))
        state_of_frame = np.concatenate([np.repeat(np.arange(S), d) for d in durations])

        def frame_pdfs(stream):
            # leaf of (phone, state) for every state position, then gathered frame by frame
            trees = self.trees[stream]
            leaf = np.stack([tree.predict(A) for tree in trees], axis=1)      # (P, S)
            chosen = leaf[phone_of_frame, state_of_frame]
            means = np.empty((len(chosen), trees[0].dim))
            variances = np.empty_like(means)
            weights = np.ones(len(chosen))
            for s, tree in enumerate(trees):
                at = state_of_frame == s
                means[at], variances[at] = tree.means[chosen[at]], tree.variances[chosen[at]]
                if tree.weights is not None:
                    weights[at] = tree.weights[chosen[at]]
            return means, variances, weights

        mcep_mu, mcep_var, _ = frame_pdfs("mcep")
        lf0_mu, lf0_var, voiced_weight = frame_pdfs("lf0")
        bap_mu, bap_var, _ = frame_pdfs("bap")

        mcep = self._generate_mcep(mcep_mu, mcep_var, use_gv)
        bap = np.minimum(mlpg(bap_mu, bap_var), 0.0)  # aperiodicity in dB cannot exceed 0
        voiced = voiced_weight > 0.5
        lf0 = np.zeros(len(voiced))
        for a, b in _runs(voiced):  # MSD: a trajectory per voiced stretch
            lf0[a:b] = mlpg(lf0_mu[a:b], lf0_var[a:b])[:, 0]
        if use_gv and self.config.lf0_gv and voiced.sum() > 1:
            lf0[voiced] = variance_scaling(lf0[voiced][:, None], self.gv["lf0"][0])[:, 0]
        f0 = np.where(voiced, np.exp(lf0), 0.0)
        return {"mcep": mcep, "f0": f0, "bap": bap, "voiced_weight": voiced_weight, "lf0_mean": lf0_mu[:, 0],
                "durations": durations, "phones": [s.label for s in segments],
                "frame_period": self.config.frame_shift_ms}

    def _generate_mcep(self, means, variances, use_gv: bool) -> np.ndarray:
        """MLPG of the mel-cepstrum; with GV, c1..cM by MLPG-GV (c0, the loudness, by plain MLPG)."""
        c = mlpg(means, variances)
        if not use_gv or len(c) < 3:
            return c
        T, D = c.shape
        higher = np.arange(3 * D).reshape(3, D)[:, 1:].ravel()   # columns of c1..cM, their deltas, delta-deltas
        gv_mean, gv_var = self.gv["mcep"]
        c[:, 1:] = mlpg_gv(means[:, higher], variances[:, higher], gv_mean[1:], gv_var[1:], n_iter=20)
        return c

    def vocode(self, feats: dict, n_samples: int | None = None) -> np.ndarray:
        """Audio from :meth:`generate_features` output (WORLD synthesis); ``n_samples`` cuts / pads it.

        Generated spectra can overshoot a little (GV sharpens them), so audio peaking above 0.99 is
        scaled down to 0.99 rather than clipped when played or written.
        """
        audio = world_synthesis(feats["f0"], feats["mcep"], feats["bap"], sample_rate=self.sample_rate,
                                frame_period=feats["frame_period"], alpha=all_pass_alpha(self.sample_rate),
                                n_samples=n_samples)
        peak = float(np.abs(audio).max()) if audio.size else 0.0
        return audio * np.float32(0.99 / peak) if peak > 0.99 else audio

    def synthesize(self, item, rate: float = 1.0, use_gv: bool = True) -> tuple[np.ndarray, int]:
        """Speech for ``item``: text (read by eSpeak NG for phones, words and stress), a list of phones
        (``["hh", "ah0", "l", "ow1"]``: stress digits optional, ``sil`` added at the ends, and every
        phrase read as one word, since a flat list has no word boundaries), or segments with
        ``label``, ``word`` and ``stress``. ``rate > 1`` is faster; ``use_gv`` generates the spectrum
        with global-variance compensation (and log-F0 too if ``config.lf0_gv``).
        Returns ``(audio float32, sample_rate)``."""
        return self.vocode(self.generate_features(item, rate=rate, use_gv=use_gv)), self.sample_rate

    def oracle_durations(self, utterance) -> np.ndarray:
        """Frames per state ``(P, S)`` with the true phone durations of ``utterance`` (cut as in
        training) split between states in proportion to the duration model's means."""
        if utterance.segments is None:
            raise ValueError(f"utterance {utterance.id} has no segments: no true durations to use")
        segments = list(utterance.segments)
        n_frames = num_frames(utterance.num_samples or len(utterance.load_audio()), self.config.hop)
        ranges = phone_frame_ranges(segments, n_frames, self.config.hop)
        phone_frames = ranges[:, 1] - ranges[:, 0]
        A = self._answers(segments)
        means = np.maximum(self.duration_tree.means[self.duration_tree.predict(A)], 1e-3)
        shares = np.cumsum(means, axis=1) / means.sum(axis=1, keepdims=True) * phone_frames[:, None]
        return np.diff(np.concatenate([np.zeros((len(means), 1)), np.round(shares)], axis=1), axis=1).astype(np.int64)

    def synthesize_utterance(self, utterance, oracle_durations: bool = False, rate: float = 1.0,
                             use_gv: bool = True) -> tuple[np.ndarray, int]:
        """Speech for a corpus utterance's sentence. Its phone labels are used when it has them (they
        are what the eSpeak front-end makes of its text, so no eSpeak call is needed), else its text.
        With ``oracle_durations`` (labels with timings needed) the audio has exactly the original's
        length, so frames can be compared one to one."""
        if oracle_durations:
            feats = self.generate_features(utterance, use_gv=use_gv, durations=self.oracle_durations(utterance))
            return self.vocode(feats, n_samples=utterance.num_samples), self.sample_rate
        return self.vocode(self.generate_features(utterance, rate=rate, use_gv=use_gv)), self.sample_rate

    # -- storage

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything the voice file stores, as named arrays (the metadata as UTF-8 JSON bytes)."""
        meta = {"format_version": FORMAT_VERSION, "speaker": self.speaker, "config": asdict(self.config),
                "frontend": self.frontend, "phones": self.phones, "info": self.info, "streams": list(STREAMS)}
        arrays = {"meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)}
        for stream, trees in self.trees.items():
            for s, tree in enumerate(trees):
                arrays.update({f"{stream}.{s}.{k}": v for k, v in tree.to_arrays().items()})
        arrays.update({f"dur.{k}": v for k, v in self.duration_tree.to_arrays().items()})
        for stream, (mean, var) in self.gv.items():
            arrays[f"gv.{stream}.mean"], arrays[f"gv.{stream}.var"] = mean, var
        arrays.update({f"global_mean.{stream}": mean for stream, mean in self.global_means.items()})
        return arrays

    def save(self, path) -> Path:
        """Write the voice to ``path`` (.npz, no pickle) atomically, with a SHA-256 of its contents."""
        arrays = self.to_arrays()
        arrays["checksum"] = np.array(_checksum(arrays))
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return atomic_write_bytes(Path(path), buf.getvalue())

    @classmethod
    def load(cls, path, sha256: str | None = None, *, verify: bool = True) -> Voice:
        """Read a voice written by :meth:`save`; a damaged file raises :class:`VoiceFileError`.

        The file holds its own checksum, so it needs no sidecar; ``sha256`` (or a ``.sha256`` sidecar)
        also checks the file's bytes, and ``verify=False`` skips every check (see
        :func:`ttslab.checkpoint.verify_file`)."""
        from ttslab.checkpoint import verify_file

        path = Path(path)
        if not path.is_file():
            raise VoiceNotFoundError(f"voice file {path} not found; train one with "
                                     "ttslab.classical.hts.train_voice(corpus, speaker) and Voice.save(path)")
        verify_file(path, sha256, verify=verify, self_checked=True, what="voice", error=VoiceFileError)
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
            raise VoiceFileError(f"{path} is not a readable voice file (corrupt or truncated?): {exc}") from None
        stored = str(arrays.pop("checksum", ""))
        if verify and stored != _checksum(arrays):
            raise VoiceFileError(f"{path} fails its checksum: the file is corrupt; train or copy it again")
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
        if meta["format_version"] != FORMAT_VERSION:
            raise VoiceFileError(f"{path} has voice format {meta['format_version']}; "
                                 f"this ttslab reads format {FORMAT_VERSION}")
        from ttslab.text.context import question_set

        names = [q.name for q in question_set()]
        config = HTSConfig.from_dict(meta["config"])

        def tree(prefix):
            return Tree.from_arrays({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}, names)

        trees = {stream: [tree(f"{stream}.{s}.") for s in range(config.n_states)] for stream in meta["streams"]}
        gv = {k.split(".")[1]: (arrays[k], arrays[k[:-4] + "var"]) for k in arrays if k.startswith("gv.")
              and k.endswith(".mean")}
        global_means = {k.split(".")[1]: v for k, v in arrays.items() if k.startswith("global_mean.")}
        return cls(meta["speaker"], config, trees, tree("dur."), gv, global_means, meta["frontend"], meta["phones"],
                   meta["info"])


def _checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes, in name order."""
    parts = []
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        parts += [key.encode(), str(a.dtype).encode(), str(a.shape).encode(), a.tobytes()]
    return sha256_bytes(b"\0".join(parts))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of each run of True.

    >>> _runs(np.array([0, 1, 1, 0, 1], dtype=bool))
    [(1, 3), (4, 5)]
    """
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))
