"""The committed notebooks are light enough to grow and read as finished when opened without running.

Budget (README): each executed notebook at most 2 MB, audio as Ogg Vorbis. Every code cell has been
executed, and a saved progress bar shows its final state (scripts/run_notebooks.py tidies executed
notebooks; ``python scripts/run_notebooks.py --tidy notebooks/*.ipynb`` tidies saved ones).
"""

from __future__ import annotations

import base64
import importlib.util
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MAX_BYTES = 2_000_000


def _run_notebooks():
    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run_notebooks = _run_notebooks()


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 7


def over_budget(paths) -> list[str]:
    return [f"{p.name}: {p.stat().st_size:,} bytes > {MAX_BYTES:,}" for p in paths if p.stat().st_size > MAX_BYTES]


def never_executed(nb) -> list[int]:
    """Indices of code cells (with code in them) that have no execution count."""
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()
            and c.get("execution_count") is None]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_within_budget_and_fully_executed(path):
    nbformat = pytest.importorskip("nbformat")
    assert not over_budget([path]), over_budget([path])[0]
    nb = nbformat.read(path, as_version=4)
    missing = never_executed(nb)
    assert not missing, f"{path.name}: code cells {missing} were never executed; run the notebook in full mode"
    text = path.read_text(encoding="utf-8")
    assert "data:audio/wav" not in text, f"{path.name} embeds WAV audio; clips are Ogg Vorbis (ttslab.widgets)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_saved_progress_bars_show_their_final_state(path):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(path, as_version=4)
    state = run_notebooks._widget_states(nb)
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(run_notebooks.WIDGET_VIEW)
            final = run_notebooks.progress_bar_text(state, view["model_id"]) if view else None
            if final is not None:
                assert final and out["data"]["text/plain"] == final, (
                    f"{path.name} cell {i}: saved progress bar {out['data']['text/plain']!r}, finished as "
                    f"{final!r}; run `python scripts/run_notebooks.py --tidy {path.relative_to(ROOT)}`")


def test_the_checks_catch_a_heavy_or_unexecuted_notebook(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    heavy = tmp_path / "99_heavy.ipynb"
    heavy.write_bytes(b" " * (MAX_BYTES + 1))
    assert over_budget([heavy]) == [f"99_heavy.ipynb: {MAX_BYTES + 1:,} bytes > {MAX_BYTES:,}"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1", execution_count=1),
                                         nbformat.v4.new_markdown_cell("text"),
                                         nbformat.v4.new_code_cell("2 + 2"), nbformat.v4.new_code_cell("")])
    assert never_executed(nb) == [2]


# ---------------------------------------------------------------------------------------------
# Tidying an executed notebook (scripts/run_notebooks.py)

CELLS = [
    "from tqdm.auto import tqdm\n"
    "for _ in tqdm(range(5), desc='training', leave=True):\n    pass",
    "for _ in tqdm(range(7), desc='features', leave=False):\n    pass\nprint('done')",
    "import numpy as np\nfrom IPython.display import Audio, HTML\n"
    "t = np.arange(8000) / 16000\n"
    "HTML(Audio(0.5 * np.sin(2 * np.pi * 300 * t), rate=16000, normalize=False)._repr_html_())",
]


def test_tidy_gives_progress_bars_their_final_text_and_audio_ogg(tmp_path):
    """Execute a notebook with tqdm widgets and a WAV clip in a real kernel, then tidy it."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipywidgets")
    import soundfile

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS])
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120, store_widget_state=True,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = [o["data"]["text/plain"] for o in nb.cells[0].outputs if "data" in o]
    assert shown and "0/5" in shown[0]  # the stale fallback this is about
    assert any("data:audio/wav" in o["data"]["text/html"] for o in nb.cells[2].outputs if "data" in o)

    run_notebooks.tidy(nb)
    (bar,) = [o for o in nb.cells[0].outputs if "data" in o]
    assert re.fullmatch(r"training: 100%\|█{10}\| 5/5 \[.*\]", bar["data"]["text/plain"]), bar["data"]["text/plain"]
    assert [o["output_type"] for o in nb.cells[1].outputs] == ["stream"]  # the hidden bar is gone
    assert nb.cells[1].outputs[0]["text"] == "done\n"
    (page,) = [o["data"]["text/html"] for o in nb.cells[2].outputs if "data" in o]
    assert "data:audio/wav" not in page
    (blob,) = re.findall(r"data:audio/ogg;base64,([A-Za-z0-9+/=]+)", page)
    info = soundfile.info(io.BytesIO(base64.b64decode(blob)))
    assert (info.format, info.subtype, info.samplerate, info.frames) == ("OGG", "VORBIS", 16000, 8000)
    assert run_notebooks.finalize_progress_bars(nb) == 0  # idempotent
    nbformat.validate(nb)



def test_run_one_writes_the_tidied_notebook_back_in_place(tmp_path):
    """The path the committed notebooks take: scripts/run_notebooks.py --in-place (run_series.sh --in-place)."""
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipywidgets")
    source = tmp_path / "notebooks" / "99_tiny.ipynb"
    source.parent.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELLS[0])]), source)
    row = run_notebooks.run_one(source, tmp_path / "results" / "99_tiny.ipynb", timeout=120, in_place=True)
    assert row["status"] == "ok" and row["bytes"] == source.stat().st_size
    saved = nbformat.read(source, as_version=4)
    assert not never_executed(saved)
    (bar,) = [o for o in saved.cells[0].outputs if "data" in o]
    assert bar["data"]["text/plain"].startswith("training: 100%|")
    assert (tmp_path / "results" / "99_tiny.ipynb").read_text() == source.read_text()
