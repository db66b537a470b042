"""Training: the generic loop (:mod:`ttslab.train.loop`) and one recipe module per model, each runnable
as ``python -m ttslab.train.<model> --mode full ...`` (the rule is in :mod:`ttslab`):

* parametric and neural voices: ``.aligner``, ``.hmm_voice``, ``.dnn_spss``, ``.dnn_multispeaker``,
  ``.fastspeech``, ``.vocoder``, ``.judge``;
* transfer and distillation: ``.adapt``, ``.crosslingual``, ``.distill_classic``, ``.distill_fastspeech``;
* federated: ``.federated_fastspeech``, ``.federated_privacy``."""

from ttslab.train.loop import (Batches, History, TrainConfig, evaluate, fit, load_or_train, lr_factor,
                               make_optimizer, seed_everything, train_step)

__all__ = ["Batches", "History", "TrainConfig", "evaluate", "fit", "load_or_train", "lr_factor",
           "make_optimizer", "seed_everything", "train_step"]
