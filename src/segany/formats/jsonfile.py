"""Reading the JSON files segany writes (SA-1B files, COCO parts) with one typed error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from segany.errors import FormatError


def read_json_file(path: Path, what: str) -> Any:
    """The parsed JSON at `path`; `what` names the file in errors ("SA-1B file").

    Raises `FormatError` if the file is missing, unreadable, not UTF-8, or not JSON.
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:  # missing, a folder, permission denied
        raise FormatError(f"cannot read the {what} {path}: {e}") from None
    except ValueError as e:  # JSONDecodeError, or UnicodeDecodeError for binary content
        raise FormatError(f"cannot read the {what} {path}: not JSON ({e})") from None
