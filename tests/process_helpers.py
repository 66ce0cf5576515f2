"""Processes started to race each other (workers sharing a cache folder): each gets past its
imports, then all begin their work at one signal, so the race really happens."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import segany

# A script's arguments are its own, then NAME and FOLDER; it calls `ready_and_wait()` (written
# into its text by `run_together`) after its imports, before the racing part.
_PRELUDE = """
import sys as _sys, time as _time
from pathlib import Path as _Path

def ready_and_wait():
    name, folder = _sys.argv[-2], _Path(_sys.argv[-1])
    (folder / f"ready-{name}").touch()
    while not (folder / "go").exists():
        _time.sleep(0.01)
"""


def run_together(
    script: str, runs: dict[str, list[str]], folder: Path, timeout: float = 120
) -> dict[str, tuple[int, str, str]]:
    """Run the Python `script` once per entry of `runs` (name -> arguments), this checkout's
    sources first on the path and one torch thread each; release them together once all are
    ready. Returns name -> (exit status, stdout, stderr)."""
    path = folder / "script.py"
    path.write_text(_PRELUDE + script)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(segany.__file__).parents[1]),
    }
    processes = {
        name: subprocess.Popen(
            [sys.executable, str(path), *arguments, name, str(folder)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, arguments in runs.items()
    }
    deadline = time.monotonic() + timeout
    while not all((folder / f"ready-{name}").exists() for name in runs):
        assert time.monotonic() < deadline, "the processes did not start"
        exited = {name: p.communicate() for name, p in processes.items() if p.poll() is not None}
        assert not exited, exited
        time.sleep(0.05)
    (folder / "go").touch()
    results = {}
    for name, process in processes.items():
        out, err = process.communicate(timeout=timeout)
        results[name] = (process.returncode, out, err)
    return results
