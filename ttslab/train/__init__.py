"""Training: the generic loop (:mod:`ttslab.train.loop`) and one recipe module per model
(``ttslab.train.judge``, ``.vocoder``, ``.dnn_spss``, ``.fastspeech``), each runnable as
``python -m ttslab.train.<model> --mode full --out PATH``."""

from ttslab.train.loop import (Batches, History, TrainConfig, evaluate, fit, load_or_train, lr_factor,
                               make_optimizer, seed_everything, train_step)

__all__ = ["Batches", "History", "TrainConfig", "evaluate", "fit", "load_or_train", "lr_factor",
           "make_optimizer", "seed_everything", "train_step"]
