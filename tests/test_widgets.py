"""ttslab.widgets: players, the A/B grid, the synthesis panel, the listening test, the plot.

One smoke test runs a small notebook in a real kernel (nbclient) to prove the outputs render
after running; everything else runs in-process without a kernel.
"""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys
from dataclasses import dataclass

from pathlib import Path

import numpy as np
import pytest

from ttslab import widgets

SR = 22050


def sine(seconds: float = 0.5, sr: int = SR, freq: float = 220.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return amp * np.sin(2 * np.pi * freq * t)


def speech_like(seconds: float, freq: float, seed: int) -> np.ndarray:
    """Harmonics with a syllable-rate envelope plus a noise floor: textured like speech."""
    t = np.arange(int(seconds * SR)) / SR
    voiced = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 20))
    envelope = (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
    noise = 0.02 * np.random.default_rng(seed).standard_normal(len(t))
    return 0.3 * voiced / np.abs(voiced).max() * envelope + noise


def fake_synthesize(text, *, speaker, rate, pitch):
    """A stand-in TTS: a sine whose length follows the text and rate, pitch shifts it."""
    if not text:
        raise ValueError("empty text")
    seconds = 0.05 * len(text) / rate
    return sine(seconds, 16000, 200.0 * 2 ** (pitch / 12)), 16000


@dataclass
class Clip:
    """An embedded clip decoded back: its container/codec, sample rate and samples."""

    format: str
    subtype: str
    rate: int
    samples: np.ndarray


def decode(data: bytes) -> Clip:
    import soundfile

    info = soundfile.info(io.BytesIO(data))
    samples, rate = soundfile.read(io.BytesIO(data), dtype="float64")
    return Clip(info.format, info.subtype, rate, samples)


def clips_of(html: str) -> list[Clip]:
    """The clips embedded in ``<audio src=data:audio/ogg;...>`` elements of some HTML, decoded."""
    assert "data:audio/wav" not in html, "a clip was embedded as WAV, not Ogg Vorbis"
    blobs = re.findall(r'<audio [^>]*src="data:audio/ogg;base64,([^"]+)"', html)
    return [decode(base64.b64decode(b)) for b in blobs]


def snr_db(reference: np.ndarray, decoded: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - decoded) ** 2)))


