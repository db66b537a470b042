"""Knowledge distillation: a small *student* learns from a large *teacher*'s outputs, not only the labels.

* :mod:`~.losses` -- soft targets at temperature ``T`` and the classic loss (Hinton et al. 2015)::

      p_T(z)_i = exp(z_i / T) / sum_j exp(z_j / T)
      L = alpha * T^2 * KL(p_T(z_t) || p_T(z_s)) + (1 - alpha) * CE(z_s, y)

  with its high-temperature limit, logit matching ``||c_s - c_t||^2 / 2K`` (``c``: centred logits);
* :mod:`~.wrappers` -- distillation as a wrapper around any model's pure ``loss_fn(model, batch)``
  (:func:`distill`): soft targets, output KD (the teacher's mel), feature KD (FitNets hints through
  learned projections), duration KD (the teacher's durations, hard or as a soft distribution);
* :mod:`~.sequence` -- sequence-level KD: training items whose targets are the teacher's generated mels,
  durations, pitch and energy (:func:`teacher_generated_items`);
* :mod:`~.classic` -- the classic experiment on speech: an LSTM teacher and a GRU student classify
  log-mel frames into phones; temperature and alpha sweep, less labelled data, "dark knowledge";
* :mod:`~.export` -- a FastSpeech as one ONNX graph for onnxruntime (parity with PyTorch within 1e-4)
  and its dynamic int8 quantization (imported on demand: ``from ttslab.distill.export import ...``).

Recipes (data, settings per mode, command lines) are ``ttslab.train.distill_*``.
"""

from ttslab.distill.losses import (centred, check_alpha, check_temperature, kd_loss, logit_matching_loss, soft_kl,
                                   soft_targets)
from ttslab.distill.sequence import teacher_generated_items
from ttslab.distill.wrappers import (DURATION_KINDS, FASTSPEECH_MASKS, DurationKD, FeatureKD, KDStudent, OutputKD,
                                     SoftTargetKD, classic_kd, distill, duration_kd, fastspeech_layers, feature_kd,
                                     output_kd)

__all__ = ["soft_targets", "soft_kl", "kd_loss", "logit_matching_loss", "centred", "check_temperature",
           "check_alpha", "distill", "classic_kd", "output_kd", "feature_kd", "duration_kd", "KDStudent",
           "SoftTargetKD", "OutputKD", "FeatureKD", "DurationKD", "DURATION_KINDS", "FASTSPEECH_MASKS",
           "fastspeech_layers", "teacher_generated_items"]
