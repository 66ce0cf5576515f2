"""The model behind the API: image embeddings from the shared cache, point / box prompts to
ranked masks (COCO RLE + polygons), automatic proposals. One `ModelService` per worker process;
requests run in FastAPI's thread pool, each with its own light `SamPredictor` over the shared
model.

Forward passes take turns on one compute thread per process (`segany.compute_thread`): each
already uses every core torch was given, concurrent ones oversubscribe the CPU (OpenMP threads
spinning against each other made clicks ~100x slower on a 2-core machine), and torch work spread
over many request threads makes OpenMP put its workers to sleep between operations. A click's
decoder pass takes milliseconds, so queueing them costs less than running them side by side;
more workers (`--workers`) add parallelism where there are cores for it."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from segany.cache import (
    CachedEmbedding,
    EmbeddingCache,
    PixelCache,
    encode,
    image_key,
    restore,
    weights_id,
)
from segany.compute_thread import ComputeThread, Priority, SharedWork
from segany.errors import PromptError
from segany.formats.polygons import mask_to_polygons
from segany.formats.segmentation import to_coco_rle
from segany.interactive import predict_edit
from segany.masks.extent import mask_area, mask_bbox_xyxy
from segany.predictor import SamPredictor
from segany.project.image_files import StoredImage, read_checked
from segany.registry import build_sam, get_spec, resolve_weights
from segany.server.previous import PreviousLogits
from segany.server.settings import ServerSettings


def mask_record(
    mask: np.ndarray, score: float | None, polygons: bool = True, rle: Any = None
) -> dict[str, Any]:
    """An (H, W) bool mask as the API returns it: COCO RLE, outer polygons (None unless
    `polygons`), score, area and XYWH bbox, all in upright image pixels. rle: the mask's COCO
    RLE when the caller has it (not encoded again: encoding runs torch, for the compute
    thread only)."""
    box = mask_bbox_xyxy(mask)
    bbox = [0, 0, 0, 0] if box is None else [box[0], box[1], box[2] - box[0], box[3] - box[1]]
    return {
        "rle": to_coco_rle(mask if rle is None else rle),
        "polygons": mask_to_polygons(mask) if polygons else None,
        "score": None if score is None else float(score),
        "area": mask_area(mask),
        "bbox": bbox,
    }


class ModelService:
    """The model, its weights' identity, the embedding cache and the stored previous answers."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        spec = get_spec(settings.model)
        weights = resolve_weights(spec, settings.checkpoint, not settings.random_weights)
        # Every torch operation of the service, loading included, runs on this one thread.
        self.compute = ComputeThread(threads=settings.threads)
        self._encodings = SharedWork(self.compute)  # an image's encoding, at its askers' priority
        self.model = self.compute.run(
            build_sam,
            spec.name,
            weights,
            settings.device,
            pretrained=False,
            seed=0,
            edge_refinement=settings.edge_refinement,
        )
        self.weights_id = weights_id(weights) if weights is not None else "random-seed-0"
        bounds = settings.cache_budget  # every store bounded in bytes (--cache-size etc.)
        self.cache = EmbeddingCache(
            settings.cache_dir, bounds.embeddings_memory, bounds.embeddings_disk
        )
        self.previous = PreviousLogits(
            settings.data_dir / "previous", bounds.previous_memory, bounds.previous_disk
        )
        # Decoded images, for the masks' edge refinement.
        self.pixels = PixelCache(bounds.pixels_memory)

    @property
    def name(self) -> str:
        return self.model.spec.name

    def key(self, image: StoredImage) -> str:
        # The file's sha256 stands for its bytes: the key is computed without reading the file.
        return image_key(image.sha256.encode(), self.name, self.weights_id)

    def is_encoded(self, image: StoredImage) -> bool:
        return self.cache.contains(self.key(image))

    def forget(self, image: StoredImage) -> None:
        """Drop what this service keeps of a deleted image: its embedding for this model and
        weights (memory and disk) and its decoded pixels. Other models' embeddings of the same
        file stay until the disk bound evicts them."""
        self.cache.discard(self.key(image))
        self.pixels.discard(image.sha256)

    def embedding(
        self, image: StoredImage, priority: Priority = Priority.CLICK
    ) -> tuple[CachedEmbedding, bool]:
        """The image's embedding and whether it came from the cache (computed once however many
        requests and workers ask at the same time). priority: the caller's (a click's, or
        pre-encoding's BACKGROUND); the one encoding runs at the most urgent of its askers'."""
        key = self.key(image)

        def compute() -> CachedEmbedding:
            pixels = read_checked(image)
            self.pixels.put(image.sha256, pixels)
            return self._encodings.run(key, encode, SamPredictor(self.model), pixels)

        with self._encodings.asking(key, priority):
            return self.cache.get_or_compute(key, compute)

    def close(self) -> None:
        """Finish the queued forward passes and end the compute thread."""
        self.compute.close()

    def predict(
        self,
        image: StoredImage,
        points: list[list[float]],
        box: list[float] | None,
        multimask: bool,
        previous: str | None,
        polygons: bool = True,
    ) -> tuple[list[dict[str, Any]], str, bool]:
        """Masks for the prompts, best first, a token for their low-res logits, and whether the
        embedding was cached. Points are [x, y, label] in upright pixels. multimask: the
        candidates of `segany.interactive.predict_edit` (3 for a first click or box, 4 after);
        else the single-mask output alone. polygons: trace the masks' outlines too (the
        annotator draws the RLE and asks without them)."""
        if not points and box is None:
            raise PromptError("give at least one point or a box")
        predictor = SamPredictor(self.model)  # holds no tensors until `_answer` restores one
        mask_input = None
        if previous is not None:  # checked before the (maybe costly) embedding
            mask_input = self.previous.get(previous, predictor.low_res_size)
        cached_embedding, cached = self.embedding(image)
        pixels = None
        if predictor.edge_refinement is not None:
            pixels = self.pixels.get_or_load(image.sha256, lambda: read_checked(image))
        coords = labels = None
        if points:
            array = np.asarray(points, dtype=np.float64)  # (N, 3)
            coords, labels = array[:, :2], array[:, 2].astype(np.int64)
        box_array = None if box is None else np.asarray(box, dtype=np.float64)
        prompts = (coords, labels, box_array, mask_input)
        records, logits = self.compute.run(
            self._answer, predictor, cached_embedding, pixels, prompts, multimask, polygons
        )
        return records, self.previous.put(logits), cached

    @torch.inference_mode()
    def _answer(
        self,
        predictor: SamPredictor,
        embedding: CachedEmbedding,
        pixels: np.ndarray | None,
        prompts: tuple[Any, Any, Any, Any],
        multimask: bool,
        polygons: bool,
    ) -> tuple[list[dict[str, Any]], np.ndarray]:
        """On the compute thread: the mask records, best first, and their (C, h, w) low-res
        logits. prompts: (coords (N, 2), labels (N,), box (4,), mask_input (1, h, w)), each
        may be None."""
        restore(predictor, embedding, pixels)
        coords, labels, box, mask_input = prompts
        if multimask:  # the interactive rule, candidates best first
            masks, scores, logits = predict_edit(predictor, coords, labels, box, mask_input)
        else:
            masks, scores, logits = predictor.predict(
                coords, labels, box, mask_input, multimask_output=False
            )
        records = [
            mask_record(mask, score, polygons) for mask, score in zip(masks, scores, strict=True)
        ]
        return records, logits
