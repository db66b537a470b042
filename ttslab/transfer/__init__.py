"""Transfer learning for TTS (notebook 07): speaker adaptation, adapters, and the four kinds of transfer.

Pan & Yang's survey sorts transfer by *what* is carried from a source task to a target task:

* **instance** -- source examples, selected or reweighted by similarity to the target
  (:func:`~ttslab.transfer.kinds.instance_weights`);
* **feature** -- a shared representation, here the speaker table of a multi-speaker model
  (:func:`~ttslab.transfer.kinds.distance_correlation`);
* **model / parameter** -- weights: a trained teacher adapted to a new speaker by fine-tuning, partial
  fine-tuning, a new speaker embedding, LoRA adapters or L2-SP (:mod:`~ttslab.transfer.adapt`,
  :mod:`~ttslab.transfer.adapters`);
* **relation** -- the structure between examples, kept by relational KD
  (:func:`~ttslab.transfer.kinds.relational_kd_loss`).

:mod:`~ttslab.transfer.crosslingual` carries the English teacher to Spanish and German: phones it never
saw start from their nearest English phone by articulatory features (recipe :mod:`ttslab.train.crosslingual`).

:mod:`~ttslab.transfer.evaluate` scores an adapted voice (MCD-DTW, F0 RMSE, PER) through the neural
vocoder and the judge. The recipe with a command line is :mod:`ttslab.train.adapt`.
"""

from ttslab.transfer.adapt import (METHODS, AdaptConfig, adapt_speaker, adaptation_utterances, count_trainable,
                                   l2sp_penalty, nearest_speaker, signature_distance, speaker_signature,
                                   with_new_speaker)
from ttslab.transfer.adapters import LoRA, adapter_parameters, add_lora, has_adapters, merge_lora
from ttslab.transfer.crosslingual import (UnmappablePhonesError, articulatory_distance, fine_tune,
                                         init_phone_embeddings, mapping_table, nearest_known_phone, phone_mapping,
                                         scratch_model, transfer_model)
from ttslab.transfer.evaluate import evaluate_voice, synthesize_utterance
from ttslab.transfer.kinds import (distance_correlation, instance_weights, pairwise_distances, relational_kd_loss,
                                   utterance_embeddings)

__all__ = ["METHODS", "AdaptConfig", "adapt_speaker", "adaptation_utterances", "count_trainable", "l2sp_penalty",
           "nearest_speaker", "signature_distance", "speaker_signature", "with_new_speaker", "LoRA",
           "adapter_parameters", "add_lora", "has_adapters", "merge_lora", "distance_correlation",
           "instance_weights", "pairwise_distances", "relational_kd_loss", "utterance_embeddings", "evaluate_voice",
           "synthesize_utterance", "UnmappablePhonesError", "articulatory_distance", "fine_tune", "init_phone_embeddings",
           "mapping_table", "nearest_known_phone", "phone_mapping", "scratch_model", "transfer_model"]
