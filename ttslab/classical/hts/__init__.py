"""An HTS-style HMM/HSMM speech synthesis system: small, but every stage of the real recipe.

Training (:func:`train_voice`), for one speaker::

    audio ──WORLD──> mcep + Δ + Δ²,  log-F0 (MSD) + Δ + Δ²,  band aperiodicity + Δ + Δ²     (5 ms frames)
    phone boundaries (segments) ──> frames of each phone
    monophone 5-state HMMs, Baum-Welch inside each phone ──Viterbi──> 5 state segments per phone
    per (phone instance, state): statistics of each stream; per phone instance: 5 state durations
    full context of each phone (ttslab.text.context) + 607 questions
    decision trees (ttslab.classical.tree), MDL stopping: one per state position and stream group,
    plus one for the 5-dim state durations
    GV statistics of the natural trajectories

Synthesis (:meth:`Voice.synthesize`)::

    text ──ttslab.text.frontend──> phones, words, stress (eSpeak's timing is thrown away) ──> full contexts
    duration tree ──> frames per state (rate control)     stream trees ──> a Gaussian per frame
    MLPG per stream (GV compensation optional), V/UV from the MSD weight ──WORLD──> audio

Modules: :mod:`~ttslab.classical.hts.config` (settings, file format), :mod:`~.durations` (state
durations), :mod:`~.training` (:func:`train_voice`), :mod:`~.voice` (:class:`Voice`: synthesis and
storage). The WORLD streams both parametric systems model live below, in :mod:`ttslab.dsp.streams`.

Choices, and why:

* **Frames of 5 ms** (hop 110 at 22050 Hz), as in HTS, rather than the project's 256-sample hop
  (11.6 ms): a quarter of the corpus' phones are shorter than five 11.6 ms frames, so 5-state
  phone models would not fit them; at 5 ms only 5 % are. Phones shorter than 5 frames skip states
  (their frames sit at evenly spread states, :func:`spread_states`).
* **Log-F0 as a multi-space distribution (MSD)**, the HTS way: a voiced frame is a point of a 3-D
  space ``[lf0, Δlf0, Δ²lf0]``, an unvoiced frame a point of a 0-D space; each leaf has a Gaussian
  over voiced frames and a voiced weight ``w``. Simplification: the deltas are taken on the
  interpolated (continuous) log-F0 contour (:func:`ttslab.dsp.log_f0_and_vuv`), so every voiced
  frame has all three values; at synthesis frames with ``w > 0.5`` are voiced and MLPG runs on each
  voiced stretch separately.
* **State segmentation from given phone boundaries.** The built-in corpus knows its phone
  boundaries exactly (eSpeak), so only the split of a phone into its 5 states is estimated, by
  monophone HMMs trained with Baum-Welch restricted to the phone segments and a final Viterbi pass.
  A real corpus would first be phone-aligned by forced alignment (:mod:`ttslab.classical.align`);
  :func:`train_voice` takes ``segments`` from any source. HTS re-estimates the clustered models with
  embedded Baum-Welch afterwards; we keep the Viterbi state segmentation (hard occupancies).
* **Explicit state durations** (HSMM-style): a 5-dim Gaussian of the state durations of each phone
  instance, clustered by its own tree. Speaking rate ``r`` targets ``T = sum(mu) / r`` frames with
  HTS's ``d_i = mu_i + rho s2_i``, ``rho = (T - sum mu) / sum s2``, so the states that vary most in
  the data stretch most (Yoshimura et al. 1998; :func:`allocate_durations`).
* **Streams clustered separately** (HTS builds one tree per state and stream): spectrum (mcep),
  log-F0/voicing (MSD) and aperiodicity (bap), each with one tree per state position.
* **GV** (Toda & Tokuda 2007) per speaker from the training utterances: MLPG with GV on c1..cM of
  the mel-cepstrum. HTS also compensates log-F0; here that is off by default
  (``HTSConfig(lf0_gv=True)`` turns on a variance-scaling postfilter on voiced log-F0): the Harvest
  F0 of the eSpeak recordings has octave jumps at voicing onsets, which inflate the natural GV, and
  stretching towards it made F0 worse (oracle durations, 10 test sentences: 198 vs 158 cents for
  en_us_m full, 61 vs 53 Hz for en_us_f CI).

>>> cfg = HTSConfig()
>>> cfg.hop, cfg.frame_shift_ms, cfg.n_states
(110, 4.988662131519274, 5)
"""

from ttslab.classical.hts.config import FORMAT_VERSION, STREAMS, HTSConfig, VoiceFileError, VoiceNotFoundError
from ttslab.classical.hts.durations import allocate_durations, spread_states
from ttslab.classical.hts.training import segment_states, state_statistics, train_monophones, train_voice, unit_sums
from ttslab.classical.hts.voice import Voice
from ttslab.dsp.streams import Observations, extract_features, phone_frame_ranges

__all__ = ["HTSConfig", "Voice", "VoiceFileError", "VoiceNotFoundError", "train_voice", "allocate_durations", "spread_states",
           "phone_frame_ranges", "STREAMS", "FORMAT_VERSION", "Observations", "extract_features", "segment_states",
           "state_statistics", "train_monophones", "unit_sums"]
