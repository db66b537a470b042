"""Execute the notebook series in order and write executed copies plus a short summary.

Usage: python scripts/run_notebooks.py [--mode ci|full] [--only 00 01] [--out results] [--in-place]
       python scripts/run_notebooks.py --tidy notebooks/*.ipynb     # tidy saved notebooks, no kernel

Each notebook runs in a fresh kernel (the current Python environment) with TTSLAB_CI set from
--mode; the executed copy goes to <out>/<mode>/notebooks/ and <out>/<mode>/summary.md lists
status, run time, size, audio clips and figures per notebook. ``--in-place`` also writes every
notebook that ran without error back to notebooks/ (how the committed, full-mode notebooks are
made). The exit status is non-zero if any notebook failed.

Before an executed notebook is written it is tidied (:func:`tidy`) so that, opened without running,
it reads as finished:

* **progress bars show their final state, or nothing.** ``tqdm.auto`` draws a widget in a kernel;
  its ``text/plain`` fallback (what GitHub, nbviewer and a JupyterLab without the widget state show)
  is the bar as it was *first* displayed: ``fastspeech:   0%| | 0/150``. The stored widget state
  holds its last text, so the fallback is rebuilt from it; a bar closed with ``leave=False`` (hidden)
  loses its output altogether;
* **audio is Ogg Vorbis**: any ``data:audio/wav`` clip (e.g. from ``IPython.display.Audio``) is
  re-encoded with :func:`ttslab.widgets.encode_audio`, like the clips of ``ttslab.widgets``.

``--tidy`` applies the same to saved notebooks without executing them.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's ttslab (for tidy), also without an installed package
SIZE_BUDGET = 2_000_000  # bytes per executed notebook (tests/test_notebook_size.py)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
PROGRESS_MODELS = ("FloatProgressModel", "IntProgressModel")
BAR_WIDTH = 10  # characters of a text bar, tqdm's default in a notebook's text/plain


# ---------------------------------------------------------------------------------------------
# Tidying an executed notebook


def _widget_states(nb) -> dict:
    return nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})


def _ref(state: dict, ref) -> dict | None:
    """The model an ``IPY_MODEL_<id>`` reference points to."""
    if not isinstance(ref, str):
        return None
    return state.get(ref.removeprefix("IPY_MODEL_"))


def progress_bar_text(state: dict, model_id: str) -> str | None:
    """The final text of the tqdm bar whose container is ``model_id``: ``""`` if the bar was closed
    hidden (``leave=False``), None if the model is not a tqdm bar (or its state was not stored).

    tqdm.notebook draws ``HBox([HTML(left), FloatProgress, HTML(right)])``; the texts use U+2007
    (figure space) for spaces and are HTML-escaped.
    """
    import html

    from tqdm.std import Bar

    box = state.get(model_id)
    if not box or box.get("model_name") != "HBoxModel":
        return None
    parts = [_ref(state, c) for c in box["state"].get("children", [])]
    names = [p and p.get("model_name") for p in parts]
    if len(parts) != 3 or names[0] != "HTMLModel" or names[1] not in PROGRESS_MODELS or names[2] != "HTMLModel":
        return None
    layout = (_ref(state, box["state"].get("layout")) or {}).get("state", {})
    if layout.get("visibility") == "hidden" or layout.get("display") == "none":
        return ""
    left, bar, right = (p["state"] for p in parts)
    text = lambda s: html.unescape(s.get("value") or "").replace("\u2007", " ")
    total = bar.get("max") or 0
    fraction = min(max((bar.get("value") or 0) / total, 0.0), 1.0) if total else 0.0
    drawn = format(Bar(fraction, BAR_WIDTH, charset=Bar.UTF), "")
    return f"{text(left)}|{drawn}|{text(right)}"


def finalize_progress_bars(nb) -> int:
    """Rebuild the text/plain fallback of every saved tqdm widget from its final state; drop hidden
    ones. Returns how many outputs changed."""
    state = _widget_states(nb)
    changed = 0
    for cell in nb.cells:
        kept = []
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            final = progress_bar_text(state, view["model_id"]) if view else None
            if final == "":
                changed += 1
                continue
            if final is not None and out["data"].get("text/plain") != final:
                out["data"]["text/plain"] = final
                changed += 1
            kept.append(out)
        if "outputs" in cell:
            cell.outputs = kept
    return changed


_WAV_URI = re.compile(r"data:audio/(?:wav|x-wav|wave);base64,([A-Za-z0-9+/=]+)")


def _ogg_uri(match: re.Match) -> str:
    import soundfile

    from ttslab.widgets import encode_audio

    samples, sr = soundfile.read(io.BytesIO(base64.b64decode(match.group(1))), dtype="float64")
    if samples.ndim > 1:
        return match.group(0)  # ttslab's clips are mono; leave anything else alone
    data, mime = encode_audio(samples, sr)
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _recode(obj):
    if isinstance(obj, str):
        return _WAV_URI.sub(_ogg_uri, obj) if "base64," in obj else obj
    if isinstance(obj, list):
        return [_recode(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _recode(v) for k, v in obj.items()}
    return obj


def wav_to_ogg(nb) -> None:
    """Re-encode every embedded WAV clip (outputs and saved widget state) as Ogg Vorbis."""
    import nbformat

    for cell in nb.cells:
        if "outputs" in cell:
            cell.outputs = [nbformat.from_dict(_recode(dict(o))) for o in cell.outputs]
    if "widgets" in nb.metadata:
        nb.metadata["widgets"] = nbformat.from_dict(_recode(dict(nb.metadata["widgets"])))


def tidy(nb):
    """Make an executed notebook read as finished and stay small (see the module docstring)."""
    finalize_progress_bars(nb)
    wav_to_ogg(nb)
    return nb


def notebook_bytes(nb) -> int:
    import nbformat

    return len(nbformat.writes(nb).encode("utf-8")) + 1  # nbformat.write adds a final newline


def count_outputs(nb) -> tuple[int, int]:
    """(audio players, images) in a notebook's outputs."""
    audio = images = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            html = data.get("text/html", "")
            audio += html.count("<audio")
            images += int("image/png" in data) + html.count("<img")
    return audio, images


