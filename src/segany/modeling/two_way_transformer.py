"""SAM's two-way transformer: prompt tokens and image tokens attend to each other."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from segany.modeling.common import MLPBlock


class Attention(nn.Module):
    """Multi-head attention whose projections may shrink the width by `downsample_rate`."""

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        assert self.internal_dim % num_heads == 0, "num_heads must divide the internal width"
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q: (B, Nq, C), k and v: (B, Nk, C) -> (B, Nq, C)."""
        return self.attend(self.q_proj(q), self.k_proj(k), self.v_proj(v))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention on already-projected q (B, Nq, C'), k and v (B, Nk, C') -> (B, Nq, C).

        A batch of 1 on either side is broadcast to the other's batch. One side is always a
        few prompt tokens; its per-head slices are laid out block-diagonally
        (`_block_diagonal`) so that the other, image-sized side is used in its contiguous
        (B, N, C') layout by plain matrix products, never split into heads and copied.
        """
        scale = 1.0 / math.sqrt(self.internal_dim // self.num_heads)
        if k.shape[1] <= q.shape[1]:
            out = self._few_keys(q, k, v, scale)
        else:
            out = self._few_queries(q, k, v, scale)
        return self.out_proj(out)

    def _few_keys(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float
    ) -> torch.Tensor:
        """Many queries (Bq, Nq, C'), few keys (Bk, Nk, C') -> (B, Nq, C')."""
        heads, nk = self.num_heads, k.shape[1]
        keys = _block_diagonal(k, heads)  # (Bk, heads * Nk, C')
        values = _block_diagonal(v, heads)
        batch = max(q.shape[0], k.shape[0])
        if q.shape[0] == 1 and batch > 1:  # one image side, many prompts: one GEMM
            scores = (q[0] @ keys.reshape(-1, keys.shape[-1]).T).view(q.shape[1], batch, -1)
            scores = scores.transpose(0, 1)  # (B, Nq, heads * Nk)
        else:
            scores = q @ keys.transpose(1, 2)
        attn = torch.softmax(scores.mul_(scale).unflatten(-1, (heads, nk)), dim=-1)
        return attn.flatten(-2) @ values  # (B, Nq, C'), heads already merged

    def _few_queries(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float
    ) -> torch.Tensor:
        """Few queries (Bq, Nq, C'), many keys (Bk, Nk, C') -> (B, Nq, C')."""
        heads, nq, width = self.num_heads, q.shape[1], q.shape[2]
        queries = _block_diagonal(q, heads)  # (Bq, heads * Nq, C')
        batch = max(q.shape[0], k.shape[0])
        if k.shape[0] == 1 and batch > 1:  # one image side, many prompts: one GEMM
            attn = torch.softmax((queries.reshape(-1, width) @ k[0].T).mul_(scale), dim=-1)
            full = (attn @ v[0]).view(batch, heads * nq, width)
        else:
            attn = torch.softmax((queries @ k.transpose(1, 2)).mul_(scale), dim=-1)
            full = attn @ v  # (B, heads * Nq, C'): head h's rows hold every head's values
        full = full.view(batch, heads, nq, heads, width // heads)
        # Keep head h's own slice of its rows: the diagonal over the two head axes.
        own = torch.diagonal(full, dim1=1, dim2=3)  # (B, Nq, d, heads)
        return own.permute(0, 1, 3, 2).reshape(batch, nq, width)


def _block_diagonal(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, C') -> (B, heads * N, C'): row block h keeps only head h's C'/heads columns."""
    b, n, width = x.shape
    owner = torch.arange(width, device=x.device) // (width // heads)
    keep = owner[None, :] == torch.arange(heads, device=x.device)[:, None]  # (heads, C')
    return (x[:, None] * keep[None, :, None, :]).reshape(b, heads * n, width)


@dataclass
class ImageSide:
    """The prompt-independent part of the first two-way block for one image.

    In the first block the image tokens are still the (image + dense prompt) embedding, so
    their projections can be computed once per image and reused by every prompt; a predictor
    answering many clicks on one image saves them each time.
    keys, key_pe: (1, h*w, C); the projections: (1, h*w, C / downsample).
    """

    keys: torch.Tensor
    key_pe: torch.Tensor
    token_to_image_k: torch.Tensor
    token_to_image_v: torch.Tensor
    image_to_token_q: torch.Tensor


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, token->image cross-attention, token MLP, image->token attention."""

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        attention_downsample_rate: int,
        skip_first_layer_pe: bool,
    ) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(
            embedding_dim, num_heads, attention_downsample_rate
        )
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLPBlock(embedding_dim, mlp_dim, nn.ReLU)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(
            embedding_dim, num_heads, attention_downsample_rate
        )
        self.skip_first_layer_pe = skip_first_layer_pe

    def image_side(self, keys: torch.Tensor, key_pe: torch.Tensor) -> ImageSide:
        """Precompute this block's projections of image tokens keys (1, Nk, C)."""
        k = keys + key_pe
        return ImageSide(
            keys=keys,
            key_pe=key_pe,
            token_to_image_k=self.cross_attn_token_to_image.k_proj(k),
            token_to_image_v=self.cross_attn_token_to_image.v_proj(keys),
            image_to_token_q=self.cross_attn_image_to_token.q_proj(k),
        )

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_pe: torch.Tensor,
        key_pe: torch.Tensor,
        image_side: ImageSide | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """queries (B, Nq, C) prompt tokens; keys (B, Nk, C) image tokens; *_pe the same.

        With `image_side` (from `image_side(keys, key_pe)`), keys and key_pe are taken from it
        and broadcast over the B prompts.
        """
        if self.skip_first_layer_pe:
            # The first layer's queries are the prompt embeddings themselves: no residual.
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        q = queries + query_pe
        if image_side is None:
            k = keys + key_pe
            attn_out = self.cross_attn_token_to_image(q, k, keys)
        else:
            keys = image_side.keys
            to_image = self.cross_attn_token_to_image
            attn_out = to_image.attend(
                to_image.q_proj(q), image_side.token_to_image_k, image_side.token_to_image_v
            )
        queries = self.norm2(queries + attn_out)
        queries = self.norm3(queries + self.mlp(queries))

        q = queries + query_pe
        to_token = self.cross_attn_image_to_token
        if image_side is None:
            attn_out = to_token(k, q, queries)
        else:
            attn_out = to_token.attend(
                image_side.image_to_token_q, to_token.k_proj(q), to_token.v_proj(queries)
            )
        # In place into the fresh attention output (no backward needs it): saves a copy of
        # the (B, h*w, C) image tokens.
        keys = self.norm4(attn_out.add_(keys))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """`depth` two-way blocks, then a final token->image attention and layer norm."""

    def __init__(
        self,
        depth: int,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        attention_downsample_rate: int = 2,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim,
                num_heads,
                mlp_dim,
                attention_downsample_rate,
                skip_first_layer_pe=(i == 0),
            )
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(
            embedding_dim, num_heads, attention_downsample_rate
        )
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def image_side(self, image_embedding: torch.Tensor, image_pe: torch.Tensor) -> ImageSide:
        """Prompt-independent work of the first block for one (1, C, h, w) embedding."""
        keys = image_embedding.flatten(2).transpose(1, 2)  # (1, h*w, C)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        return self.layers[0].image_side(keys, key_pe)

    def forward(
        self,
        image_embedding: torch.Tensor | None,
        image_pe: torch.Tensor | None,
        point_embedding: torch.Tensor,
        image_side: ImageSide | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """image_embedding, image_pe: (B, C, h, w); point_embedding: (B, N, C).

        With `image_side` (from `image_side()`), the first two arguments are not used.
        Returns the processed tokens (B, N, C) and image tokens (B, h*w, C).
        """
        if image_side is None:
            keys = image_embedding.flatten(2).transpose(1, 2)  # (B, h*w, C)
            key_pe = image_pe.flatten(2).transpose(1, 2)
        else:
            keys, key_pe = image_side.keys, image_side.key_pe
        queries = point_embedding
        for i, layer in enumerate(self.layers):
            side = image_side if i == 0 else None
            queries, keys = layer(queries, keys, point_embedding, key_pe, side)
        q = queries + point_embedding
        k = keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys
