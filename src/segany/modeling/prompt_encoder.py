"""SAM's prompt encoder: points and boxes as random-Fourier positional encodings plus learned
type embeddings (sparse); a low-resolution mask through a small conv stack (dense)."""

from __future__ import annotations

import math
import weakref

import torch
from torch import nn

from segany.modeling.common import LayerNorm2d

# get_dense_pe's results under inference mode, by id of the frequency matrix they came from
# (held weakly and dropped with it; no module holds state that pickling would have to skip).
_DENSE_PE: dict[int, tuple[weakref.ref, tuple, torch.Tensor]] = {}

# Indices into `point_embeddings`: background point, foreground point, box corners.
_NEGATIVE, _POSITIVE, _BOX_TOP_LEFT, _BOX_BOTTOM_RIGHT = range(4)


class PositionEmbeddingRandom(nn.Module):
    """Positional encoding with random spatial frequencies (Tancik et al., 2020)."""

    def __init__(self, num_pos_feats: int, scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer(
            "positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats))
        )

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """(..., 2) xy in [0, 1] -> (..., 2 * num_pos_feats) sin/cos features."""
        coords = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """Encoding of every cell centre of an (h, w) grid: (C, h, w)."""
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        dtype = self.positional_encoding_gaussian_matrix.dtype
        # Same arithmetic as a cumulative sum of ones minus 0.5, divided by the side.
        ys = (torch.arange(1, h + 1, device=device, dtype=dtype) - 0.5) / h
        xs = (torch.arange(1, w + 1, device=device, dtype=dtype) - 0.5) / w
        grid = torch.stack(
            [xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1
        )  # (h, w, 2) xy
        return self.encode(grid).permute(2, 0, 1)

    def forward_with_coords(
        self, coords: torch.Tensor, image_size: tuple[int, int]
    ) -> torch.Tensor:
        """(B, N, 2) xy pixels in the model-input frame of size (h, w) -> (B, N, C)."""
        h, w = image_size
        sides = torch.tensor([w, h], dtype=torch.float, device=coords.device)
        return self.encode(coords.to(torch.float) / sides)


class PromptEncoder(nn.Module):
    """Encodes prompts for the mask decoder.

    Args:
        embed_dim: prompt embedding width (the decoder's transformer_dim).
        image_embedding_size: (h, w) of the image embedding grid.
        input_image_size: (H, W) of the padded model input, the frame of point coordinates.
        mask_in_chans: hidden channels of the mask downscaler.
        pe_scale: standard deviation of the random positional frequencies (SAM: 1). Only
            initialises the frequency buffer: a checkpoint's own buffer replaces it on load.
    """

    def __init__(
        self,
        embed_dim: int,
        image_embedding_size: tuple[int, int],
        input_image_size: tuple[int, int],
        mask_in_chans: int,
        pe_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = image_embedding_size
        self.input_image_size = input_image_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2, pe_scale)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """Positional encoding of the image embedding grid: (1, C, h, w).

        Under `torch.inference_mode` (every prediction) it is computed once and kept until the
        frequency matrix is replaced or changed in place (`to`, `load_state_dict`); elsewhere
        (training, where autograd may save it) it is computed afresh each call.
        """
        if not torch.is_inference_mode_enabled():
            return self.pe_layer(self.image_embedding_size).unsqueeze(0)
        matrix = self.pe_layer.positional_encoding_gaussian_matrix
        key = (matrix._version, tuple(self.image_embedding_size))
        cached = _DENSE_PE.get(id(matrix))
        if cached is None or cached[0]() is not matrix or cached[1] != key:
            if cached is None or cached[0]() is not matrix:
                weakref.finalize(matrix, _DENSE_PE.pop, id(matrix), None)
            cached = (weakref.ref(matrix), key, self.pe_layer(self.image_embedding_size)[None])
            _DENSE_PE[id(matrix)] = cached
        return cached[2]

    def embed_points(self, points: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """(B, N, 2) xy input-frame pixels, (B, N) labels in {1, 0, -1} -> (B, N[+1], C).

        `pad` appends a "not a point" (label -1) when no box follows, as SAM was trained.
        """
        points = points + 0.5  # pixel centres
        if pad:
            points = torch.cat([points, points.new_zeros(points.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, -labels.new_ones(labels.shape[0], 1)], dim=1)
        embedding = self.pe_layer.forward_with_coords(points, self.input_image_size)
        labels = labels[..., None]
        type_embedding = torch.where(
            labels == _POSITIVE,
            self.point_embeddings[_POSITIVE].weight,
            torch.where(
                labels == _NEGATIVE,
                self.point_embeddings[_NEGATIVE].weight,
                self.not_a_point_embed.weight,
            ),
        )
        # Padding points carry no position, only the "not a point" embedding.
        embedding = torch.where(labels == -1, torch.zeros_like(embedding), embedding)
        return embedding + type_embedding

    def embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """(B, 4) xyxy input-frame pixels -> (B, 2, C) corner embeddings."""
        corners = (boxes + 0.5).reshape(-1, 2, 2)
        embedding = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        corner_types = torch.cat(
            [
                self.point_embeddings[_BOX_TOP_LEFT].weight,
                self.point_embeddings[_BOX_BOTTOM_RIGHT].weight,
            ]
        )  # (2, C)
        return embedding + corner_types

    def embed_masks(self, masks: torch.Tensor) -> torch.Tensor:
        """(B, 1, 4h, 4w) mask logits -> (B, C, h, w)."""
        return self.mask_downscaling(masks)

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns sparse (B, N, C) and dense (B, C, h, w) prompt embeddings."""
        batch = _batch_size(points, boxes, masks)
        device = self.point_embeddings[0].weight.device
        sparse = [torch.empty((batch, 0, self.embed_dim), device=device)]
        if points is not None:
            sparse.append(self.embed_points(points[0], points[1], pad=boxes is None))
        if boxes is not None:
            sparse.append(self.embed_boxes(boxes))
        sparse_embeddings = torch.cat(sparse, dim=1) if len(sparse) > 1 else sparse[0]
        if masks is not None:
            dense = self.embed_masks(masks)
        else:
            h, w = self.image_embedding_size
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, h, w)
        return sparse_embeddings, dense


def _batch_size(
    points: tuple[torch.Tensor, torch.Tensor] | None,
    boxes: torch.Tensor | None,
    masks: torch.Tensor | None,
) -> int:
    if points is not None:
        return points[0].shape[0]
    if boxes is not None:
        return boxes.shape[0]
    if masks is not None:
        return masks.shape[0]
    return 1
