"""Execute the notebook series in order and write executed copies plus a short summary.

Usage: python scripts/run_notebooks.py [--mode ci|full] [--only 00 01] [--out results]

Each notebook runs in a fresh kernel (the current Python environment) with TTSLAB_CI set from
--mode; the executed copy goes to <out>/<mode>/notebooks/ and <out>/<mode>/summary.md lists
status, run time, audio clips and figures per notebook. The exit status is non-zero if any
notebook failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


def run_one(path: Path, dest: Path, timeout: int) -> dict:
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
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)
    audio, images = count_outputs(nb)
    return {"notebook": path.name, "status": status, "seconds": round(seconds, 1), "audio": audio,
            "images": images, "error": error}


def _execute(client):
    """Execute with a kernel started from sys.executable (this virtual environment), whatever
    kernelspecs the machine has."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.kernel_cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    client.km = km
    return client.execute()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=["ci", "full"], default="ci" if os.environ.get("TTSLAB_CI") == "1" else "full")
    p.add_argument("--only", nargs="*", help="notebook number prefixes to run (default: all)")
    p.add_argument("--out", type=Path, default=ROOT / "results")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    a = p.parse_args(argv)
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
        row = run_one(path, out / "notebooks" / path.name, a.timeout)
        rows.append(row)
        print(f"{row['notebook']}: {row['status']} in {row['seconds']} s ({row['audio']} audio clips, {row['images']} figures)"
              + (f" -- {row['error']}" if row["error"] else ""), flush=True)
    lines = [f"# ttslab series, {a.mode} mode", "", "| notebook | status | seconds | audio clips | figures |",
             "|---|---|---:|---:|---:|"]
    lines += [f"| {r['notebook']} | {r['status']} | {r['seconds']} | {r['audio']} | {r['images']} |" for r in rows]
    failed = [r for r in rows if r["status"] != "ok"]
    lines += ["", f"{len(rows) - len(failed)} of {len(rows)} notebooks ran; executed copies in `{out / 'notebooks'}`."]
    lines += [f"- {r['notebook']}: {r['error']}" for r in failed]
    (out).mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
