"""The trainer on tiny synthetic scenes with the test_tiny model: the loss falls, weights
round-trip through build_sam, a frozen encoder stays bit-identical, a resumed run equals a
straight one, 2 gloo processes equal 1, and bad configs raise ConfigError."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from conftest import unused_local_port
from reference_models import build_reference
from segany import build_sam
from segany.cli.main import main
from segany.data.spec import open_dataset
from segany.errors import CheckpointError, ConfigError
from segany.train.config import (
    LoopConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    load_config,
)
from segany.train.distributed import World
from segany.train.trainer import Trainer, lr_factor, resolve_device

SPEC = "synthetic:train:4:64"


@pytest.fixture(scope="module")
def scenes():
    data = open_dataset(SPEC)
    return [data[i] for i in range(len(data))]


CPU = {"device": "cpu"}


def make_config(out: Path, steps: int, **changes) -> TrainConfig:
    optim = OptimConfig(lr=2e-3, warmup_steps=2, batch_size=2, masks_per_image=4)
    loop = LoopConfig(
        max_steps=steps, checkpoint_every=0, iterations=3, output_dir=str(out), progress=False
    )
    config = TrainConfig(model=ModelConfig(name="test_tiny"), optim=optim, loop=loop)
    for group, values in changes.items():
        config = dataclasses.replace(
            config, **{group: dataclasses.replace(getattr(config, group), **values)}
        )
    return config


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_loss_falls_and_weights_round_trip(tmp_path, scenes):
    trainer = Trainer(make_config(tmp_path, 30), scenes, scenes[:2])
    pth = trainer.fit()
    losses = [record["loss"] for record in trainer.history]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5

    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(1, 31))
    assert {"loss", "focal", "dice", "iou_mse", "lr", "seconds"} <= set(json.loads(lines[0]))

    saved = weights(pth)
    for checkpoint in (pth, tmp_path / "model.safetensors"):
        model = build_sam("test_tiny", checkpoint=checkpoint)
        for key, value in model.state_dict().items():
            assert torch.equal(value, saved[key]), key
    assert load_file(tmp_path / "model.safetensors").keys() == saved.keys()
    # The reference implementation built at test_tiny's sizes takes the file unchanged.
    reference = build_reference("test_tiny")
    reference.load_state_dict(saved, strict=True)


def saved_start(tmp_path):
    """Seeded test_tiny weights, and their file for model.checkpoint."""
    torch.manual_seed(0)
    start = build_sam("test_tiny", pretrained=False).state_dict()
    torch.save(start, tmp_path / "start.pth")
    return start, str(tmp_path / "start.pth")


def test_frozen_encoder_is_unchanged(tmp_path, scenes):
    start, path = saved_start(tmp_path)
    config = make_config(
        tmp_path / "run",
        4,
        model={"trainable": "decoder", "checkpoint": path},
        loop={"val_every": 2},
        data={"val_images": 1, "val_masks": 2},
    )
    trainer = Trainer(config, scenes, scenes[:1])
    end = weights(trainer.fit())
    assert "val_miou_1pt" in trainer.history[1]
    # 8 images drawn from 4: the second epoch reuses the cached embeddings.
    cache = trainer.embedding_cache
    assert cache is not None and (cache.misses, cache.hits, len(cache)) == (4, 4, 4)
    for key, value in start.items():
        if key.startswith(("image_encoder.", "prompt_encoder.")):
            assert torch.equal(value, end[key]), key
    changed = [
        k for k in start if k.startswith("mask_decoder.") and not torch.equal(start[k], end[k])
    ]
    assert len(changed) > 10


def test_iou_head_stage_changes_the_iou_head_alone(tmp_path, scenes):
    """trainable = "iou_head" retrains the choice among the 3 masks: every other weight, and
    so every mask, stays bit-identical."""
    start, path = saved_start(tmp_path)
    config = make_config(tmp_path / "run", 3, model={"trainable": "iou_head", "checkpoint": path})
    end = weights(Trainer(config, scenes, scenes[:1]).fit())
    head = "mask_decoder.iou_prediction_head."
    changed = {k for k in start if not torch.equal(start[k], end[k])}
    assert changed and all(k.startswith(head) for k in changed)
    assert {k for k in start if k.startswith(head) and k.endswith("weight")} <= changed


def test_iou_weight_scales_the_iou_heads_training(tmp_path, scenes):
    """loss.iou_weight reaches the loss: at 0 the IoU head gets no gradient, so without weight
    decay it stays as it started; the run's "loss" is the mask loss alone."""
    start, path = saved_start(tmp_path)
    head = "mask_decoder.iou_prediction_head."
    runs = {}
    for iou_weight in (0.0, 1.0):
        config = make_config(
            tmp_path / f"run{iou_weight}",
            2,
            model={"trainable": "iou_head", "checkpoint": path},
            optim={"weight_decay": 0.0},
            loss={"iou_weight": iou_weight},
        )
        trainer = Trainer(config, scenes)
        runs[iou_weight] = (weights(trainer.fit()), trainer.history)
    frozen, history = runs[0.0]
    assert all(torch.equal(start[k], frozen[k]) for k in start)
    assert history[0]["loss"] == pytest.approx(
        20 * history[0]["focal"] + history[0]["dice"], rel=1e-5
    )
    trained, history = runs[1.0]
    assert any(not torch.equal(start[k], trained[k]) for k in start if k.startswith(head))
    record = history[0]
    assert record["loss"] == pytest.approx(
        20 * record["focal"] + record["dice"] + record["iou_mse"], rel=1e-5
    )


