"""`Trainer(config).fit()`: SAM's training recipe on one process or many (torchrun).

Per optimizer step: `grad_accum` micro-batches of `batch_size` images (split evenly over the
processes); each image is encoded once and `masks_per_image` of its masks get an interactive
episode (step.py, episode.py). AdamW, linear warm-up then step decay, gradient clipping.
Rank 0 logs (tqdm, OUT/metrics.jsonl), validates and saves; OUT/last.pt makes `fit` resumable.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from segany import devices
from segany.data.sample import Sample
from segany.errors import CheckpointError, ConfigError
from segany.modeling.sam import Sam
from segany.registry import build_sam
from segany.train import distributed, state
from segany.train.batches import item_generator, prepare, stream_indices
from segany.train.config import TrainConfig
from segany.train.episode import LOSS_PARTS
from segany.train.step import EmbeddingCache, TrainStep
from segany.train.validation import one_point_miou

METRICS = "metrics.jsonl"


def lr_factor(step: int, warmup_steps: int, milestones: Sequence[int], gamma: float) -> float:
    """Learning-rate multiplier after `step` optimizer steps: linear warm-up from 1/warmup to 1
    over `warmup_steps`, then x gamma at each milestone passed."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return gamma ** sum(step >= m for m in milestones)


def set_trainable(model: Sam, trainable: str) -> None:
    """Freeze all of `model` but the parts `trainable` names ("all", "decoder",
    "decoder+prompt", "iou_head"), and put it in training mode (see `training_mode`)."""
    parts = {
        "all": (model,),
        "decoder": (model.mask_decoder,),
        "decoder+prompt": (model.mask_decoder, model.prompt_encoder),
        "iou_head": (model.mask_decoder.iou_prediction_head,),
    }[trainable]
    model.requires_grad_(False)
    for part in parts:
        part.requires_grad_(True)
    training_mode(model)


def training_mode(model: Sam) -> None:
    """model.train(), but a frozen image encoder stays in eval mode: its batch-norm statistics
    (segany-tiny's encoder has some) must not drift while its weights are frozen."""
    model.train()
    if not any(p.requires_grad for p in model.image_encoder.parameters()):
        model.image_encoder.eval()


def resolve_device(name: str, world: distributed.World) -> torch.device:
    """`segany.devices.resolve_device`, with a bare "cuda" meaning this process's own GPU
    (its local rank) under torchrun."""
    device = devices.resolve_device(name)
    if device.type == "cuda" and device.index is None:
        device = devices.resolve_device(f"cuda:{world.local_rank}")
    return device


