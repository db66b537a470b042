"""Neural models: the DNN-SPSS voice, the FastSpeech-2-style acoustic model and the CTC phone
recognizer ("judge"). Models and their pure loss functions live here; training recipes live in
:mod:`ttslab.train`, one layer up."""
