"""One rule for where a model's weights come from (build_sam, the engine's ModelSource and the
command line), seeded random weights, per-model automatic-mask defaults, and the package's
layering (no import cycle between the registry and the checkpoint reader)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import torch

from segany.checkpoints import fingerprint_of_spec
from segany.devices import resolve_device
from segany.engine import ModelSource
from segany.errors import ConfigError
from segany.masks.config import AmgConfig
from segany.masks.generator import AutomaticMaskGenerator
from segany.modeling.config import ENCODER_CONFIGS
from segany.paths import HOME_ENV
from segany.registry import (
    WeightsNotFoundError,
    build_sam,
    detect_variant,
    get_spec,
    list_models,
    resolve_weights,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "segany"


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_model_source_loads_the_shipped_weights_as_build_sam_does():
    shipped = build_sam("segany-tiny").state_dict()
    source = ModelSource("segany-tiny")
    assert source.checkpoint == get_spec("segany-tiny").bundled_path
    assert _same(source.build().state_dict(), shipped)


def test_random_weights_only_when_asked_and_seeded_the_same_everywhere():
    source = ModelSource("segany-tiny", pretrained=False, seed=3)
    assert source.checkpoint is None
    a = source.build().state_dict()
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    b = build_sam("segany-tiny", pretrained=False, seed=3).state_dict()
    assert torch.equal(torch.rand(1), before)  # a seed leaves the global RNG alone
    assert _same(a, b)
    assert not _same(a, build_sam("segany-tiny").state_dict())
    assert not _same(a, build_sam("segany-tiny", pretrained=False, seed=4).state_dict())


@pytest.mark.parametrize(("name", "reason"), [("vit_b", "not_downloaded"), ("test_tiny", "none")])
def test_no_weights_is_an_error_not_a_silent_random_model(name, reason):
    for call in (lambda: build_sam(name), lambda: ModelSource(name)):
        with pytest.raises(WeightsNotFoundError) as info:
            call()
        assert info.value.reason == reason
        assert "pretrained=False" in str(info.value)
        assert "--" not in str(info.value)  # API wording; the CLI words its own advice


def test_a_downloaded_official_file_is_found(tmp_path):
    spec = get_spec("vit_b")
    cached = spec.downloaded_path
    assert cached == tmp_path / "home" / "checkpoints" / "sam_vit_b_01ec64.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert resolve_weights(spec) == cached
    assert resolve_weights(spec, pretrained=False) is None
    assert resolve_weights(spec, tmp_path / "mine.pth") == tmp_path / "mine.pth"


def test_built_models_know_their_spec():
    assert build_sam("test_tiny", pretrained=False).spec is get_spec("test_tiny")


def _runtime_imports(tree: ast.AST) -> set[str]:
    """Modules imported anywhere (functions included) except under `if TYPE_CHECKING:`."""
    found: set[str] = set()
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        found |= _runtime_imports(node)
    return found


def test_checkpoints_module_does_not_import_the_registry():
    """registry -> checkpoints only: the reader takes the candidate specs as an argument."""
    for module in ("checkpoints.py", "modeling/config.py", "paths.py"):
        imported = _runtime_imports(ast.parse((SRC / module).read_text()))
        assert not {m for m in imported if m.startswith("segany.registry")}, module
    assert "segany.checkpoints" in _runtime_imports(ast.parse((SRC / "registry.py").read_text()))


def test_every_encoder_config_describes_and_reads_its_fingerprint():
    """A model is recognised from its own state dict through its encoder config alone."""
    kinds = {type(get_spec(n).encoder) for n in list_models()}
    assert kinds <= set(ENCODER_CONFIGS)
    for name in list_models():
        spec = get_spec(name)
        small = ("segany-tiny", "segany-tiny-v2", "test_tiny")
        model = build_sam(name, pretrained=False) if name in small else None
        if model is None:
            continue  # large models: covered by test_checkpoints' skeletons
        facts = spec.encoder.read_fingerprint(model.state_dict())
        assert facts is not None and facts.items() <= fingerprint_of_spec(spec).items()
        assert detect_variant(model.state_dict()) == name


def test_resolve_device_is_typed():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="not a device"):
        resolve_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="not available"):
            resolve_device("cuda:0")


# ---- automatic-mask defaults --------------------------------------------------------------


@pytest.mark.parametrize("name", list_models())
def test_every_model_has_valid_automatic_mask_defaults(name):
    spec = get_spec(name)
    config = AmgConfig.for_model(spec)
    config.validate(has_point_grids=False)
    for key, value in spec.amg_defaults.items():
        assert getattr(config, key) == value
    if name.startswith("vit_"):  # SAM's own models keep SAM's thresholds
        assert config == AmgConfig()


def test_segany_tiny_has_measured_defaults_of_its_own():
    tiny = AmgConfig.for_model(get_spec("segany-tiny"))
    assert tiny.pred_iou_thresh < AmgConfig().pred_iou_thresh
    assert tiny.stability_score_thresh < AmgConfig().stability_score_thresh


def test_for_model_layers_sam_model_and_user_options():
    spec = get_spec("segany-tiny")
    config = AmgConfig.for_model(spec, pred_iou_thresh=0.3, stability_score_thresh=None)
    assert config.pred_iou_thresh == 0.3
    assert config.stability_score_thresh == spec.amg_defaults["stability_score_thresh"]
    with pytest.raises(ConfigError, match="unknown automatic-mask option"):
        AmgConfig.for_model(spec, pred_iou=0.3)


def test_generator_takes_the_models_defaults_unless_told_otherwise():
    model = build_sam("segany-tiny")
    assert AutomaticMaskGenerator(model).config == AmgConfig.for_model(model.spec)
    generator = AutomaticMaskGenerator(model, pred_iou_thresh=0.1)
    assert generator.config.pred_iou_thresh == 0.1
    explicit = AmgConfig(points_per_side=4)
    assert AutomaticMaskGenerator(model, explicit).config == explicit
    with pytest.raises(ConfigError, match="unknown option"):
        AutomaticMaskGenerator(model, pred_iou=0.1)
    with pytest.raises(ConfigError, match="must be an AmgConfig"):
        AutomaticMaskGenerator(model, 32)


def test_amg_config_is_the_one_list_of_options():
    """The CLI's flags are AmgConfig's fields (minus output_mode), not a copy."""
    from segany.cli.amg import cli_options

    names = {f.name for f in cli_options()}
    assert names == {f.name for f in dataclasses.fields(AmgConfig)} - {"output_mode"}
    source = (SRC / "masks" / "generator.py").read_text()
    assert "pred_iou_thresh: float = 0.88" not in source  # no second copy of the defaults


@pytest.mark.parametrize("name", ["vit_h", "vit_l", "vit_b"])
def test_registry_descriptions_give_the_measured_parameter_count(name):
    """Counted on the meta device: no memory, no time, the real architecture."""
    import re

    from segany.modeling.build import build_model

    spec = get_spec(name)
    with torch.device("meta"):
        model = build_model(spec)
    count = sum(p.numel() for p in model.parameters())
    stated = int(re.search(r"\((\d+) M parameters\)", spec.description).group(1))
    assert stated == round(count / 1e6), (stated, count)


def test_segany_amg_with_all_defaults_finds_the_sample_images_shapes(tmp_path, capsys):
    """A new user's first `segany amg examples/sample.png`: the built-in model with its own
    defaults keeps masks (with SAM's thresholds it kept none), and the disc is among them."""
    import json

    import numpy as np
    from PIL import Image

    from segany.cli.main import main
    from segany.formats import to_binary_mask

    sample = Path(__file__).resolve().parents[1] / "examples" / "sample.png"
    code = main(["amg", str(sample), "--out", str(tmp_path), "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "no mask passed the filters" not in captured.err
    document = json.loads((tmp_path / "sample.json").read_text())
    masks = [to_binary_mask(a["segmentation"]) for a in document["annotations"]]
    assert len(masks) >= 3
    # The sample's yellow disc (examples/make_sample.py) is found as one mask.
    rgb = np.asarray(Image.open(sample).convert("RGB")).astype(int)
    disc = (rgb[..., 0] > 200) & (rgb[..., 1] > 180) & (rgb[..., 2] < 100)
    best = max(float((m & disc).sum() / (m | disc).sum()) for m in masks)
    assert best > 0.8