def run_one(path: Path, dest: Path, timeout: int, in_place: bool = False) -> dict:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from tqdm.auto import tqdm

    nb = nbformat.read(path, as_version=4)
    code_cells = sum(c.cell_type == "code" for c in nb.cells)
    bar = tqdm(total=code_cells, desc=path.stem, unit="cell", leave=True)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                            on_cell_executed=lambda **_: bar.update())
    start = time.perf_counter()
    status, error = "ok", ""
    try:
        _execute(client)
    except CellExecutionError as exc:
        status, error = "failed", str(exc).strip().splitlines()[-1][:300]
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    tidy(nb)
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)
    if in_place and status == "ok":
        nbformat.write(nb, path)
    audio, images = count_outputs(nb)
    return {"notebook": path.name, "status": status, "seconds": round(seconds, 1), "bytes": notebook_bytes(nb),
            "audio": audio, "images": images, "error": error}


def _execute(client):
    """Execute with a kernel started from sys.executable (this virtual environment), whatever
    kernelspecs the machine has."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.kernel_cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    client.km = km
    return client.execute()


def tidy_files(paths) -> int:
    import nbformat

    for path in paths:
        nb = nbformat.read(path, as_version=4)
        before = path.stat().st_size
        bars = finalize_progress_bars(nb)
        wav_to_ogg(nb)
        nbformat.write(nb, path)
        print(f"{path}: {before:,} -> {path.stat().st_size:,} bytes; {bars} progress bar output(s) finalized")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=["ci", "full"], default="ci" if os.environ.get("TTSLAB_CI") == "1" else "full")
    p.add_argument("--only", nargs="*", help="notebook number prefixes to run (default: all)")
    p.add_argument("--out", type=Path, default=ROOT / "results")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    p.add_argument("--in-place", action="store_true",
                   help="also write each notebook that ran without error back to notebooks/")
    p.add_argument("--tidy", nargs="+", type=Path, metavar="NOTEBOOK",
                   help="only tidy these saved notebooks in place (no kernel): final progress bars, Ogg audio")
    a = p.parse_args(argv)
    if a.tidy:
        return tidy_files(a.tidy)
    os.environ["TTSLAB_CI"] = "1" if a.mode == "ci" else "0"
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if a.only:
        notebooks = [n for n in notebooks if any(n.name.startswith(o) for o in a.only)]
    if not notebooks:
        print("no notebooks to run", file=sys.stderr)
        return 2
    out = a.out / a.mode
    rows = []
    for path in notebooks:
        row = run_one(path, out / "notebooks" / path.name, a.timeout, in_place=a.in_place)
        rows.append(row)
        print(f"{row['notebook']}: {row['status']} in {row['seconds']} s, {row['bytes'] / 1e6:.2f} MB "
              f"({row['audio']} audio clips, {row['images']} figures)"
              + (f" -- {row['error']}" if row["error"] else ""), flush=True)
    lines = [f"# ttslab series, {a.mode} mode", "", "| notebook | status | seconds | MB | audio clips | figures |",
             "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r['notebook']} | {r['status']} | {r['seconds']} | {r['bytes'] / 1e6:.2f} | {r['audio']} | "
              f"{r['images']} |" for r in rows]
    failed = [r for r in rows if r["status"] != "ok"]
    heavy = [r for r in rows if r["bytes"] > SIZE_BUDGET]
    lines += ["", f"{len(rows) - len(failed)} of {len(rows)} notebooks ran; executed copies in `{out / 'notebooks'}`"
              + (" and in notebooks/." if a.in_place else ".")]
    lines += [f"- {r['notebook']}: {r['error']}" for r in failed]
    lines += [f"- {r['notebook']}: {r['bytes']:,} bytes, over the {SIZE_BUDGET:,}-byte budget" for r in heavy]
    (out).mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
