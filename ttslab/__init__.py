"""ttslab: text-to-speech from classical parametric synthesis to deep models.

The package is layered; lower layers never import upper ones::

    data, text, dsp, metrics, io, config, device   (bottom)
    vocoders                                   (uses dsp)
    classical, models                          (later issues)
    train, transfer, distill, federated, distributed   (later issues)
    serving, widgets                           (top: Ray Serve server and clients; IPython / ipywidgets)

Where things live:

* algorithms and models live in their rooms: ``ttslab.classical`` (GMM, HMM, alignment, MLPG, the
  HTS-style voice), ``ttslab.models`` (networks and their pure ``loss_fn(model, batch)``);
* **every training recipe is ``ttslab.train.<model>``** -- which data, the settings per mode and a
  command line ``python -m ttslab.train.<model> --mode full ...`` that writes the result and a log
  with the exact command: ``aligner``, ``hmm_voice``, ``dnn_spss``, ``fastspeech``, ``vocoder``,
  ``judge``, ``adapt`` (speaker adaptation, whose methods, adapters and kinds of transfer live in
  ``ttslab.transfer``), and the distillation and federated recipes to come (``ttslab.train.distill_*``,
  ``ttslab.train.federated_*``), whose losses, strategies and simulators live in
  ``ttslab.distill`` and ``ttslab.federated``;
* text reaches every model through one front-end, :mod:`ttslab.text.frontend`; the WORLD streams
  the parametric systems share are :mod:`ttslab.dsp.streams`; built-in speakers are
  :mod:`ttslab.data.speakers`;
* library functions take sizes and modes as arguments: ``TTSLAB_CI`` and ``TTSLAB_THREADS`` are read
  only at the edges (command lines, notebooks, benchmarks) through :mod:`ttslab.config`;
* one device rule, :func:`ttslab.device.resolve_device`: recipes train on ``device="auto"`` (the GPU
  when there is one), loaders load onto ``device="cpu"`` unless told otherwise, and inference runs
  wherever the model sits.

Importing ``ttslab`` itself is cheap: submodules are imported on demand.
"""

__version__ = "0.1.0"
