"""Decision-tree context clustering of Gaussian statistics (HTS/HTK ``TB``), with the MDL stopping rule.

A context-dependent synthesis system has far more contexts than data: almost every phone instance
has a full context (quinphone, stress, position in syllable/word/phrase, ...) seen only once. So the
states of all instances are pooled by a binary decision tree: each internal node asks a yes/no
question about the context ("is the right phone a vowel?"), each leaf holds one shared Gaussian, and
an unseen context simply walks down to a leaf (Odell 1995; Young, Odell & Woodland 1994).

**Items and their statistics.** Item ``i`` (a context-dependent state, here one phone instance's
state ``s``) brings its sufficient statistics, from hard (Viterbi) or soft (Baum-Welch) occupancies:

    n_i  = sum_t gamma_t(i)            occupancy                     (N,)
    f_i  = sum_t gamma_t(i) x_t        first moment                  (N, D)
    g_i  = sum_t gamma_t(i) x_t**2     second moment (diagonal)      (N, D)

A set ``S`` of items pooled into one Gaussian has ``n = sum n_i``, ``mu = f / n``,
``v = g / n - mu**2`` and, with a variance floor, ``s2 = max(v, floor)``. The log-likelihood of all
its frames under that (maximum-likelihood, floored) Gaussian needs only these sums:

    L(S) = -1/2 sum_d n [ log(2 pi s2_d) + v_d / s2_d ]          (= -n/2 [D(1 + log 2pi) + sum log v_d] unfloored)

**Multi-space distribution (MSD, Tokuda et al. 2002)**, for log-F0: a frame is either voiced (a
point in a 1-D (or 3-D with deltas) space) or unvoiced (a point in a 0-dimensional space, no
value). Give each item also its ``total`` occupancy; ``n`` is then the voiced occupancy only, the
voiced space has weight ``w = n / total`` and

    L_msd(S) = L(S) + n log w + (total - n) log(1 - w)

**Splitting.** A question ``q`` splits the items of a node into ``yes`` and ``no``; its gain is

    dL(q) = L(yes) + L(no) - L(node)        (>= 0 without floors: pooling never fits better)

All questions are scored at once: with the node's answer matrix ``A`` (items x questions, 0/1),
``A' n``, ``A' f`` and ``A' g`` give the yes-side sums for every question in three matrix
products, the no side is the node's sums minus them.

**Stopping (minimum description length, Shinoda & Watanabe 2000).** Splitting one leaf into two
adds one Gaussian, i.e. ``K = 2D`` parameters (mean and variance; ``+1`` for an MSD weight). The
description length ``-L + (K * n_leaves / 2) log(Gamma)`` (``Gamma``: occupancy of the root) falls
only if

    dL(q) > scale * (K / 2) * log(Gamma)

``scale`` (HTS's ``-m`` factor, 1 by default) trades size for detail. A split is also refused if
either child would hold less than ``min_occupancy`` frames (HTS ``RO``), so no leaf Gaussian is
estimated from a handful of frames. Each leaf's split decision depends only on its own items, so
the order of growth does not change the final tree; we grow best-first anyway, which lets
``max_leaves`` keep the most useful splits. Ties go to the earlier question: deterministic.

>>> rng = np.random.default_rng(0)
>>> answers = rng.random((200, 3)) < 0.5                      # 200 items, 3 random questions
>>> x = np.where(answers[:, 1:2], 5.0, 0.0) + rng.normal(size=(200, 1))   # only question 1 matters
>>> tree = grow_tree(ItemStatistics.from_frames([xi[None] for xi in x]), answers, ["q0", "q1", "q2"])
>>> tree.n_leaves, tree.questions_used
(2, ['q1'])
>>> tree.predict(answers[:3]).tolist(), answers[:3, 1].tolist()      # leaf 0 = "yes"
([0, 1, 1], [True, False, False])
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Sequence

import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))

__all__ = ["ItemStatistics", "Tree", "TreeNode", "grow_tree", "gaussian_log_likelihood", "split_gains"]


# ----------------------------------------------------------------------------- statistics


@dataclass
class ItemStatistics:
    """Per-item sufficient statistics of diagonal Gaussians (see the module docstring).

    ``occupancy`` (N,), ``first`` (N, D), ``second`` (N, D); ``total`` (N,) only for an MSD stream,
    where ``occupancy`` counts the frames in the continuous (voiced) space and ``total`` all frames.
    """

    occupancy: np.ndarray
    first: np.ndarray
    second: np.ndarray
    total: np.ndarray | None = None

    def __post_init__(self):
        self.occupancy = np.asarray(self.occupancy, dtype=np.float64)
        self.first = np.asarray(self.first, dtype=np.float64)
        self.second = np.asarray(self.second, dtype=np.float64)
        N = len(self.occupancy)
        if self.occupancy.ndim != 1 or self.first.ndim != 2 or self.first.shape != self.second.shape \
                or len(self.first) != N:
            raise ValueError(f"need occupancy (N,), first and second (N, D); got {self.occupancy.shape}, "
                             f"{self.first.shape}, {self.second.shape}")
        if self.total is not None:
            self.total = np.asarray(self.total, dtype=np.float64)
            if self.total.shape != (N,):
                raise ValueError(f"total must have shape ({N},), got {self.total.shape}")
            if np.any(self.occupancy > self.total + 1e-9):
                raise ValueError("MSD statistics: the voiced occupancy cannot exceed the total occupancy")
        for name in ("occupancy", "first", "second"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"{name} contains NaN or infinite values")
        if np.any(self.occupancy < 0):
            raise ValueError("occupancies must be >= 0")

    @classmethod
    def from_frames(cls, frames: Sequence[np.ndarray], voiced: Sequence[np.ndarray] | None = None) -> ItemStatistics:
        """Hard-assignment statistics: item ``i`` owns the rows of ``frames[i]`` ``(T_i, D)``.

        With ``voiced`` (one bool mask per item) the statistics are MSD: only voiced rows count in
        ``occupancy``/``first``/``second``, every row in ``total``.
        """
        frames = [np.asarray(f, dtype=np.float64).reshape(len(f), -1) for f in frames]
        if voiced is None:
            masks = [np.ones(len(f), dtype=bool) for f in frames]
        else:
            masks = [np.asarray(m, dtype=bool) for m in voiced]
        occupancy = np.array([m.sum() for m in masks], dtype=np.float64)
        first = np.stack([f[m].sum(axis=0) for f, m in zip(frames, masks)])
        second = np.stack([(f[m] ** 2).sum(axis=0) for f, m in zip(frames, masks)])
        total = None if voiced is None else np.array([len(f) for f in frames], dtype=np.float64)
        return cls(occupancy, first, second, total)

    @property
    def n_items(self) -> int:
        return len(self.occupancy)

    @property
    def dim(self) -> int:
        return self.first.shape[1]

    @property
    def is_msd(self) -> bool:
        return self.total is not None

    @property
    def frames(self) -> np.ndarray:
        """Occupancy that counts for stopping rules: ``total`` for MSD, else ``occupancy``."""
        return self.total if self.total is not None else self.occupancy

    def subset(self, index) -> ItemStatistics:
        return ItemStatistics(self.occupancy[index], self.first[index], self.second[index],
                              None if self.total is None else self.total[index])

    def sums(self) -> tuple[float, np.ndarray, np.ndarray, float]:
        """Pooled ``(n, f, g, total)`` over all items."""
        total = float(self.frames.sum())
        return float(self.occupancy.sum()), self.first.sum(axis=0), self.second.sum(axis=0), total


# ----------------------------------------------------------------------------- likelihoods


def _gaussian(n, f, g, variance_floor):
    """``mu = f/n``, unfloored ``v = g/n - mu^2`` (>= 0) and floored ``s2``; broadcast over leading axes."""
    safe_n = np.where(n > 0, n, 1.0)[..., None]
    mean = f / safe_n
    var = np.maximum(g / safe_n - mean**2, 0.0)  # rounding can make it a hair negative
    return mean, var, np.maximum(var, variance_floor)


def gaussian_log_likelihood(n, f, g, variance_floor, total=None) -> np.ndarray:
    """``L = -1/2 sum_d n [log(2 pi s2_d) + v_d / s2_d]`` (+ the MSD weight term when ``total`` is given).

    ``n`` (...,), ``f`` and ``g`` (..., D): the log-likelihood of the frames behind these sums under
    their own maximum-likelihood Gaussian with variances floored at ``variance_floor``. ``n = 0`` gives 0.

    >>> x = np.array([[0.0], [2.0]])                                           # two frames, v = 1
    >>> float(gaussian_log_likelihood(2.0, x.sum(0), (x**2).sum(0), 1e-3))     # 2 * log N(1 +- 1; 1, 1)
    -2.8378770664093453
    """
    n = np.asarray(n, dtype=np.float64)
    _, var, s2 = _gaussian(n, np.asarray(f, dtype=np.float64), np.asarray(g, dtype=np.float64), variance_floor)
    loglik = -0.5 * n * np.sum(LOG_2PI + np.log(s2) + var / s2, axis=-1)
    if total is not None:
        total = np.asarray(total, dtype=np.float64)
        unvoiced = np.maximum(total - n, 0.0)
        safe_total = np.where(total > 0, total, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 log 0 = 0
            loglik = loglik + np.where(n > 0, n * np.log(np.where(n > 0, n, 1.0) / safe_total), 0.0) \
                + np.where(unvoiced > 0, unvoiced * np.log(np.where(unvoiced > 0, unvoiced, 1.0) / safe_total), 0.0)
    return loglik


def split_gains(stats: ItemStatistics, answers: np.ndarray, variance_floor, min_occupancy: float = 0.0
                ) -> tuple[np.ndarray, np.ndarray]:
    """Gain ``dL(q) = L(yes) + L(no) - L(node)`` of every question for a node holding these items.

    ``answers`` is the node's ``(N, Q)`` 0/1 matrix. Yes-side sums for all questions come from one
    product ``A' [n | f | g | total]``; the no side is the node's sums minus them. Returns the gains
    ``(Q,)`` (``-inf`` where a side is empty or below ``min_occupancy`` frames) and the yes-side
    frame occupancies ``(Q,)``.
    """
    A = np.asarray(answers, dtype=np.float64)
    columns = [stats.occupancy[:, None], stats.first, stats.second, stats.frames[:, None], np.ones((stats.n_items, 1))]
    yes = A.T @ np.concatenate(columns, axis=1)                           # (Q, 1 + 2D + 2)
    node = np.concatenate([c.sum(axis=0) for c in columns])               # (1 + 2D + 2,)
    no = node[None, :] - yes
    D = stats.dim

    def loglik(s):
        total = s[..., 1 + 2 * D] if stats.is_msd else None
        return gaussian_log_likelihood(s[..., 0], s[..., 1:1 + D], s[..., 1 + D:1 + 2 * D], variance_floor, total)

    gains = loglik(yes) + loglik(no) - loglik(node)
    yes_frames, no_frames = yes[:, 1 + 2 * D], no[:, 1 + 2 * D]
    yes_items, no_items = yes[:, -1], no[:, -1]
    valid = (yes_items > 0.5) & (no_items > 0.5) & (yes_frames >= min_occupancy) & (no_frames >= min_occupancy)
    return np.where(valid, gains, -np.inf), yes_frames


# ----------------------------------------------------------------------------- the tree


@dataclass(frozen=True)
class TreeNode:
    """One node, for printing and drawing. ``question`` is None for a leaf; ``leaf`` is its pdf index."""

    id: int
    depth: int
    question: str | None
    yes: int
    no: int
    leaf: int
    occupancy: float
    n_items: int
    gain: float


class Tree:
    """A grown tree: node arrays plus one Gaussian (and MSD weight) per leaf.

    Node ``k``: ``question[k]`` (index into ``question_names``; -1 for a leaf), children ``yes[k]`` /
    ``no[k]``, ``leaf_of[k]`` (pdf index of a leaf, else -1), ``occupancy[k]`` frames, ``n_items[k]``,
    ``gain[k]`` (log-likelihood gain of its split). Node 0 is the root. Leaf pdfs: ``means`` and
    ``variances`` ``(n_leaves, D)``, ``weights`` ``(n_leaves,)`` (MSD only: the voiced-space weight).
    """

    def __init__(self, question, yes, no, leaf_of, occupancy, n_items, gain, means, variances,
                 question_names: Sequence[str], weights=None, info: dict | None = None):
        self.question = np.asarray(question, dtype=np.int64)
        self.yes = np.asarray(yes, dtype=np.int64)
        self.no = np.asarray(no, dtype=np.int64)
        self.leaf_of = np.asarray(leaf_of, dtype=np.int64)
        self.occupancy = np.asarray(occupancy, dtype=np.float64)
        self.n_items = np.asarray(n_items, dtype=np.int64)
        self.gain = np.asarray(gain, dtype=np.float64)
        self.means = np.asarray(means, dtype=np.float64)
        self.variances = np.asarray(variances, dtype=np.float64)
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.question_names = list(question_names)
        self.info = dict(info or {})
        n = len(self.question)
        if not all(len(a) == n for a in (self.yes, self.no, self.leaf_of, self.occupancy, self.n_items, self.gain)):
            raise ValueError("node arrays must all have the same length")
        if self.means.shape != self.variances.shape or len(self.means) != int((self.leaf_of >= 0).sum()):
            raise ValueError("need one mean and variance row per leaf")
        if np.any(self.question >= len(self.question_names)):
            raise ValueError("a node asks a question outside question_names")

    # -- structure

    @property
    def n_leaves(self) -> int:
        return len(self.means)

    @property
    def n_nodes(self) -> int:
        return len(self.question)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def _depths(self) -> np.ndarray:
        depth = np.zeros(self.n_nodes, dtype=np.int64)
        for k in range(self.n_nodes):  # children always have larger ids than their parent
            if self.question[k] >= 0:
                depth[self.yes[k]] = depth[self.no[k]] = depth[k] + 1
        return depth

    @property
    def depth(self) -> int:
        """Longest root-to-leaf path, in questions (a single leaf has depth 0)."""
        return int(self._depths().max())

    @property
    def questions_used(self) -> list[str]:
        """Names of the questions asked, in node order (a question may be asked at several nodes)."""
        return [self.question_names[q] for q in self.question if q >= 0]

    @property
    def nodes(self) -> list[TreeNode]:
        """Every node as a :class:`TreeNode` (id order: a parent before its children), for drawing."""
        depth = self._depths()
        return [TreeNode(k, int(depth[k]), self.question_names[q] if q >= 0 else None, int(self.yes[k]),
                         int(self.no[k]), int(self.leaf_of[k]), float(self.occupancy[k]), int(self.n_items[k]),
                         float(self.gain[k]))
                for k, q in enumerate(self.question)]

    def to_text(self, max_depth: int | None = None) -> str:
        """An indented listing: questions with their gain, leaves with occupancy (yes branch first).

        >>> tree = Tree([0, -1, -1], [1, -1, -1], [2, -1, -1], [-1, 0, 1], [30, 10, 20], [3, 1, 2],
        ...             [9.5, 0, 0], [[0.0], [1.0]], [[1.0], [1.0]], ["C-Vowel"])
        >>> print(tree.to_text())
        C-Vowel?  (gain 9.5, 30 frames, 3 items)
          yes: leaf 0  (10 frames, 1 items)
          no:  leaf 1  (20 frames, 2 items)
        """
        lines = []

        def walk(k, indent, prefix):
            if max_depth is not None and len(indent) // 2 > max_depth:
                return
            if self.question[k] < 0:
                lines.append(f"{indent}{prefix}leaf {self.leaf_of[k]}  ({self.occupancy[k]:.0f} frames, "
                             f"{self.n_items[k]} items)")
                return
            lines.append(f"{indent}{prefix}{self.question_names[self.question[k]]}?  (gain {self.gain[k]:.1f}, "
                         f"{self.occupancy[k]:.0f} frames, {self.n_items[k]} items)")
            walk(self.yes[k], indent + "  ", "yes: ")
            walk(self.no[k], indent + "  ", "no:  ")

        walk(0, "", "")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"Tree({self.n_leaves} leaves, depth {self.depth}, dim {self.dim}"
                f"{', MSD' if self.weights is not None else ''})")

    # -- lookup

    def predict(self, answer_matrix) -> np.ndarray:
        """Leaf (pdf) index of every row of an ``(N, Q)`` answer matrix, all rows walked down together."""
        A = np.asarray(answer_matrix, dtype=bool)
        if A.ndim != 2 or A.shape[1] != len(self.question_names):
            raise ValueError(f"answer matrix must have shape (N, {len(self.question_names)}), got {A.shape}")
        node = np.zeros(len(A), dtype=np.int64)
        rows = np.arange(len(A))
        while True:
            q = self.question[node]
            inside = q >= 0
            if not inside.any():
                return self.leaf_of[node]
            answer = A[rows[inside], q[inside]]
            node[inside] = np.where(answer, self.yes[node[inside]], self.no[node[inside]])

    def leaf(self, answers) -> int:
        """Leaf (pdf) index for one context's answer vector ``(Q,)``."""
        return int(self.predict(np.asarray(answers, dtype=bool)[None, :])[0])

    # -- storage

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (no pickle): the node arrays, the pdfs and the names of the questions asked."""
        used = sorted({int(q) for q in self.question if q >= 0})
        remap = {q: i for i, q in enumerate(used)}
        out = {
            "question": np.array([remap.get(int(q), -1) for q in self.question], dtype=np.int64),
            "yes": self.yes, "no": self.no, "leaf_of": self.leaf_of, "occupancy": self.occupancy,
            "n_items": self.n_items, "gain": self.gain, "means": self.means, "variances": self.variances,
            "question_names": np.array([self.question_names[q] for q in used], dtype=np.str_),
        }
        if self.weights is not None:
            out["weights"] = self.weights
        return out

    @classmethod
    def from_arrays(cls, arrays: dict, question_names: Sequence[str]) -> Tree:
        """Rebuild from :meth:`to_arrays`, re-indexing questions into ``question_names`` (by name)."""
        names = list(question_names)
        position = {n: i for i, n in enumerate(names)}
        stored = [str(n) for n in arrays["question_names"]]
        missing = [n for n in stored if n not in position]
        if missing:
            raise ValueError(f"the tree asks questions that are not in the question set: {missing[:5]}")
        index = np.array([position[n] for n in stored] + [-1], dtype=np.int64)  # [-1] maps leaves (-1) to -1
        question = index[np.asarray(arrays["question"], dtype=np.int64)]
        return cls(question, arrays["yes"], arrays["no"], arrays["leaf_of"], arrays["occupancy"], arrays["n_items"],
                   arrays["gain"], arrays["means"], arrays["variances"], names, arrays.get("weights"))


# ----------------------------------------------------------------------------- growing


def mdl_threshold(dim: int, root_occupancy: float, scale: float = 1.0, msd: bool = False) -> float:
    """``scale * (K / 2) * log(Gamma)`` with ``K = 2 * dim (+1 for MSD)`` parameters per extra leaf.

    >>> round(mdl_threshold(1, np.e ** 2), 6)        # K = 2: (2/2) * 2
    2.0
    """
    if root_occupancy <= 1.0:
        return 0.0
    n_params = 2 * dim + (1 if msd else 0)
    return float(scale * 0.5 * n_params * np.log(root_occupancy))


def grow_tree(stats: ItemStatistics, answers, question_names: Sequence[str], *, mdl_scale: float = 1.0,
              min_occupancy: float = 0.0, variance_floor=None, floor_ratio: float = 0.01,
              max_leaves: int | None = None) -> Tree:
    """Grow a tree over ``stats`` (N items) with the ``(N, Q)`` bool ``answers`` to ``question_names``.

    A leaf is split by its best question (largest ``dL``, see :func:`split_gains`) while
    ``dL > mdl_threshold`` (scale ``mdl_scale``) and both children keep ``>= min_occupancy`` frames,
    best gain first, until no leaf can split or there are ``max_leaves``. ``variance_floor`` defaults
    to ``floor_ratio`` times the variance of all the data (HTS: ``-v 0.01`` of the global variance).
    Leaf Gaussians are ``mu = f/n``, ``s2 = max(g/n - mu^2, floor)``; an MSD leaf also gets the
    weight ``w = n / total``. A leaf without continuous-space data (an MSD leaf of unvoiced items only)
    takes its parent's Gaussian.
    """
    answers = np.asarray(answers, dtype=bool)
    if answers.shape != (stats.n_items, len(question_names)):
        raise ValueError(f"answers must have shape ({stats.n_items}, {len(question_names)}), got {answers.shape}")
    if stats.n_items == 0:
        raise ValueError("cannot grow a tree over zero items")
    n_all, f_all, g_all, frames_all = stats.sums()
    if n_all <= 0:
        raise ValueError("all items have zero occupancy: nothing to cluster")
    if variance_floor is None:
        _, global_var, _ = _gaussian(np.float64(n_all), f_all, g_all, 0.0)
        variance_floor = floor_ratio * np.maximum(global_var, 1e-12)
    variance_floor = np.broadcast_to(np.asarray(variance_floor, dtype=np.float64), (stats.dim,)).copy()
    threshold = mdl_threshold(stats.dim, frames_all, mdl_scale, stats.is_msd)
    A = answers.astype(np.float32)  # float32 halves the memory of the answer copies; sums stay exact (0/1)

    # node records: items, question, children, pdf (mean, var) and MSD weight
    nodes: list[dict] = []

    def new_node(items: np.ndarray, parent: int | None) -> int:
        sub = stats.subset(items)
        n, f, g, frames = sub.sums()
        if n > 0:
            mean, _, var = _gaussian(np.float64(n), f, g, variance_floor)
        else:  # nothing in the continuous space: inherit
            mean, var = nodes[parent]["mean"], nodes[parent]["var"]
        weight = n / frames if (stats.is_msd and frames > 0) else (nodes[parent]["weight"] if parent is not None
                                                                    and stats.is_msd else 1.0)
        nodes.append(dict(items=items, question=-1, yes=-1, no=-1, occupancy=frames, mean=mean, var=var,
                          weight=weight, gain=0.0))
        return len(nodes) - 1

    def best_split(k: int) -> tuple[float, int]:
        items = nodes[k]["items"]
        gains, _ = split_gains(stats.subset(items), A[items], variance_floor, min_occupancy)
        q = int(np.argmax(gains))  # first maximum: ties go to the earlier question
        return float(gains[q]), q

    root = new_node(np.arange(stats.n_items), None)
    heap: list[tuple[float, int, int]] = []  # (-gain, node id, question): best gain first, then oldest node

    def consider(k: int) -> None:
        gain, q = best_split(k)
        if np.isfinite(gain) and gain > threshold:
            heapq.heappush(heap, (-gain, k, q))

    consider(root)
    n_leaves = 1
    while heap and (max_leaves is None or n_leaves < max_leaves):
        neg_gain, k, q = heapq.heappop(heap)
        items = nodes[k]["items"]
        mask = answers[items, q]
        nodes[k].update(question=q, gain=-neg_gain)
        yes_id = new_node(items[mask], k)
        no_id = new_node(items[~mask], k)
        nodes[k].update(yes=yes_id, no=no_id)
        n_leaves += 1
        consider(yes_id)
        consider(no_id)

    leaf_ids = [k for k, nd in enumerate(nodes) if nd["question"] < 0]
    leaf_of = np.full(len(nodes), -1, dtype=np.int64)
    leaf_of[leaf_ids] = np.arange(len(leaf_ids))
    weights = np.array([nodes[k]["weight"] for k in leaf_ids]) if stats.is_msd else None
    info = {"mdl_threshold": threshold, "mdl_scale": mdl_scale, "min_occupancy": float(min_occupancy),
            "root_occupancy": frames_all, "log_likelihood_gain": float(sum(nd["gain"] for nd in nodes))}
    return Tree([nd["question"] for nd in nodes], [nd["yes"] for nd in nodes], [nd["no"] for nd in nodes],
                leaf_of, [nd["occupancy"] for nd in nodes], [len(nd["items"]) for nd in nodes],
                [nd["gain"] for nd in nodes], np.stack([nodes[k]["mean"] for k in leaf_ids]),
                np.stack([nodes[k]["var"] for k in leaf_ids]), question_names, weights, info)