class Trainer:
    """Trains `config.model.name` on `config.data.train`.

    `train_data` / `val_data` (sequences of `Sample`) replace the datasets named by the config's
    data specs, for use from Python. After `fit()`, `history` holds every logged record.
    """

    def __init__(
        self,
        config: TrainConfig,
        train_data: Sequence[Sample] | None = None,
        val_data: Sequence[Sample] | None = None,
    ) -> None:
        self.config = config
        self.train_data = train_data if train_data is not None else _open(config.data.train)
        if self.train_data is None or len(self.train_data) == 0:
            raise ConfigError("no training data: set data.train to a dataset spec")
        self.val_data = val_data if val_data is not None else _open(config.data.val)
        self.out = Path(config.loop.output_dir)
        self.history: list[dict[str, Any]] = []
        self.embedding_cache: EmbeddingCache | None = None  # set by fit() if the encoder is frozen

    def fit(self) -> Path:
        """Train to `loop.max_steps` (resuming from OUT/last.pt if present) and write the final
        weights; returns OUT/model.pth."""
        world = distributed.world_from_env()
        device = resolve_device(self.config.loop.device, world)
        created = distributed.init(world, device)
        try:
            return self._fit(world, device)
        finally:
            distributed.shutdown(created)

    def _fit(self, world: distributed.World, device: torch.device) -> Path:
        cfg, optim_cfg, loop = self.config, self.config.optim, self.config.loop
        if optim_cfg.batch_size % world.size:
            raise ConfigError(
                f"optim.batch_size = {optim_cfg.batch_size} must be a multiple of the "
                f"{world.size} processes"
            )
        torch.manual_seed(loop.seed)
        model = build_sam(
            cfg.model.name,
            cfg.model.checkpoint,
            device,
            cfg.model.pretrained,
            image_size=cfg.model.image_size or None,
        )
        set_trainable(model, cfg.model.trainable)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params, lr=optim_cfg.lr, betas=optim_cfg.betas, weight_decay=optim_cfg.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda s: lr_factor(s, optim_cfg.warmup_steps, optim_cfg.milestones, optim_cfg.gamma),
        )
        self.out.mkdir(parents=True, exist_ok=True)
        start = 0
        resumed = state.load_last(self.out)
        if resumed is not None:
            try:
                model.load_state_dict(resumed["model"])
                optimizer.load_state_dict(resumed["optimizer"])
                scheduler.load_state_dict(resumed["scheduler"])
                state.set_rng_state(resumed["rng"])
                start = int(resumed["step"])
            except (KeyError, RuntimeError, ValueError) as e:
                raise CheckpointError(
                    f"{self.out / state.LAST} does not fit this config (another model or "
                    f"trainable setting?): {e}; use another loop.output_dir or remove the file"
                ) from None
            if world.is_main:
                _truncate_log(self.out / METRICS, start)
        elif world.is_main:
            (self.out / METRICS).write_text("")

        frozen_encoder = cfg.model.trainable != "all"
        cache = EmbeddingCache(cfg.model.embedding_cache) if frozen_encoder else None
        self.embedding_cache = cache
        iterations = (loop.point_iterations, loop.mask_only_iterations)
        runner: torch.nn.Module = TrainStep(model, iterations, cache, cfg.loss)
        if world.distributed:
            runner = DistributedDataParallel(
                runner,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=True,  # e.g. box-corner embeddings in a point-only batch
            )
        autocast = torch.autocast(
            device.type, dtype=torch.bfloat16, enabled=loop.autocast and device.type == "cuda"
        )

        bar = tqdm(
            total=loop.max_steps,
            initial=start,
            disable=not (world.is_main and loop.progress),
            desc="train",
        )
        for step in range(start, loop.max_steps):
            began = time.perf_counter()
            parts = torch.zeros(len(LOSS_PARTS), device=device)
            for micro in range(optim_cfg.grad_accum):
                batch = self._micro_batch(model, step * optim_cfg.grad_accum + micro, world)
                last = micro == optim_cfg.grad_accum - 1
                sync = runner.no_sync() if world.distributed and not last else _nothing()
                with sync, autocast:
                    losses = runner(*batch)
                    (losses["total"] / optim_cfg.grad_accum).backward()
                parts += torch.stack([losses[p].detach().float() for p in LOSS_PARTS])
            if optim_cfg.clip_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, optim_cfg.clip_grad_norm)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            parts = distributed.mean_over_ranks(parts / optim_cfg.grad_accum, world)
            done = step + 1
            record: dict[str, Any] = {"step": done, "lr": lr}
            record.update({p: float(v) for p, v in zip(LOSS_PARTS, parts, strict=True)})
            record["loss"] = record.pop("total")
            if world.is_main and loop.val_every and self.val_data and done % loop.val_every == 0:
                record["val_miou_1pt"] = self._validate(model)
            record["seconds"] = round(time.perf_counter() - began, 4)
            if world.is_main:
                self._log(record)
                bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{lr:.2e}")
                bar.update()
                if loop.checkpoint_every and done % loop.checkpoint_every == 0:
                    self._save_last(model, optimizer, scheduler, done)
        bar.close()

        if world.is_main:
            if start < loop.max_steps:
                self._save_last(model, optimizer, scheduler, loop.max_steps)
            state.save_weights(self.out, model.state_dict())
        if world.distributed:
            torch.distributed.barrier()  # no process returns before the weights are written
        return self.out / "model.pth"

    def _micro_batch(
        self, model: Sam, index: int, world: distributed.World
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[int], list[torch.Generator], int]:
        """This process's share of micro-batch `index` of the image stream, and the seed of
        the micro-batch's episode schedule (the same in every process)."""
        per_rank = self.config.optim.batch_size // world.size
        first = index * self.config.optim.batch_size + world.rank * per_rank
        keys = stream_indices(self.config.loop.seed, len(self.train_data), first, per_rank)
        images, masks, generators = [], [], []
        for offset, key in enumerate(keys):
            generator = item_generator(self.config.loop.seed, first + offset, model.device)
            sample = self.train_data[key]
            drawn = _draw(len(sample.masks), self.config.optim.masks_per_image, generator)
            item = prepare(sample, model, drawn)
            masks.append(item.masks)
            images.append(item.image)
            generators.append(generator)
        schedule_seed = self.config.loop.seed * 1_000_033 + index
        return torch.stack(images), masks, keys, generators, schedule_seed

    def _validate(self, model: Sam) -> float:
        model.eval()
        try:
            assert self.val_data is not None
            data = self.config.data
            return one_point_miou(model, self.val_data, data.val_images, data.val_masks)
        finally:
            training_mode(model)

    def _log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        with open(self.out / METRICS, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def _save_last(self, model: Sam, optimizer: Any, scheduler: Any, step: int) -> None:
        state.save_last(
            self.out,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "step": step,
                "rng": state.rng_state(),
                "config": json.dumps(self.config.to_dict()),
            },
        )


def _draw(available: int, count: int, generator: torch.Generator) -> list[int]:
    """`count` mask indices of `available`: distinct if there are enough, else with repeats."""
    if available < count:
        picked = torch.randint(available, (count,), generator=generator, device=generator.device)
    else:
        picked = torch.randperm(available, generator=generator, device=generator.device)[:count]
    return picked.tolist()


def _truncate_log(path: Path, step: int) -> None:
    """Drop records after `step` (logged by a run killed before its next checkpoint), so the
    resumed run's records follow on without duplicates."""
    if not path.is_file():
        return
    kept = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and json.loads(line).get("step", 0) <= step
    ]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _open(spec: str) -> Sequence[Sample] | None:
    if not spec:
        return None
    from segany.data.spec import open_dataset

    return open_dataset(spec)


@contextlib.contextmanager
def _nothing() -> Any:
    yield
