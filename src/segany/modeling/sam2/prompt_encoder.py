"""SAM 2's prompt encoder: SAM's, with box corners also accepted as labelled points.

SAM 2 feeds a box to the encoder as two points labelled 2 (top-left) and 3 (bottom-right),
placed before the clicks, and pads every point list with a "not a point" (label -1) because no
`boxes` argument follows. Weights, keys and every other computation are SAM's
(`segany.modeling.prompt_encoder.PromptEncoder`).
"""

from __future__ import annotations

import torch

from segany.modeling.prompt_encoder import PromptEncoder

# Point labels SAM 2 uses, each naming the row of `point_embeddings` added to the position.
PADDING, NEGATIVE, POSITIVE, BOX_TOP_LEFT, BOX_BOTTOM_RIGHT = -1, 0, 1, 2, 3


class Sam2PromptEncoder(PromptEncoder):
    """`PromptEncoder` whose point labels may also be 2 and 3 (box corners)."""

    def embed_points(self, points: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """(B, N, 2) xy input-frame pixels, (B, N) labels in {-1, 0, 1, 2, 3} -> (B, N[+1], C).

        Label -1 (padding) carries no position, only the "not a point" embedding; labels 0..3
        add `point_embeddings[label]` to the position. `pad` appends one padding point.
        """
        points = points + 0.5  # pixel centres
        if pad:
            points = torch.cat([points, points.new_zeros(points.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, -labels.new_ones(labels.shape[0], 1)], dim=1)
        labels = labels.long()
        position = self.pe_layer.forward_with_coords(points, self.input_image_size)
        # Row 0 "not a point", rows 1..4 the labels 0..3.
        types = torch.cat(
            [self.not_a_point_embed.weight, *(e.weight for e in self.point_embeddings)]
        )
        type_embedding = types[(labels + 1).clamp(0, len(types) - 1)]  # (B, N, C)
        is_padding = (labels == PADDING)[..., None]
        return torch.where(is_padding, torch.zeros_like(position), position) + type_embedding