def test_iou_rank_weight_reaches_the_trainers_loss(tmp_path, scenes):
    """loss.iou_rank_weight adds the ranking term, logged as "iou_rank", to every step's loss."""
    config = make_config(tmp_path / "ranked", 2, loss={"iou_rank_weight": 2.0})
    trainer = Trainer(config, scenes)
    trainer.fit()
    for record in trainer.history:
        assert record["iou_rank"] > 0
        assert record["loss"] == pytest.approx(
            20 * record["focal"] + record["dice"] + record["iou_mse"] + 2 * record["iou_rank"],
            rel=1e-5,
        )


def test_resume_equals_straight_run(tmp_path, scenes):
    straight = weights(Trainer(make_config(tmp_path / "a", 6), scenes).fit())
    first = make_config(tmp_path / "b", 3, loop={"checkpoint_every": 3})
    Trainer(first, scenes).fit()
    with open(tmp_path / "b" / "metrics.jsonl", "a") as log:  # as if killed after step 4
        log.write(json.dumps({"step": 4, "loss": 0.0}) + "\n")
    resumed = Trainer(make_config(tmp_path / "b", 6, loop={"checkpoint_every": 3}), scenes)
    result = weights(resumed.fit())
    assert [r["step"] for r in resumed.history] == [4, 5, 6]
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4, 5, 6]
    for key, value in straight.items():
        torch.testing.assert_close(result[key], value, atol=1e-6, rtol=0)


def test_grad_accum_equals_larger_batch(tmp_path, scenes):
    # Micro-batches of 1 image accumulated twice see the same images and prompts as batches of 2
    # (differences: float rounding of 1- vs 2-image encoder batches, scaled by Adam).
    # On the CPU in float32 (on CUDA, bf16 autocast rounds far above this tolerance).
    whole = weights(Trainer(make_config(tmp_path / "a", 3, loop=CPU), scenes).fit())
    config = make_config(tmp_path / "b", 3, optim={"batch_size": 1, "grad_accum": 2}, loop=CPU)
    accumulated = weights(Trainer(config, scenes).fit())
    for key, value in whole.items():
        torch.testing.assert_close(accumulated[key], value, atol=1e-4, rtol=0)


def test_resume_with_another_setting_is_refused(tmp_path, scenes):
    Trainer(make_config(tmp_path, 1), scenes).fit()
    other = make_config(tmp_path, 2, model={"trainable": "decoder"})
    with pytest.raises(CheckpointError, match="does not fit"):
        Trainer(other, scenes).fit()


def _ddp_worker(rank: int, world: int, port: int, config: TrainConfig, scenes) -> None:
    torch.set_num_threads(1)
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    Trainer(config, scenes).fit()


def test_two_gloo_processes_equal_one(tmp_path, scenes):
    # On the CPU, as the gloo backend is meant here (one CUDA device per process otherwise).
    single = weights(Trainer(make_config(tmp_path / "one", 3, loop=CPU), scenes).fit())
    config = make_config(tmp_path / "two", 3, loop=CPU)
    mp.spawn(_ddp_worker, args=(2, unused_local_port(), config, scenes), nprocs=2, join=True)
    double = weights(tmp_path / "two" / "model.pth")
    assert single.keys() == double.keys()
    for key, value in single.items():
        torch.testing.assert_close(double[key], value, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["cuda:99", "cuda"])
