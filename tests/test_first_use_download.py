"""The commands (`predict`, `amg`, `eval`, `serve`, `geo`) download a model's official
checkpoint on first use, verified as `segany download` does; --no-download and SEGANY_OFFLINE
refuse with the advice. The mirror is a local file: no test reaches the internet."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from segany.cli import model_options
from segany.errors import CheckpointError
from segany.registry import get_spec
from test_download import _sam2_checkpoint


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("SEGANY_HOME", str(tmp_path / "home"))


def _first_use_args(spec_name: str, **overrides) -> argparse.Namespace:
    args = dict(model=spec_name, checkpoint=None, random_weights=False, download=True)
    return argparse.Namespace(**{**args, **overrides})


def test_a_command_downloads_the_official_checkpoint_on_first_use(tmp_path, monkeypatch, capsys):
    mirror = _sam2_checkpoint("sam2.1_hiera_t", tmp_path / "mirror.pt")
    spec = dataclasses.replace(get_spec("sam2.1_hiera_t"), url=mirror.as_uri())
    monkeypatch.setattr(model_options, "get_spec", lambda name: spec)
    monkeypatch.delenv("SEGANY_OFFLINE")
    _, path = model_options.resolve_model(_first_use_args("sam2.1_hiera_t"))
    assert path == tmp_path / "home" / "checkpoints" / "sam2.1_hiera_tiny.pt"
    assert path.read_bytes() == mirror.read_bytes()
    assert "downloading its official checkpoint once" in capsys.readouterr().err
    mirror.unlink()  # the second run finds the verified file: no download
    assert model_options.resolve_model(_first_use_args("sam2.1_hiera_t"))[1] == path
    assert "downloading" not in capsys.readouterr().err


@pytest.mark.parametrize("how", ["flag", "env"])
def test_no_download_refuses_with_the_advice(tmp_path, monkeypatch, how):
    mirror = _sam2_checkpoint("sam2.1_hiera_t", tmp_path / "mirror.pt")
    spec = dataclasses.replace(get_spec("sam2.1_hiera_t"), url=mirror.as_uri())
    monkeypatch.setattr(model_options, "get_spec", lambda name: spec)
    if how == "flag":
        monkeypatch.delenv("SEGANY_OFFLINE")
    args = _first_use_args("sam2.1_hiera_t", download=how == "env")
    with pytest.raises(CheckpointError, match="segany download sam2.1_hiera_t"):
        model_options.resolve_model(args)
    assert not (tmp_path / "home" / "checkpoints").exists()


def test_a_failed_first_use_download_says_what_to_do(tmp_path, monkeypatch):
    spec = dataclasses.replace(get_spec("sam2.1_hiera_t"), url=(tmp_path / "gone.pt").as_uri())
    monkeypatch.setattr(model_options, "get_spec", lambda name: spec)
    monkeypatch.delenv("SEGANY_OFFLINE")
    with pytest.raises(CheckpointError) as info:
        model_options.resolve_model(_first_use_args("sam2.1_hiera_t"))
    assert "segany download sam2.1_hiera_t" in str(info.value)
    assert "--checkpoint PATH" in str(info.value)
