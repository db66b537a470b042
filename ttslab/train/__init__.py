"""Training: the generic loop (:mod:`ttslab.train.loop`) and one recipe module per model
(``ttslab.train.aligner``, ``.hmm_voice``, ``.dnn_spss``, ``.fastspeech``, ``.vocoder``, ``.judge``,
``.distill_classic``, ``.distill_fastspeech``),
each runnable as ``python -m ttslab.train.<model> --mode full ...`` (the rule is in :mod:`ttslab`)."""

from ttslab.train.loop import (Batches, History, TrainConfig, evaluate, fit, load_or_train, lr_factor,
                               make_optimizer, seed_everything, train_step)

__all__ = ["Batches", "History", "TrainConfig", "evaluate", "fit", "load_or_train", "lr_factor",
           "make_optimizer", "seed_everything", "train_step"]
