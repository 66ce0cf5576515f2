"""What the repository says about itself holds: the package data that pyproject.toml ships
exists, the Pythons it admits get every module it imports, and the shipped evaluation of
segany-tiny names the weights it measured without a path of the machine that made it."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from segany.train.config import load_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # the dependency this file checks is declared
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
TRAIN_SH = ROOT / "training" / "segany-tiny" / "train.sh"
EVAL_JSON = ROOT / "src" / "segany" / "weights" / "segany_tiny.eval.json"


def pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


# ---- pyproject.toml ---------------------------------------------------------------------------

# The module a distribution installs, where the names differ.
MODULE_OF = {
    "opencv-python-headless": "cv2",
    "scikit-image": "skimage",
    "python-multipart": "multipart",
    "segment-anything": "segment_anything",
    "mobilesam-mirror": "mobile_sam",
}


def _needed_by(names: set[str]) -> set[str]:
    """The distributions `names` need, transitively (their own metadata), names lower-case."""
    from importlib.metadata import PackageNotFoundError, requires

    seen: set[str] = set()
    todo = [n.lower() for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            needs = requires(name) or []
        except PackageNotFoundError:
            continue
        for text in needs:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name.lower())
    return seen


def test_the_default_model_runs_on_the_core_dependencies_alone(tmp_path):
    """`pip install segany` without extras: the Quick start's click on the built-in model (with
    its edge refinement) must import nothing that only an extra installs."""
    project = pyproject()["project"]
    core = {Requirement(r).name.lower() for r in project["dependencies"]}
    extras = {
        Requirement(r).name.lower()
        for group in project["optional-dependencies"].values()
        for r in group
        if not r.startswith("segany[")
    }
    only_extras = extras - _needed_by(core)
    blocked = sorted(MODULE_OF.get(name, name.replace("-", "_")) for name in only_extras)
    assert "fastapi" in blocked and "rasterio" in blocked  # the extras are really left out
    script = f"""
import importlib.abc, sys
class LeaveOutExtras(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is only in an extra")
sys.meta_path.insert(0, LeaveOutExtras())
from segany.cli.main import main
sys.exit(main(["predict", {str(ROOT / "examples/sample.png")!r}, "--point", "330,190",
               "--out", {str(tmp_path / "mask.png")!r}, "--no-cache"]))
"""
    env = {**os.environ, "SEGANY_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "mask.png").is_file()


def test_every_package_data_pattern_ships_a_file():
    setuptools = pyproject()["tool"]["setuptools"]
    source = ROOT / setuptools["packages"]["find"]["where"][0]
    for package, patterns in setuptools["package-data"].items():
        folder = source / package.replace(".", "/")
        for pattern in patterns:
            matches = [p for p in folder.glob(pattern) if p.is_file()]
            assert matches, f"package data {package}:{pattern} matches no file in {folder}"


def test_python_versions_without_tomllib_get_tomli():
    project = pyproject()["project"]
    if not SpecifierSet(project["requires-python"]).contains("3.10"):
        pytest.skip("no supported Python lacks tomllib")
    tomli = [r for r in map(Requirement, project["dependencies"]) if r.name == "tomli"]
    assert tomli, "requires-python admits 3.10, which has no tomllib: declare tomli for it"
    marker = tomli[0].marker
    assert marker is not None, "tomli is only needed before Python 3.11: give it a marker"
    assert marker.evaluate({"python_version": "3.10"})
    assert not marker.evaluate({"python_version": "3.11"})


def test_toml_configs_are_read_with_tomli_where_tomllib_is_missing(monkeypatch):
    config = ROOT / "training" / "segany-tiny" / "stage1.toml"
    expected = load_config(config)
    # As on Python 3.10: no tomllib; the standard module stands in for tomli (the same API).
    monkeypatch.setitem(sys.modules, "tomli", sys.modules.get("tomllib") or tomllib)
    monkeypatch.setitem(sys.modules, "tomllib", None)
    assert load_config(config) == expected


# ---- segany-tiny's training script and evaluation ----------------------------------------------


def script_commands(path: Path) -> list[list[str]]:
    """The commands of a simple shell script, words split and `$name` variables set by
    `name=value` lines expanded; a redirection ends a command's words."""
    variables: dict[str, str] = {}

    def expand(word: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m[1], m[0]), word)

    commands = []
    for line in path.read_text(encoding="utf-8").replace("\\\n", " ").splitlines():
        words = [expand(w) for w in shlex.split(line, comments=True)]
        if len(words) == 1 and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
            name, value = words[0].split("=", 1)
            variables[name] = value
        elif words:
            redirect = next((i for i, w in enumerate(words) if w.startswith((">", "<"))), None)
            commands.append(words[:redirect])
    return commands


def option(words: list[str], name: str) -> str | None:
    for i, word in enumerate(words):
        if word == name and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def eval_commands() -> list[list[str]]:
    evals = [c for c in script_commands(TRAIN_SH) if c[:2] == ["segany", "eval"]]
    assert evals, f"{TRAIN_SH} runs no `segany eval`"
    return evals


def absolute_strings(value: Any) -> list[str]:
    """Every string in a JSON value that is an absolute path (POSIX, drive letter or UNC)."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in absolute_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in absolute_strings(v)]
    if isinstance(value, str) and re.match(r"(/|\\\\|[A-Za-z]:[\\/])", value):
        return [value]
    return []


def test_train_sh_evaluates_the_weights_it_just_produced():
    commands = script_commands(TRAIN_SH)
    # Files the script made from this run's outputs (runs/...), by `cp SOURCE DEST`.
    produced = {c[2] for c in commands if c[0] == "cp" and len(c) == 3 and c[1].startswith("runs/")}
    for command in eval_commands():
        checkpoint = option(command, "--checkpoint")
        assert checkpoint is not None, (
            f"`{shlex.join(command)}` evaluates the installed package's weights, not the "
            "ones just trained: pass --checkpoint"
        )
        assert "$" not in checkpoint and not Path(checkpoint).is_absolute(), checkpoint
        assert checkpoint.startswith("runs/") or checkpoint in produced, (
            f"--checkpoint {checkpoint} is neither this run's output nor a copy of it"
        )


def test_shipped_eval_json_names_no_absolute_path_and_matches_train_sh():
    report = json.loads(EVAL_JSON.read_text(encoding="utf-8"))
    assert absolute_strings(report) == []
    (command,) = eval_commands()
    assert report["checkpoint"] == option(command, "--checkpoint")
    assert report["data"] == option(command, "--data")
    assert report["model"] == option(command, "--model")


def test_train_sh_eval_line_writes_no_absolute_path(monkeypatch, capsys):
    from segany.cli.main import main  # here: the checks above need no model code

    (command,) = eval_commands()
    # The script's own command, on one tiny image instead of the 50-image test split.
    args = command[2:]
    args[args.index("--data") + 1] = "synthetic:test:1:64"
    monkeypatch.chdir(ROOT)  # where train.sh runs it
    assert main(["eval", *args, "--max-masks", "1", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert absolute_strings(report) == []
    assert report["checkpoint"] == option(command, "--checkpoint")
