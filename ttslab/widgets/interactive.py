"""Widgets for a running kernel: the :class:`SynthesisPanel` and the blind :class:`ListeningTest`.

Widget panels cannot play without a kernel, so :class:`SynthesisPanel` also displays a plain
audio clip of its default text when it is displayed. Panel results are written into
``Output.outputs`` directly (not ``with out:``), so what they hold does not depend on message
routing and is stored with the widget state.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ttslab.dsp.spectral import SAMPLE_RATE
from ttslab.widgets.audio import as_mono_float, check_sample_rate, embedded_audio, mime_bundle, play, shared_scale
from ttslab.widgets.plots import figure_png

DEFAULT_TEXT = "The quick brown fox jumps over the lazy dog."
MOS_LABELS = ("Bad", "Poor", "Fair", "Good", "Excellent")  # ITU-T P.800 ACR scale, 1..5


def _append_output(out, data: dict[str, str]) -> None:
    """Append one display_data output to an ``ipywidgets.Output`` (stored in its state)."""
    out.outputs += ({"output_type": "display_data", "data": data, "metadata": {}},)


def _message_html(text: str, *, error: bool = False) -> dict[str, str]:
    colour = "#b00020" if error else "#555"
    return {"text/html": f'<span style="color:{colour}">{html.escape(text)}</span>', "text/plain": text}


class _WidgetView:
    """Shows ``self.widget`` when displayed, with a short, deterministic text/plain fallback."""

    widget: Any
    plain_text = "(interactive widget: run the notebook to use it)"

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = self.plain_text
        return bundle


class SynthesisPanel(_WidgetView):
    """Text box, speaker, rate and pitch controls, a *Synthesize* button and an output area.

    ``synthesize(text, speaker=, rate=, pitch=)`` must return ``(audio, sample_rate)``; ``rate`` is a
    speaking-rate multiplier and ``pitch`` a shift in semitones. Its errors (and empty text)
    appear as a one-line message in the panel. Displaying the panel also displays, below it,
    a plain player of ``default_text`` (synthesized once) when ``fallback_audio`` is true, so a
    saved notebook has something to hear without a kernel.
    """

    def __init__(
        self,
        synthesize: Callable[..., tuple[Any, int]],
        speakers: Sequence[str] | Mapping[str, Any],
        *,
        default_text: str = DEFAULT_TEXT,
        rate_range: tuple[float, float] = (0.5, 2.0),
        pitch_range: tuple[float, float] = (-6, 6),
        fallback_audio: bool = True,
    ):
        import ipywidgets as w

        if not callable(synthesize):
            raise TypeError(f"synthesize must be callable, got {synthesize!r}")
        if len(speakers) == 0:
            raise ValueError("speakers is empty; give at least one speaker")
        for name, (lo, hi) in (("rate_range", rate_range), ("pitch_range", pitch_range)):
            if not lo < hi:
                raise ValueError(f"{name} must be (low, high) with low < high, got {(lo, hi)}")
        self.synthesize = synthesize
        self.default_text = default_text
        self.fallback_audio = fallback_audio
        self.last_error: Exception | None = None
        self._fallback: dict[str, str] | None = None

        # A mapping shows its keys and passes its values; a sequence passes the names themselves.
        options = dict(speakers) if isinstance(speakers, Mapping) else list(speakers)
        self._speaker_values = list(options.values()) if isinstance(options, dict) else options
        wide = {"description_width": "initial"}
        self.text = w.Textarea(value=default_text, description="Text", rows=3,
                               layout=w.Layout(width="95%"))
        self.speaker = w.Dropdown(options=options, description="Speaker")
        self.rate = w.FloatSlider(value=min(max(1.0, rate_range[0]), rate_range[1]), min=rate_range[0],
                                  max=rate_range[1], step=0.05, description="Rate ×", style=wide)
        self.pitch = w.FloatSlider(value=min(max(0.0, pitch_range[0]), pitch_range[1]), min=pitch_range[0],
                                   max=pitch_range[1], step=0.5, description="Pitch (st)", style=wide)
        self.button = w.Button(description="Synthesize", button_style="primary", icon="play")
        self.output = w.Output()
        self.button.on_click(lambda _button: self.run())
        controls = w.HBox([self.speaker, self.rate, self.pitch, self.button],
                          layout=w.Layout(flex_flow="row wrap"))
        self.widget = w.VBox([self.text, controls, self.output])
        self.plain_text = (f"SynthesisPanel (speakers: {', '.join(map(str, options))}; "
                           "interactive: run the notebook to use it)")

    # -- synthesis

    def _set_controls(self, text, speaker, rate, pitch) -> None:
        """Move the controls to the requested values so the panel shows what was synthesized."""
        if speaker is not None and speaker not in self._speaker_values:
            raise ValueError(f"unknown speaker {speaker!r}; choose from {self._speaker_values}")
        for slider, value in ((self.rate, rate), (self.pitch, pitch)):
            if value is not None and not slider.min <= value <= slider.max:
                raise ValueError(f"{slider.description} {value} is outside [{slider.min}, {slider.max}]")
        if text is not None:
            self.text.value = text
        if speaker is not None:
            self.speaker.value = speaker
        if rate is not None:
            self.rate.value = rate
        if pitch is not None:
            self.pitch.value = pitch

    def _synthesize(self, text: str) -> tuple[np.ndarray, int, float]:
        """Call the injected synthesizer and check what it returns: (samples, sr, gain applied)."""
        if not text.strip():
            raise ValueError("there is no text to synthesize; type something first")
        result = self.synthesize(text.strip(), speaker=self.speaker.value,
                                 rate=float(self.rate.value), pitch=float(self.pitch.value))
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError(f"synthesize must return (audio, sample_rate), got {type(result).__name__}")
        samples, sr = as_mono_float(result[0], name="synthesized audio"), check_sample_rate(result[1])
        scale = shared_scale([samples])
        return samples * scale, sr, scale

    def run(self, text: str | None = None, *, speaker=None, rate: float | None = None,
            pitch: float | None = None) -> tuple[np.ndarray, int] | None:
        """Synthesize once (what the button does), optionally setting the controls first.

        Shows the player, a waveform + spectrogram picture and a summary line in the panel and
        returns ``(audio, sample_rate)``. If synthesis fails, shows the error as a message, keeps it in
        ``last_error`` and returns None. Invalid control values raise ``ValueError`` here.
        """
        self._set_controls(text, speaker, rate, pitch)
        self.output.outputs = ()
        self.last_error = None
        self.button.disabled, self.button.description = True, "Synthesizing…"
        try:
            samples, sr, scale = self._synthesize(self.text.value)
            picture = figure_png(samples, sr)
        except Exception as err:  # shown to the student instead of a traceback in the log
            self.last_error = err
            _append_output(self.output, _message_html(f"{type(err).__name__}: {err}", error=True))
            return None
        finally:
            self.button.disabled, self.button.description = False, "Synthesize"
        summary = (f"{len(samples) / sr:.2f} s at {sr} Hz · speaker {self.speaker.label} · "
                   f"rate {self.rate.value:g} · pitch {self.pitch.value:+g} st")
        if scale != 1.0:
            summary += f" · scaled by {scale:.3g} to avoid clipping"
        _append_output(self.output, mime_bundle(embedded_audio(samples, sr)))
        _append_output(self.output, {"image/png": base64.b64encode(picture).decode("ascii"),
                                     "text/plain": "<waveform and log-mel spectrogram>"})
        self.output.append_stdout(summary + "\n")
        return samples, sr

    # -- display

    def fallback_bundle(self) -> dict[str, str]:
        """A labelled player of the default text, synthesized once with the default controls."""
        if self._fallback is None:
            try:
                samples, sr, _ = self._synthesize(self.default_text)
                label = f"Default text: “{self.default_text}”"
                self._fallback = mime_bundle(play(samples, sr, label=label))
            except Exception as err:  # a display must not raise; say why there is nothing to hear
                message = f"(no fallback audio: {type(err).__name__}: {err})"
                self._fallback = _message_html(message, error=True)
        return self._fallback

    def _ipython_display_(self):
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)
        if self.fallback_audio:
            display(self.fallback_bundle(), raw=True)


def synthesis_panel(
    synthesize: Callable[..., tuple[Any, int]],
    speakers: Sequence[str] | Mapping[str, Any],
    *,
    default_text: str = DEFAULT_TEXT,
    rate_range: tuple[float, float] = (0.5, 2.0),
    pitch_range: tuple[float, float] = (-6, 6),
    fallback_audio: bool = True,
) -> SynthesisPanel:
    """Build a :class:`SynthesisPanel`; make it the last expression of a cell (or ``display`` it).

    Displaying it shows the widget and, with ``fallback_audio``, a plain player of the default
    text below it. Call ``panel.run(...)`` to synthesize from code (CI, tests).
    """
    return SynthesisPanel(synthesize, speakers, default_text=default_text, rate_range=rate_range,
                          pitch_range=pitch_range, fallback_audio=fallback_audio)


def _listening_items(clips) -> list[tuple[str, np.ndarray]]:
    """``[(system, samples)]``; a system may have one clip or a list of clips."""
    pairs = list(clips.items()) if isinstance(clips, Mapping) else list(clips)
    items = []
    for system, audio in pairs:
        many = isinstance(audio, (list, tuple))
        for k, clip in enumerate(audio if many else [audio]):
            items.append((str(system), as_mono_float(clip, name=f"clip {k} of {system!r}")))
    if not items:
        raise ValueError("clips is empty; give at least one (system, audio) pair")
    return items


class ListeningTest(_WidgetView):
    """A blind MOS test: clips in a seeded random order, each rated 1–5, then revealed.

    ``clips`` maps system names to a clip or a list of clips (or is a list of pairs), all at
    ``sample_rate``. Loudness-match the clips beforehand: louder clips tend to be rated higher. Clips are
    only scaled (all by one factor) if one would clip.
    """

    def __init__(self, clips, sample_rate: int = SAMPLE_RATE, *, seed: int = 0,
                 question: str = "How natural does each clip sound? (1 = bad, 5 = excellent)"):
        import ipywidgets as w

        sample_rate = check_sample_rate(sample_rate)
        items = _listening_items(clips)
        order = np.random.default_rng(seed).permutation(len(items))
        self.systems = [items[i][0] for i in order]  # hidden answer key, in presentation order
        scale = shared_scale([s for _, s in items])

        self.ratings = []  # one ToggleButtons per clip, value None until rated
        rows = [w.HTML(f"<b>{html.escape(question)}</b>")]
        for number, i in enumerate(order, start=1):
            player = w.Output()
            _append_output(player, mime_bundle(embedded_audio(items[i][1] * scale, sample_rate)))
            rating = w.ToggleButtons(options=[(str(k), k) for k in range(1, 6)], value=None,
                                     tooltips=list(MOS_LABELS),
                                     style=w.ToggleButtonsStyle(button_width="2.5em"))
            self.ratings.append(rating)
            rows.append(w.HBox([w.Label(f"Clip {number}", layout=w.Layout(width="4.5em")), player, rating],
                               layout=w.Layout(align_items="center")))
        self.button = w.Button(description="Show results", icon="eye")
        self.results_output = w.Output()
        self.button.on_click(lambda _button: self.show_results())
        self.widget = w.VBox(rows + [self.button, self.results_output])
        self.plain_text = f"ListeningTest with {len(items)} clips (interactive: run the notebook to rate)"

    def scores(self) -> dict[str, list[int]]:
        """The ratings given so far, per system (unrated clips are left out)."""
        by_system: dict[str, list[int]] = {system: [] for system in self.systems}
        for system, rating in zip(self.systems, self.ratings):
            if rating.value is not None:
                by_system[system].append(int(rating.value))
        return by_system

    def mean_scores(self) -> dict[str, float]:
        """Mean opinion score per system (NaN where no clip of it was rated)."""
        return {s: float(np.mean(v)) if v else float("nan") for s, v in self.scores().items()}

    def show_results(self) -> str:
        """Reveal which clip was which and the mean scores in the panel; return that HTML."""
        reveal = "".join(
            f"<tr><td>Clip {n}</td><td>{html.escape(system)}</td>"
            f"<td>{'–' if rating.value is None else rating.value}</td></tr>"
            for n, (system, rating) in enumerate(zip(self.systems, self.ratings), start=1)
        )
        means = "".join(
            f"<tr><td>{html.escape(system)}</td><td>{'–' if np.isnan(mos) else f'{mos:.2f}'}</td>"
            f"<td>{len(self.scores()[system])}</td></tr>"
            for system, mos in self.mean_scores().items()
        )
        report = ("<table><tr><th>clip</th><th>system</th><th>your score</th></tr>" + reveal + "</table>"
                  "<table><tr><th>system</th><th>MOS</th><th>rated clips</th></tr>" + means + "</table>")
        self.results_output.outputs = ()
        _append_output(self.results_output, {"text/html": report, "text/plain": str(self.mean_scores())})
        return report


def listening_test(clips, sample_rate: int = SAMPLE_RATE, *, seed: int = 0,
                   question: str | None = None) -> ListeningTest:
    """Build a blind MOS :class:`ListeningTest`; display it as the last expression of a cell."""
    kwargs = {} if question is None else {"question": question}
    return ListeningTest(clips, sample_rate, seed=seed, **kwargs)
