"""Text front end: phone inventory, normalization, lexicon/G2P and linguistic context.

Importing this package is light (numpy only); CMUdict loads on the first lookup. The eSpeak NG
bindings live in :mod:`ttslab.text.espeak` and are not imported here (they load a C library).

>>> normalize_text("Dr. Smith has 2 cats.")
'doctor smith has two cats.'
>>> [" ".join(p for p, _ in pron) for _, pron in g2p("Two cats")]
['t uw', 'k ae t s']
"""

from ttslab.text.context import (
    CONTEXT_FIELDS,
    LABEL_FORMAT,
    LEGAL_ONSETS,
    Question,
    answer_matrix,
    contexts_from_segments,
    feature_names,
    frame_features,
    full_context_labels,
    linguistic_features,
    parse_full_context,
    phone_contexts,
    question_set,
    syllabify,
    utterance_contexts,
)
from ttslab.text.lexicon import (
    Lexicon,
    OOVError,
    PhoneSequence,
    align_phone_sequences,
    g2p,
    spell_fallback,
    to_pronunciation,
)
from ttslab.text.normalize import (
    MAX_CHARS,
    EmptyTextError,
    TextTooLongError,
    UnknownCharacterError,
    normalize_text,
    split_sentences,
)
from ttslab.text.numbers import number_to_words
from ttslab.text.phoneset import (
    ENGLISH_PHONES,
    EXTRA_PHONES,
    ID_TO_PHONE,
    NUM_PHONE_IDS,
    PAD,
    PHONE_TO_ID,
    PHONES,
    SILENCES,
    features,
    inventory_table,
    is_silence,
    is_vowel,
    phone_id,
    validate_phones,
)

__all__ = [
    # phoneset
    "ENGLISH_PHONES", "EXTRA_PHONES", "SILENCES", "PHONES", "PAD", "PHONE_TO_ID", "ID_TO_PHONE",
    "NUM_PHONE_IDS", "phone_id", "is_vowel", "is_silence", "features", "validate_phones", "inventory_table",
    # normalize
    "MAX_CHARS", "EmptyTextError", "TextTooLongError", "UnknownCharacterError", "normalize_text",
    "number_to_words", "split_sentences",
    # lexicon
    "Lexicon", "OOVError", "PhoneSequence", "g2p", "spell_fallback", "to_pronunciation", "align_phone_sequences",
    # context
    "CONTEXT_FIELDS", "LABEL_FORMAT", "LEGAL_ONSETS", "Question", "syllabify", "phone_contexts",
    "contexts_from_segments", "utterance_contexts", "full_context_labels", "parse_full_context",
    "question_set", "answer_matrix", "linguistic_features", "feature_names", "frame_features",
]
