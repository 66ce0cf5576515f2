"""Where segany keeps files between runs: the cache root and its checkpoints folder."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "SEGANY_HOME"


def cache_dir() -> Path:
    """Root of segany's cache: `$SEGANY_HOME`, else `$XDG_CACHE_HOME/segany`, else ~/.cache/segany.

    Checkpoints go to its `checkpoints/` folder (`checkpoints_dir()`).
    """
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "segany"
    return Path.home() / ".cache" / "segany"


def checkpoints_dir() -> Path:
    """The folder downloaded official checkpoints are kept in."""
    return cache_dir() / "checkpoints"