def pngs_of(html: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


# ---------------------------------------------------------------------------------------------
# play


def test_play_returns_audio_with_rate_and_embedded_ogg_vorbis():
    from IPython.display import Audio

    clip = sine(0.5, 16000)
    player = widgets.play(clip, 16000)
    assert isinstance(player, Audio) and player.mimetype == "audio/ogg"
    decoded = decode(player.data)
    assert (decoded.format, decoded.subtype, decoded.rate) == ("OGG", "VORBIS", 16000)
    assert decoded.samples.shape == clip.shape  # mono, the exact duration
    assert np.corrcoef(clip, decoded.samples)[0, 1] > 0.999 and snr_db(clip, decoded.samples) > 25
    # src sits on <audio> itself: JupyterLab's sanitizer strips src from <source>
    assert len(clips_of(player._repr_html_())) == 1 and "<source" not in player._repr_html_()
    assert repr(player) == "<Audio: 0.50 s at 16000 Hz>"


def test_embedded_speech_decodes_close_to_the_input_at_a_fifth_of_wav():
    clip = speech_like(2.0, 120, seed=0)
    player = widgets.play(clip, SR)
    decoded = clips_of(player._repr_html_())[0]
    assert (decoded.format, decoded.subtype, decoded.rate) == ("OGG", "VORBIS", SR)
    assert len(decoded.samples) == len(clip) and abs(len(decoded.samples) / SR - 2.0) < 1e-3
    assert np.corrcoef(clip, decoded.samples)[0, 1] > 0.99 and snr_db(clip, decoded.samples) > 15
    assert len(player.data) < 2 * len(clip) / 5  # 16-bit WAV: 2 bytes a sample


def test_encoding_is_deterministic_and_ogg_pages_are_valid():
    import soundfile

    clip = speech_like(0.5, 200, seed=1)
    assert widgets.play(clip, SR).data == widgets.play(clip, SR).data  # fixed stream serial number
    raw = io.BytesIO()  # libsndfile's own pages carry correct checksums: ours must compute the same
    soundfile.write(raw, clip, SR, format="OGG", subtype="VORBIS")
    page = raw.getvalue()
    size = 27 + page[26] + sum(page[27:27 + page[26]])
    blank = page[:22] + bytes(4) + page[26:size]
    assert widgets.audio._ogg_crc(blank) == int.from_bytes(page[22:26], "little")


def test_nbval_sanitizer_hides_the_embedded_clip():
    import configparser

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(Path(__file__).parent / "nbval_sanitize.cfg")
    page = widgets.play(sine(0.3), SR, label="x")._repr_html_()
    for section in cfg.sections():
        page = re.sub(cfg[section]["regex"], cfg[section]["replace"], page)
    assert page == '<b>x</b><br><audio controls="controls" src="data:BASE64"></audio>'


def test_play_accepts_int16_and_normalizes_on_request():
    clip = sine(0.2)
    as_int16 = np.round(clip * 32767).astype(np.int16)
    assert widgets.play(as_int16, SR).data == widgets.play(as_int16.astype(float) / 32768, SR).data
    peak = np.abs(decode(widgets.play(clip, SR, normalize=True).data).samples).max()
    assert abs(peak - 1.0) < 0.03


def test_play_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    clip = sine(0.2)
    from_tensor = widgets.play(torch.tensor(clip, dtype=torch.float32), SR)
    assert from_tensor.data == widgets.play(clip.astype(np.float32), SR).data


def test_play_with_label_shows_label_above_player():
    labelled = widgets.play(sine(0.1), SR, label="WORLD <vocoder>")
    page = labelled._repr_html_()
    assert page.startswith("<b>WORLD &lt;vocoder&gt;</b><br><audio")
    assert len(clips_of(page)) == 1


@pytest.mark.parametrize(
    ("audio", "sr", "message"),
    [
        (np.array([0.1, np.nan, 0.2]), SR, "NaN"),
        (np.array([0.1, np.inf]), SR, "NaN/infinite"),
        (np.zeros((2, 100)), SR, "1-D"),
        (np.zeros(0), SR, "empty"),
        (sine(0.1), 0, "sample rate"),
        (sine(0.1), -16000, "sample rate"),
        (sine(0.1), 22050.5, "sample rate"),
        (3 * sine(0.1), SR, "normalize=True"),
    ],
)
def test_play_rejects_bad_input_clearly(audio, sr, message):
    with pytest.raises(ValueError, match=message):
        widgets.play(audio, sr)


# ---------------------------------------------------------------------------------------------
# compare


def test_compare_grid_has_a_player_image_and_label_per_system_and_stays_small():
    systems = {name: speech_like(2.0, f0, seed) for seed, (name, f0) in enumerate(
        [("Griffin-Lim", 110), ("WORLD", 150), ("HiFi-GAN", 200)])}
    grid = widgets.compare(systems, SR, title="Vocoders", ref="WORLD",
                           metrics={"HiFi-GAN": {"MCD": 4.2123, "F0 RMSE": 11.0}})
    page = grid._repr_html_()

    assert [c.rate for c in clips_of(page)] == [SR, SR, SR]
    assert page.count("<img") == 3 and all(name in page for name in systems)
    assert page.index("WORLD") < page.index("Griffin-Lim") < page.index("HiFi-GAN")  # ref first
    assert "(reference)" in page and "<b>Vocoders</b>" in page and "MCD&nbsp;4.21" in page
    assert all(len(png) < 30_000 for png in pngs_of(page))
    # 2 s of 22.05 kHz Ogg Vorbis is ~20 kB as base64 (118 kB as 16-bit WAV). What the grid adds
    # (images, markup) must stay small, and so must the audio.
    audio_chars = sum(len(b) for b in re.findall(r"base64,([^\"]+)", page)) - sum(
        len(base64.b64encode(png)) for png in pngs_of(page))
    assert len(page) - audio_chars < 60_000
    assert audio_chars < 3 * 40_000


def test_compare_shares_one_gain_and_one_time_scale():
    loud, short = 4.0 * sine(1.0), sine(0.5)  # peaks 2.0 and 0.5
    page = widgets.compare([("loud", loud), ("short", short)], SR)._repr_html_()
    assert "scaled by 0.5" in page
    first, second = clips_of(page)
    rms = lambda x: np.sqrt(np.mean(x**2))
    assert abs(rms(first.samples) / rms(second.samples) - 4.0) < 0.04  # relative loudness kept
    assert re.findall(r'width="(\d+)"', page) == ["300", "150"]  # half as long, half as wide


def test_compare_without_spectrograms_and_with_tiny_clips():
    page = widgets.compare({"a": sine(0.01), "b": sine(0.02)}, SR)._repr_html_()  # < n_fft samples
    assert page.count("<img") == 2
    assert "<img" not in widgets.compare({"a": sine(0.1)}, SR, spectrogram=False)._repr_html_()


@pytest.mark.parametrize(
    ("systems", "kwargs", "message"),
    [
        ({}, {}, "empty"),
        ([("a", sine(0.1)), ("a", sine(0.1))], {}, "unique"),
        ({"a": sine(0.1)}, {"ref": "b"}, "ref='b'"),
        ({"a": sine(0.1)}, {"metrics": {"A": {"x": 1.0}}}, "unknown systems"),
        ({"a": np.zeros((2, 10))}, {}, "audio of 'a'"),
    ],
)
def test_compare_rejects_bad_input_clearly(systems, kwargs, message):
    with pytest.raises(ValueError, match=message):
        widgets.compare(systems, SR, **kwargs)


# ---------------------------------------------------------------------------------------------
# SynthesisPanel


def test_panel_run_puts_audio_picture_and_summary_in_the_output():
    calls = []

    def synthesize(text, **controls):
        calls.append((text, controls))
        return fake_synthesize(text, **controls)

    panel = widgets.synthesis_panel(synthesize, ["alice", "bob"], default_text="Hello there.")
    audio, sr = panel.run("Good morning", speaker="bob", rate=2.0, pitch=3)

    assert calls == [("Good morning", {"speaker": "bob", "rate": 2.0, "pitch": 3.0})]
    assert sr == 16000 and len(audio) == int(0.05 * 12 / 2.0 * 16000)
    kinds = [next(iter(o.get("data", {"stdout": 0}))) for o in panel.output.outputs]
    assert kinds == ["text/html", "image/png", "stdout"]
    player, picture, summary = panel.output.outputs
    assert [c.rate for c in clips_of(player["data"]["text/html"])] == [16000]
    assert base64.b64decode(picture["data"]["image/png"]).startswith(b"\x89PNG")
    assert "speaker bob" in summary["text"] and "rate 2" in summary["text"]
    assert (panel.text.value, panel.speaker.value, panel.rate.value) == ("Good morning", "bob", 2.0)

    panel.run()  # a second run replaces, not appends
    assert len(panel.output.outputs) == 3


def test_panel_shows_synthesis_errors_as_a_message():
    def broken(text, **controls):
        raise RuntimeError("model weights not loaded")

    panel = widgets.SynthesisPanel(broken, {"Alice (en-us)": "en-us+f3"})
    assert panel.run("Hi") is None
    (message,) = panel.output.outputs
    assert message["data"]["text/plain"] == "RuntimeError: model weights not loaded"
    assert "Traceback" not in message["data"]["text/html"]
    assert isinstance(panel.last_error, RuntimeError) and not panel.button.disabled

    panel = widgets.SynthesisPanel(fake_synthesize, ["a"])
    assert panel.run("   ") is None and "no text" in panel.output.outputs[0]["data"]["text/plain"]
    panel.synthesize = lambda text, **controls: np.zeros(100)  # forgot the sample rate
    assert panel.run("Hi") is None and "(audio, sample_rate)" in str(panel.last_error)


def test_panel_run_rejects_invalid_controls():
    panel = widgets.SynthesisPanel(fake_synthesize, ["a"], rate_range=(0.5, 2.0))
    with pytest.raises(ValueError, match="unknown speaker"):
        panel.run("Hi", speaker="zed")
    with pytest.raises(ValueError, match="outside"):
        panel.run("Hi", rate=3.0)  # a slider would silently clamp it


def test_panel_display_bundle_has_widget_view_and_a_fallback_player():
    panel = widgets.SynthesisPanel(fake_synthesize, ["a", "b"], default_text="Fallback.")
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("SynthesisPanel (speakers: a, b;")
    fallback = panel.fallback_bundle()
    assert "Fallback." in fallback["text/html"] and len(clips_of(fallback["text/html"])) == 1


# ---------------------------------------------------------------------------------------------
# Listening test


def test_listening_test_order_is_seeded_and_results_reveal_systems():
    clips = {"A": [sine(0.1, freq=200), sine(0.1, freq=300)], "B": [sine(0.1, freq=400), sine(0.1, freq=500)]}
    first = widgets.listening_test(clips, SR, seed=3)
    again = widgets.listening_test(clips, SR, seed=3)
    assert first.systems == again.systems and sorted(first.systems) == ["A", "A", "B", "B"]
    orders = {tuple(widgets.listening_test(clips, SR, seed=s).systems) for s in range(10)}
    assert len(orders) > 1  # the seed matters

    for rating, system in zip(first.ratings, first.systems):
        rating.value = 5 if system == "A" else 2
    first.ratings[first.systems.index("B")].value = None  # one B clip left unrated
    assert first.mean_scores() == {"A": 5.0, "B": 2.0}
    assert first.scores()["B"] == [2]

    report = first.show_results()
    assert report.count("<td>A</td>") == 3 and "5.00" in report and "2.00" in report
    assert first.results_output.outputs[0]["data"]["text/html"] == report
    # blind: the clip players carry no system names
    assert len(first.widget.children) == 1 + 4 + 2


# ---------------------------------------------------------------------------------------------
# Plot


def test_plot_draws_alignment_from_segments_or_tuples():
    from matplotlib.figure import Figure

    from ttslab.data.corpus import Segment

    clip = sine(1.0, 16000)
    as_objects = [Segment("h", 0, 4000), Segment("ai", 4000, 12000), Segment("pau", 12000, 16000)]
    as_tuples = [("h", 0.0, 0.25), ("ai", 0.25, 0.75), ("pau", 0.75, 1.0)]
    for segments in (as_objects, as_tuples):
        wave_ax, spec_ax = Figure().subplots(2, 1)
        assert widgets.plot_waveform_and_spectrogram(clip, 16000, segments, ax=(wave_ax, spec_ax)) == (
            wave_ax, spec_ax)
        assert [t.get_text() for t in spec_ax.texts] == ["h", "ai", "pau"]
        assert len(wave_ax.lines) == 1 + 4  # waveform + 4 boundaries

    only_spec = Figure().subplots()
    assert widgets.plot_waveform_and_spectrogram(clip, 16000, ax=only_spec) == (None, only_spec)
    with pytest.raises(ValueError, match="ends"):
        widgets.plot_waveform_and_spectrogram(clip, 16000, [("x", 0.5, 0.2)], ax=only_spec)


def test_plot_without_axes_makes_a_pyplot_figure():
    import matplotlib.pyplot as plt

    wave_ax, spec_ax = widgets.plot_waveform_and_spectrogram(sine(0.3), SR)
    assert wave_ax.figure is spec_ax.figure
    plt.close(wave_ax.figure)


def test_import_is_cheap():
    heavy = ("IPython", "ipywidgets", "matplotlib", "librosa")
    code = f"import sys, ttslab.widgets; print(sorted(m for m in {heavy} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# Smoke test in a real kernel

NOTEBOOK_CELLS = [
    "import sys; print(sys.prefix)",
    "import numpy as np\n"
    "from ttslab.widgets import play, compare, synthesis_panel\n"
    "def fake(text, *, speaker, rate, pitch):\n"
    "    t = np.arange(int(0.3 * 16000 / rate)) / 16000\n"
    "    return 0.5 * np.sin(2 * np.pi * 220 * 2 ** (pitch / 12) * t), 16000\n"
    "clip, sr = fake('x', speaker='a', rate=1.0, pitch=0)",
    "play(clip, sr)",
    "compare({'A': clip, 'B': 0.5 * clip}, sr)",
    "panel = synthesis_panel(fake, ['a', 'b'], default_text='Hello.')\npanel",
    "assert panel.run('Hi there', pitch=2) is not None",
]


def test_notebook_renders_audio_and_widgets_after_running(tmp_path):
    """Run a tiny notebook through nbclient with the python3 kernel and inspect what it saved."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in NOTEBOOK_CELLS])
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=60, store_widget_state=True,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [cell.outputs for cell in nb.cells]

    # the "python3" kernel is this interpreter's environment (jupyter_client maps "python" to it)
    assert outputs[0][0]["text"].strip() == sys.prefix
    for cell in (2, 3):
        (result,) = outputs[cell]
        assert "<audio" in result["data"]["text/html"]
    assert outputs[3][0]["data"]["text/html"].count("<img") == 2
    widget_view, fallback = outputs[4]
    assert "application/vnd.jupyter.widget-view+json" in widget_view["data"]
    assert "Hello." in fallback["data"]["text/html"] and "<audio" in fallback["data"]["text/html"]
    # panel.run's results live in the Output widget's saved state, not in the cell outputs
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    stored = [o for m in state.values() if m["model_name"] == "OutputModel" for o in m["state"]["outputs"]]
    assert any("<audio" in o.get("data", {}).get("text/html", "") for o in stored)
    assert any("image/png" in o.get("data", {}) for o in stored)
