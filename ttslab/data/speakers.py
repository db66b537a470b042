"""The built-in speakers: eSpeak NG voices with their own rate and pitch, and how each reads text.

A speaker is a row of :data:`SPEAKERS`; :attr:`Speaker.espeak_voice` gives the front-end
settings (:class:`ttslab.text.frontend.EspeakVoice`) with which the corpus was labelled and with
which every model reads new text as that speaker. The corpus builder
(:mod:`ttslab.data.builtin`) and the models both look speakers up here, so neither reaches into
the other.

>>> speaker("en_us_f").espeak_voice
EspeakVoice(voice='en-us+f3', language='en', rate=170, pitch=55, pitch_range=60)
>>> espeak_voice_for("some_reader", "de").voice      # not built in: the language's default voice
'de'

Two roles. The ten English **source** speakers (:data:`ENGLISH_SPEAKERS`) are what every
multi-speaker model is trained on. The four English **adaptation** speakers
(:data:`ADAPTATION_SPEAKERS`, new eSpeak voice/variant/pitch/rate combinations, two female and two
male) are held back from every registered model: they are the "new voices" of speaker adaptation
(notebook 07, :mod:`ttslab.transfer`). They read the same English prompts, split the same way, so
their test sentences are unseen text as well as an unseen voice.

>>> ADAPTATION_SPEAKERS
('tgt_us_f', 'tgt_rp_m', 'tgt_sc_f', 'tgt_ca_m')
>>> set(ADAPTATION_SPEAKERS) & set(ENGLISH_SPEAKERS)
set()
"""

from __future__ import annotations

from dataclasses import dataclass

from ttslab.text.frontend import EspeakVoice

#: What a built-in speaker is for: training data of the shared models, or a held-back new voice.
ROLES = ("source", "adaptation")


@dataclass(frozen=True)
class Speaker:
    """A built-in speaker: an eSpeak voice (+variant) with its own rate and pitch.

    ``role`` is ``"source"`` (models train on it) or ``"adaptation"`` (held back as a new voice).
    It says how models use a speaker, not how it sounds, so it is no part of the audio's identity
    (:meth:`ttslab.data.builtin.Job.key` leaves it out).
    """

    id: str
    voice: str
    language: str
    accent: str
    gender: str
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50
    role: str = "source"

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"speaker role must be one of {ROLES}, got {self.role!r}")

    @property
    def espeak_voice(self) -> EspeakVoice:
        """How the front-end reads text as this speaker."""
        return EspeakVoice(self.voice, self.language, self.rate, self.pitch, self.pitch_range)


SPEAKERS: tuple[Speaker, ...] = (
    Speaker("en_us_m", "en-us", "en", "General American", "male", rate=165, pitch=45, pitch_range=50),
    Speaker("en_us_f", "en-us+f3", "en", "General American", "female", rate=170, pitch=55, pitch_range=60),
    Speaker("en_gb_m", "en+m3", "en", "Southern British", "male", rate=160, pitch=40, pitch_range=45),
    Speaker("en_gb_f", "en+f5", "en", "Southern British", "female", rate=175, pitch=60, pitch_range=55),
    Speaker("en_rp_f", "en-gb-x-rp+f4", "en", "Received Pronunciation", "female", rate=160, pitch=50, pitch_range=65),
    Speaker("en_sc_m", "en-gb-scotland+m7", "en", "Scottish", "male", rate=170, pitch=50, pitch_range=40),
    Speaker("en_ca_f", "en-029+f2", "en", "Caribbean", "female", rate=180, pitch=45, pitch_range=60),
    Speaker("en_ny_m", "en-us-nyc+m2", "en", "New York City", "male", rate=185, pitch=40, pitch_range=55),
    Speaker("en_la_m", "en-gb-x-gbclan+m4", "en", "Lancastrian", "male", rate=155, pitch=55, pitch_range=45),
    Speaker("en_wm_f", "en-gb-x-gbcwmd+f1", "en", "West Midlands", "female", rate=165, pitch=65, pitch_range=50),
    Speaker("es_m", "es", "es", "Castilian Spanish", "male", rate=165, pitch=45),
    Speaker("es_f", "es+f2", "es", "Castilian Spanish", "female", rate=170, pitch=55),
    Speaker("de_m", "de", "de", "Standard German", "male", rate=160, pitch=45),
    Speaker("de_f", "de+f4", "de", "Standard German", "female", rate=165, pitch=55),
    # new voices for speaker adaptation: no registered model has heard them
    Speaker("tgt_us_f", "en-us+f4", "en", "General American", "female", rate=160, pitch=62, pitch_range=55,
            role="adaptation"),
    Speaker("tgt_rp_m", "en-gb-x-rp+m1", "en", "Received Pronunciation", "male", rate=170, pitch=42,
            pitch_range=50, role="adaptation"),
    Speaker("tgt_sc_f", "en-gb-scotland+f5", "en", "Scottish", "female", rate=175, pitch=58, pitch_range=60,
            role="adaptation"),
    Speaker("tgt_ca_m", "en-029+m5", "en", "Caribbean", "male", rate=165, pitch=45, pitch_range=50,
            role="adaptation"),
)

#: The built-in English speakers in a fixed order: speaker index ``i`` of every multi-speaker model.
ENGLISH_SPEAKERS = tuple(s.id for s in SPEAKERS if s.language == "en" and s.role == "source")
#: The English adaptation speakers (held back from every shared model), in a fixed order.
ADAPTATION_SPEAKERS = tuple(s.id for s in SPEAKERS if s.role == "adaptation")
#: eSpeak voice for text of a language when the speaker is not built in (a real corpus' speaker).
DEFAULT_VOICES = {"en": "en-us", "es": "es", "de": "de"}


def speaker(speaker_id: str) -> Speaker:
    """The built-in speaker ``speaker_id`` (``KeyError`` naming the choices otherwise)."""
    for s in SPEAKERS:
        if s.id == speaker_id:
            return s
    raise KeyError(f"unknown built-in speaker {speaker_id!r}; choose one of {[s.id for s in SPEAKERS]}")


def is_adaptation(speaker_id: str) -> bool:
    """Whether ``speaker_id`` is a built-in adaptation speaker (see :data:`ADAPTATION_SPEAKERS`)."""
    return speaker_id in ADAPTATION_SPEAKERS


def is_builtin(speaker_id: str) -> bool:
    return any(s.id == speaker_id for s in SPEAKERS)


def espeak_voice_for(speaker_id: str, language: str = "en") -> EspeakVoice:
    """The front-end settings of a built-in speaker, else the default voice of ``language``."""
    if is_builtin(speaker_id):
        return speaker(speaker_id).espeak_voice
    if language not in DEFAULT_VOICES:
        raise ValueError(f"no default eSpeak voice for language {language!r}; known: {sorted(DEFAULT_VOICES)}")
    return EspeakVoice(DEFAULT_VOICES[language], language)
