#!/usr/bin/env python3
"""Executes workshop notebooks top to bottom (nbclient) and fails on any error or failed check cell.

    run_notebook.py NOTEBOOK... [--out DIR] [--timeout S] [--wrong-answer VAR]

The kernel is this interpreter (sys.executable: the project venv's Python when run as
`.venv/bin/python`), through a kernelspec written to a temporary JUPYTER_PATH, so Debian's
`python3` kernelspec (/usr/bin/python3) is never picked up and nothing is installed. The kernel
inherits this process's environment (PYTHONPATH naming the build's python/ directory, so
`import kvlab` is the module just built). Executed copies go to --out (default: a temporary
directory), never over the committed notebooks.

--wrong-answer VAR: after the first code cell that assigns VAR, VAR is changed (VAR += 1), and the
run must then fail in a check cell with its "Not yet" message: the test that the checks check.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

KERNEL = "kvlab-notebook-runner"


def write_kernelspec(root: Path) -> None:
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "kvlab notebook runner",
        "language": "python",
    }))


def break_answer(nb, var: str) -> None:
    for cell in nb.cells:
        if cell.cell_type == "code" and any(line.startswith(var + " =") for line in cell.source.splitlines()):
            cell.source += f"\n{var} += 1  # --wrong-answer\n"
            return
    sys.exit(f"run_notebook: --wrong-answer = {var} is invalid: no code cell assigns it")


def run(path: Path, out_dir: Path, timeout: int, wrong: str) -> bool:
    nb = nbformat.read(path, as_version=4)
    if wrong:
        break_answer(nb, wrong)
    client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL, record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.monotonic()
    error = None
    try:
        client.execute()
    except CellExecutionError as e:
        error = e
    seconds = time.monotonic() - start
    out = out_dir / path.name
    nbformat.write(nb, out)
    if wrong:
        if error is None:
            print(f"FAIL {path.name}: ran through with {wrong} changed: its check cell checks nothing")
            return False
        if "Not yet" not in str(error) and "right, but" not in str(error):
            print(f"FAIL {path.name}: with {wrong} changed it failed, but not in a check cell:\n{error}")
            return False
        print(f"ok   {path.name}: the check cell caught the wrong {wrong} ({seconds:.1f} s)")
        return True
    if error is not None:
        print(f"FAIL {path.name} after {seconds:.1f} s (executed copy: {out}):\n{error}")
        return False
    print(f"ok   {path.name}: {len(nb.cells)} cells in {seconds:.1f} s (executed copy: {out})")
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, help="where the executed copies go (default: a temporary directory)")
    ap.add_argument("--timeout", type=int, default=240, help="seconds per cell")
    ap.add_argument("--wrong-answer", default="", metavar="VAR")
    args = ap.parse_args()
    for p in args.notebooks:
        if not p.is_file():
            sys.exit(f"run_notebook: notebook = {p} is invalid: no such file")
    with tempfile.TemporaryDirectory(prefix="kvlab-nb-") as tmp:
        tmp = Path(tmp)
        write_kernelspec(tmp / "jupyter")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(
            [str(tmp / "jupyter")] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p])
        os.environ.setdefault("MPLCONFIGDIR", str(tmp / "mpl"))
        os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # ipykernel's debugger warning on 3.11
        out_dir = args.out or (tmp / "executed")
        out_dir.mkdir(parents=True, exist_ok=True)
        ok = all([run(p.resolve(), out_dir, args.timeout, args.wrong_answer) for p in args.notebooks])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
