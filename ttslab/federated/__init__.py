"""Federated learning, framework-free: clients train on data that never leaves them, a server combines
their weights. Any engine drives these plain functions: ttslab's in-process simulator, Flower's
simulation and deployment engines (``ttslab.federated.flower``), or a loop in a notebook.

One synchronous round ``t``, with global weights ``w^t`` (a ``{name: tensor}`` dict, :mod:`~.weights`)::

    for each sampled client k:   reply_k = client_update(w^t, data_k, config)     # local steps
    w^{t+1} = strategy.aggregate(w^t, [reply_1, ..., reply_K], server_round=t+1)

* :func:`client_update` (:mod:`~.client`) builds a fresh model, loads ``w^t`` (and the client's
  personal layers), runs ``local_steps`` of :func:`ttslab.train.loop.train_step` and returns a
  :class:`Reply` (``client_id``, shared ``weights``, ``num_examples``, ``metrics``);
  :func:`evaluate` measures weights on a client's data, :func:`aggregate_metrics` combines clients.
* strategies (:mod:`~.strategies`), each with its formula in its docstring:

  - FedAvg:   ``w = sum_k n_k w_k / sum_k n_k``;
  - FedProx:  clients minimise ``F_k(w) + (mu/2) ||w - w^t||^2``; the server averages as FedAvg;
  - FedAsync: ``w <- (1 - a_t) w + a_t w_k`` per arriving update, ``a_t = alpha * s(t - tau)``;
  - FedAvgM / FedAdam: a server optimizer (momentum / Adam) on the pseudo-gradient ``D = w_avg - w``;
  - FedPer-style personalization: ``ClientConfig(local_prefixes=["speaker_embedding"])`` keeps those
    layers on the client; they are never in a reply and the client carries them between rounds.

* the in-process simulator (:mod:`~.simulator`): :func:`simulate` runs N virtual clients in one
  process with sampling, dropouts, stragglers on a virtual clock (FedAsync's staleness), byte counts
  per codec, lazy clients (:class:`ClientPool`), personal layers and resumable checkpoints.

* robust aggregation (:mod:`~.robust`): :class:`SkipMalformed` drops malformed replies (NaN/inf, wrong
  names, shape or dtype) with a logged reason and aggregates the rest; FedMedian, FedTrimmedAvg,
  Krum / multi-Krum and ClippedFedAvg bound what ``f`` malicious clients can do.

* secure aggregation (:mod:`~.secure`, Bonawitz et al. 2017, simplified): clients send
  ``y_k = x_k + sum_{j>k} PRG(s_kj) - sum_{j<k} PRG(s_jk)`` in fixed point mod ``2^k``; the masks
  cancel in the sum, so the server learns ``sum_k n_k w_k`` and ``sum_k n_k`` only
  (:func:`secure_fedavg`, :class:`SecureFedAvg`), and Shamir shares of the seeds remove the masks of
  clients that drop out after committing.

Order independence. Floating-point addition is not associative: ``(a + b) + c`` and ``(a + c) + b``
may differ in the last bit, so a float32 average summed in the order replies arrive (Flower's
FedAvg) changes when two clients swap places, and two engines that run the same clients disagree.
Here every aggregation sorts the replies by client id and accumulates in float64 before casting to
the global dtype: the result is a function of the *set* of replies, bit for bit, on every engine.

Two pitfalls seen in public code, pinned by the tests:

* FedProx's term is ``(mu/2) ||w - w^t||^2`` with the norm *squared* (gradient ``mu (w - w^t)``);
  the unsquared norm has a gradient of constant length that never fades near ``w^t``;
* FedAsync's ``a_t`` is computed afresh from ``alpha`` for every update; overwriting ``alpha`` with
  ``a_t`` would compound the staleness discounts of all earlier updates.

Bad input is refused early with an error naming the client and the tensor (an empty client, an update
of the wrong keys, shape or dtype, NaN/inf, ``mu < 0``, ``alpha`` outside (0, 1], zero replies), and
the global weights are never modified: every function returns new dicts.

Recipes follow the package rule (:mod:`ttslab`): ``ttslab.train.federated_<name>`` picks the data,
the partition and the settings per mode and runs these functions; the model code stays unchanged:
any ``model_fn() -> nn.Module`` with a pure ``loss_fn(model, batch) -> (loss, logs)`` works.
"""

