"""The package's layers, read from the source's imports: `ModelSpec` lives in a leaf module that
the registry, checkpoint loading and the model builder import for real (no type-only cycle);
the project (database, image files, export) is its own package, which the server and the CLI
use and which uses neither."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "segany"


def imported_modules(path: Path, *, runtime_only: bool = False) -> set[str]:
    """The `segany...` modules a file imports (with runtime_only, not those under
    `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped |= {id(inner) for inner in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("segany"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("segany")}
    return found


def test_model_spec_is_a_leaf_the_others_import():
    leaf = imported_modules(SRC / "model_spec.py")
    assert not leaf & {"segany.registry", "segany.checkpoints", "segany.modeling.build"}
    for user in ("registry.py", "checkpoints.py", "modeling/build.py", "download.py"):
        runtime = imported_modules(SRC / user, runtime_only=True)
        assert "segany.model_spec" in runtime, f"{user} does not import ModelSpec at run time"
        assert "segany.registry" not in runtime or user == "download.py", user


@pytest.mark.parametrize("path", sorted((SRC / "project").rglob("*.py")), ids=str)
def test_the_project_package_knows_no_server(path):
    assert not {m for m in imported_modules(path) if m.startswith("segany.server")}


def test_the_cli_reaches_the_project_without_the_server():
    used = imported_modules(SRC / "cli" / "project.py")
    assert "segany.project.workspace" in used and "segany.project.export" in used
    assert not {m for m in used if m.startswith("segany.server")}
    assert not (SRC / "server" / "storage").exists() and not (SRC / "server" / "export.py").exists()
