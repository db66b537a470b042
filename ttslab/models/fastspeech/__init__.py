"""A FastSpeech-2-style multi-speaker acoustic model: phones -> 80-band log-mel, non-autoregressive.

Ren et al. 2019 ("FastSpeech") and 2021 ("FastSpeech 2"), with phone-level pitch and energy as in
ming024's FastSpeech2 implementation. For an utterance of ``N`` phones, speaker ``s`` and ``T`` frames::

    h     = Encoder(E_phone[ids] + E_stress + E_wordpos + PE(1..N))  (N, d)   FFT blocks
    h     = h + E_speaker[s]                                     speaker embedding
    logd  = DurationPredictor(h)           target log(1 + d_n)   frames per phone
    p     = PitchPredictor(h)              target (log F0_n - mu_s) / sigma_s      (z-score per speaker)
    h     = h + PitchEmbedding(p)
    e     = EnergyPredictor(h)             target (log E_n - mu_s) / sigma_s
    h     = h + EnergyEmbedding(e)
    z     = LengthRegulator(h, d)                                (T, d)   phone n repeated d_n times
    y     = Decoder(z + PE(1..T)) W + b                          (T, 80)  FFT blocks, linear head
    y'    = y + Postnet(y)                                       optional

The input is eSpeak's phone sequence with two small context streams that eSpeak also gives: lexical
stress (0/1/2; ming024's FastSpeech 2 keeps it in the ARPAbet symbol) and the phone's position in its
word (initial/medial/final/single, or none for pauses), because eSpeak's intonation and timing rules
hinge on stressed syllables and word edges; without them pitch is much harder to predict.

An FFT ("feed-forward Transformer") block is multi-head self-attention followed by a two-layer 1-D
convolution (kernel 9 then 1 in FastSpeech 2), each with a residual connection and LayerNorm after it.
In training the variance adaptor is fed the *target* durations, pitch and energy (teacher forcing);
at inference it uses its own predictions, which is where the controls act:

* speaking rate ``r``:   ``d_n <- (exp(logd_n) - 1) / r``, rounded cumulatively so the total is exact;
* pitch shift ``k`` semitones: ``log F0 <- log F0 + k ln2 / 12``, i.e. ``p <- p + k ln2 / (12 sigma_s)``;
* energy scale ``g``:    ``log E <- log E + ln g``, i.e. ``e <- e + ln g / sigma_s``;
* speaker: another row of the speaker table (new rows for adaptation: :meth:`FastSpeech.add_speakers`).

Every padded position is masked: attention ignores padded keys and every convolution sees zeros
there, so a padded batch gives the same outputs on its real frames as each utterance alone.

Modules, in reading order: :mod:`~ttslab.models.fastspeech.config` (sizes), :mod:`~.layers`
(building blocks, length regulator), :mod:`~.model` (:class:`FastSpeech`), :mod:`~.loss` (the pure
loss), :mod:`~.data` (training items, per-speaker statistics), :mod:`~.synthesis` (text to audio
through :mod:`ttslab.text.frontend`).

Sizes come from one :class:`FastSpeechConfig` (``teacher()``, ``small()`` ~6x fewer parameters,
``tiny()`` for CI); :func:`fastspeech_loss` is the pure training loss
(``(model, batch) -> (loss, logs)``) and the forward returns every intermediate output, so
distillation can match mels, variances or hidden states.
"""

from ttslab.models.fastspeech.config import VARIANCE_EMBEDDINGS, FastSpeechConfig
from ttslab.models.fastspeech.data import (add_phone_context, collate_fastspeech, fastspeech_items,
                                           speaker_stats_from_items, stats_from_items)
from ttslab.models.fastspeech.layers import (ConvFFN, FFTBlock, FFTStack, Postnet, SelfAttention, VarianceEmbedding,
                                             VariancePredictor, length_regulate, lengths_to_mask, round_durations,
                                             sinusoidal_positions, zero_padding)
from ttslab.models.fastspeech.loss import fastspeech_loss, loss_terms
from ttslab.models.fastspeech.model import MAX_FRAMES, FastSpeech, load_fastspeech, save_fastspeech
from ttslab.models.fastspeech.synthesis import (front_end_voice, synthesize, text_to_inputs, text_to_phone_ids,
                                                utterance_inputs)
from ttslab.text.frontend import N_STRESS, WORD_POSITIONS, phone_context

__all__ = ["FastSpeechConfig", "FastSpeech", "fastspeech_loss", "loss_terms", "load_fastspeech", "save_fastspeech",
           "length_regulate", "round_durations", "lengths_to_mask", "sinusoidal_positions", "zero_padding",
           "SelfAttention", "ConvFFN", "FFTBlock", "FFTStack", "VariancePredictor", "VarianceEmbedding", "Postnet",
           "stats_from_items", "speaker_stats_from_items", "add_phone_context", "fastspeech_items",
           "collate_fastspeech", "text_to_inputs", "text_to_phone_ids", "utterance_inputs", "front_end_voice",
           "synthesize", "phone_context", "WORD_POSITIONS", "N_STRESS", "MAX_FRAMES", "VARIANCE_EMBEDDINGS"]
