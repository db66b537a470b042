"""The sizes and options of the FastSpeech-2-style model: one :class:`FastSpeechConfig` (teacher, small, tiny)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ttslab.data.speakers import ENGLISH_SPEAKERS
from ttslab.dsp.spectral import N_MELS
from ttslab.text.phoneset import NUM_PHONE_IDS

VARIANCE_EMBEDDINGS = ("linear", "bins")


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass
class FastSpeechConfig:
    """Every size of :class:`FastSpeech`; the defaults are the teacher. ``speakers`` fixes the rows of
    the speaker table.

    Why these sizes (measured on one CPU thread, batches of 16, see the training recipe): the decoder
    runs at the frame rate (~7 frames per phone), so it costs most; FastSpeech 2's kernel-9 FFN
    (d=256) takes ~12 s a step, too slow to train here in 20 minutes, while kernel 3 with d=192 takes
    ~1 s and reached a lower validation mel loss in the same CPU time than a 4x smaller model. Dropout
    is off in the FFT blocks: a run sees the data only a few times, and dropout cost ~25% of the step.
    """

    speakers: tuple[str, ...] = ENGLISH_SPEAKERS
    n_phones: int = NUM_PHONE_IDS
    n_mels: int = N_MELS
    d_model: int = 192
    n_heads: int = 2
    encoder_layers: int = 4
    decoder_layers: int = 3
    ffn_hidden: int = 768
    ffn_kernels: tuple[int, int] = (3, 1)    # kernel of the first and second FFN convolution (FS2: 9, 1)
    phone_context: bool = True               # stress + word-position embeddings on the input
    dropout: float = 0.0                     # FFT blocks (residual branches and input)
    predictor_channels: int = 192
    predictor_kernel: int = 3
    predictor_layers: int = 2
    predictor_dropout: float = 0.2
    variance_embedding: str = "linear"       # "linear" (Conv1d on the value, FastPitch) | "bins"
    n_bins: int = 256                        # bins over [-bin_range, bin_range] z-scores ("bins")
    bin_range: float = 4.0
    postnet_layers: int = 0                  # 0: no postnet
    postnet_channels: int = 256
    postnet_kernel: int = 5

    def __post_init__(self):
        self.speakers = tuple(str(s) for s in self.speakers)
        self.ffn_kernels = tuple(int(k) for k in self.ffn_kernels)
        if not self.speakers or len(set(self.speakers)) != len(self.speakers):
            raise ValueError(f"speakers must be a non-empty list of distinct names, got {self.speakers}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.variance_embedding not in VARIANCE_EMBEDDINGS:
            raise ValueError(f"variance_embedding must be one of {VARIANCE_EMBEDDINGS}, "
                             f"got {self.variance_embedding!r}")
        if len(self.ffn_kernels) != 2 or any(k < 1 or k % 2 == 0 for k in self.ffn_kernels):
            raise ValueError(f"ffn_kernels must be two odd sizes, got {self.ffn_kernels}")
        for name in ("predictor_kernel", "postnet_kernel"):
            if getattr(self, name) % 2 == 0:
                raise ValueError(f"{name} must be odd (same-length convolutions), got {getattr(self, name)}")
        if min(self.encoder_layers, self.decoder_layers, self.predictor_layers) < 1:
            raise ValueError("encoder_layers, decoder_layers and predictor_layers must be >= 1")

    @property
    def n_speakers(self) -> int:
        return len(self.speakers)

    # Sizes. The teacher is what ships (fp16, <= ~12 MB); ``small`` is the distillation student.
    @classmethod
    def teacher(cls, **overrides) -> "FastSpeechConfig":
        """The defaults: d=192, 4 encoder + 3 decoder FFT blocks, FFN 768 (kernels 3, 1), ~5.9 M parameters."""
        return cls(**overrides)

    @classmethod
    def small(cls, **overrides) -> "FastSpeechConfig":
        """The student: d=96, 2+2 blocks, FFN 384 (kernels 3, 1): ~6x fewer parameters than the teacher."""
        base = dict(d_model=96, encoder_layers=2, decoder_layers=2, ffn_hidden=384, predictor_channels=96)
        return cls(**{**base, **overrides})

    @classmethod
    def tiny(cls, **overrides) -> "FastSpeechConfig":
        """For tests and CI: d=32, 1+1 blocks, a 2-layer postnet; trains a few steps in seconds."""
        base = dict(d_model=32, encoder_layers=1, decoder_layers=1, ffn_hidden=64, predictor_channels=32,
                    predictor_dropout=0.0, postnet_layers=2, postnet_channels=32, n_bins=32)
        return cls(**{**base, **overrides})

    def to_dict(self) -> dict:
        """Plain Python values (lists for tuples): fits a checkpoint's ``model_config``."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "FastSpeechConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown FastSpeechConfig fields {sorted(unknown)}")
        return cls(**d)