def test_missing_cuda_device_is_a_config_error(name):
    # No CUDA here: "not available"; with CUDA, rank 99's GPU "does not exist".
    if name == "cuda" and torch.cuda.is_available():
        assert resolve_device(name, World()).type == "cuda"
        return
    with pytest.raises(ConfigError, match="not available|does not exist"):
        resolve_device(name, World(rank=0, size=100, local_rank=99 if name == "cuda" else 0))


def test_lr_schedule():
    factors = [lr_factor(s, 4, (6, 8), 0.1) for s in range(10)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4:6] == [1.0, 1.0]
    assert factors[6:8] == pytest.approx([0.1, 0.1])
    assert factors[8:] == pytest.approx([0.01, 0.01])


@pytest.mark.parametrize(
    "text, message",
    [
        ('[model]\ntrainable = "encoder"\n', "trainable"),
        ("[model]\nimage_size = -256\n", "image_size"),
        ("[optim]\nlearning_rate = 0.1\n", "learning_rate"),
        ("[training]\nmax_steps = 1\n", "training"),
        ('[loop]\nmax_steps = "ten"\n', "max_steps"),
        ("[loss]\niou_weight = -1.0\n", "iou_weight"),
        ("[loss]\niou_rank_weight = -0.5\n", "iou_rank_weight"),
        ('[loss]\niou_rank_weight = "high"\n', "iou_rank_weight"),
        ("[loss]\niou_rank_weight = true\n", "iou_rank_weight"),
        ("[loss]\niou_weight = inf\n", "iou_weight"),
        ("[loss]\nfocal_weight = 2.0\n", "focal_weight"),
        ("[loop\n", "TOML"),
        (b"\xff\xfe[loop]", "not UTF-8"),
    ],
)
def test_config_errors(tmp_path, text, message):
    path = tmp_path / "config.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_config_toml_and_json(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text(
        '[data]\ntrain = "synthetic:train:4:64"\n[model]\ntrainable = "decoder+prompt"\n'
        "[optim]\nlr = 1\nbetas = [0.9, 0.95]\nmilestones = [10, 20]\n[loop]\nmax_steps = 5\n"
        "[loss]\niou_weight = 4\niou_rank_weight = 0.5\n"
    )
    config = load_config(toml)
    assert config.model.trainable == "decoder+prompt" and config.loss.iou_weight == 4.0
    assert config.loss.iou_rank_weight == 0.5
    assert config.optim.betas == (0.9, 0.95) and config.optim.milestones == (10, 20)
    assert config.loop.max_steps == 5 and config.loop.iterations == 11
    as_json = tmp_path / "c.json"
    as_json.write_text(json.dumps(config.to_dict()))
    assert load_config(as_json) == config


def test_cli_train(tmp_path, capsys):
    config = make_config(tmp_path / "out", 2, data={"train": SPEC})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict()))
    assert main(["train", "--config", str(path)]) == 0
    assert (tmp_path / "out" / "model.pth").is_file()
    assert (tmp_path / "out" / "last.pt").is_file()
    assert main(["train", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read config" in capsys.readouterr().err


def test_pretrained_starts_from_the_models_own_weights(tmp_path, scenes):
    """`pretrained = true` without a checkpoint fine-tunes the shipped segany-tiny (build_sam's
    rule); the frozen encoder leaves the run exactly as it started."""
    shipped = build_sam("segany-tiny").state_dict()
    config = make_config(
        tmp_path, 1, model={"name": "segany-tiny", "pretrained": True, "trainable": "decoder"}
    )
    end = weights(Trainer(config, scenes[:2]).fit())
    encoder = [k for k in shipped if k.startswith("image_encoder.")]
    assert encoder and all(torch.equal(end[k], shipped[k]) for k in encoder)
    random_start = build_sam("segany-tiny", pretrained=False, seed=0).state_dict()
    assert not torch.equal(end[encoder[0]], random_start[encoder[0]])


def test_config_overrides_from_the_command_line(tmp_path):
    from segany.train.config import load_config

    path = tmp_path / "c.toml"
    path.write_text('[model]\nname = "test_tiny"\n[loop]\nmax_steps = 100\n')
    config = load_config(path, ["loop.max_steps=3", "loop.output_dir=runs/x", "optim.lr=1e-3"])
    assert (config.loop.max_steps, config.loop.output_dir, config.optim.lr) == (3, "runs/x", 1e-3)
    for bad in ("max_steps=3", "loop.max_steps", "loop.nope=1", "loop.max_steps=0"):
        with pytest.raises(ConfigError):
            load_config(path, [bad])
