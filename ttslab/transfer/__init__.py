"""Transfer learning for TTS: speaker adaptation and cross-lingual, low-resource voices.

Modules: :mod:`ttslab.transfer.crosslingual` (phones the English teacher never saw, initialised from
their nearest known phone by articulatory features; a teacher turned into a voice of another language).
"""