from ttslab.federated.client import (ClientConfig, ClientData, ClientResult, EvalResult, build_model, client_seed,
                                     client_update, evaluate, initial_weights, proximal_loss)
from ttslab.federated.compression import (CODECS, CommunicationLog, EncodedTensor, Payload, decode_update,
                                          encode_update, payload_bytes, transmit)
from ttslab.federated.partitions import (Partition, UtteranceKey, alpha_sweep, by_language, by_speaker, dirichlet,
                                         iid, make_partition, max_tv_distance, non_iid_index, tv_distance)
from ttslab.federated.robust import (AllRepliesRejected, ClippedFedAvg, FedMedian, FedTrimmedAvg, Krum, Rejection,
                                     SkipMalformed, clip_delta, clip_update, coordinate_median,
                                     coordinate_trimmed_mean, global_norm, krum_scores, random_attack, scale_attack,
                                     screen_replies, sign_flip_attack, squared_distances, trim_count, update_delta)
from ttslab.federated.secure import (PRIME, ClientKeys, FixedPoint, MaskedUpdate, RoundCost, SecureAggregationError,
                                     SecureFedAvg, SecureRound, lagrange_at_zero, pair_seed, prg, secure_fedavg,
                                     shamir_reconstruct, shamir_share)
from ttslab.federated.simulator import (ClientPool, SimulationConfig, SimulationError, SimulationResult,
                                        latest_checkpoint, sample_round, simulate, straggler_steps)
from ttslab.federated.strategies import (STALENESS, STRATEGIES, FedAdam, FedAsync, FedAvg, FedAvgM, FedProx, Reply,
                                         Strategy, aggregate_metrics, client_sort_key, make_strategy,
                                         staleness_factor, weighted_mean64)
from ttslab.federated.weights import (UpdateError, check_weights, clone_weights, get_weights, is_local, max_abs_diff,
                                      num_bytes, set_weights, split_weights, validate_update)

__all__ = ["ClientConfig", "ClientData", "ClientResult", "EvalResult", "build_model", "client_seed", "client_update",
           "evaluate", "initial_weights", "proximal_loss", "STALENESS", "STRATEGIES", "FedAdam", "FedAsync", "FedAvg",
           "FedAvgM", "FedProx", "Reply", "Strategy", "aggregate_metrics", "client_sort_key", "make_strategy",
           "staleness_factor", "weighted_mean64", "UpdateError", "check_weights", "clone_weights", "get_weights",
           "is_local", "max_abs_diff", "num_bytes", "set_weights", "split_weights", "validate_update",
           "PRIME", "ClientKeys", "FixedPoint", "MaskedUpdate", "RoundCost", "SecureAggregationError", "SecureFedAvg",
           "SecureRound", "lagrange_at_zero", "pair_seed", "prg", "secure_fedavg", "shamir_reconstruct",
           "shamir_share"]
__all__ += ["CODECS", "CommunicationLog", "EncodedTensor", "Payload", "decode_update", "encode_update",
            "payload_bytes", "transmit", "Partition", "UtteranceKey", "alpha_sweep", "by_language", "by_speaker",
            "dirichlet", "iid", "make_partition", "max_tv_distance", "non_iid_index", "tv_distance"]
__all__ += ["ClientPool", "SimulationConfig", "SimulationError", "SimulationResult", "latest_checkpoint",
            "sample_round", "simulate", "straggler_steps"]
__all__ += ["AllRepliesRejected", "ClippedFedAvg", "FedMedian", "FedTrimmedAvg", "Krum", "Rejection", "SkipMalformed",
            "clip_delta", "clip_update", "coordinate_median", "coordinate_trimmed_mean", "global_norm", "krum_scores",
            "random_attack", "scale_attack", "screen_replies", "sign_flip_attack", "squared_distances", "trim_count",
            "update_delta"]
