"""ttslab: text-to-speech from classical parametric synthesis to deep models.

The package is layered; lower layers never import upper ones::

    data, text, dsp, metrics, io, config      (bottom)
    vocoders                                   (uses dsp)
    classical, models                          (later issues)
    train, distill, federated, distributed     (later issues)
    widgets                                    (top: IPython / ipywidgets)

Importing ``ttslab`` itself is cheap: submodules are imported on demand.
"""

__version__ = "0.1.0"
