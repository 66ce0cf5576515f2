"""SAM's two-way transformer: prompt tokens and image tokens attend to each other.

Both cross-attentions have a few prompt tokens on one side and every image token (4096 for
SAM) on the other. They are computed with the projections reassociated onto the small side
(the same mathematics, far fewer operations):

- token -> image: the image-side keys and values are never projected. Each head's query is
  mapped back through W_k (q_h W_k,h) and scored against the raw image tokens; the key bias
  adds the same constant to every score of a query and cancels in the softmax; values are
  projected after the weighted sum (W_v,h (sum_n a_n x_n) + b_v, since the weights sum to 1).
- image -> token: W_q is folded into the few token keys (W_q,h^T k_h) and W_o into the few
  token values (v_h W_o,h^T), so the image tokens meet only (C x few) matrices.
"""

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

    @property
    def head_dim(self) -> int:
        return self.internal_dim // self.num_heads

    def _per_head(self, weight: torch.Tensor) -> torch.Tensor:
        """A (C', C) projection weight as (heads, head_dim, C)."""
        return weight.view(self.num_heads, self.head_dim, -1)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Plain attention, used among the few prompt tokens: q (B, Nq, C), k and v
        (B, Nk, C) -> (B, Nq, C)."""
        b, nq, _ = q.shape
        heads, dim = self.num_heads, self.head_dim
        q = self.q_proj(q).view(b, nq, heads, dim).transpose(1, 2)  # (B, heads, Nq, d)
        k = self.k_proj(k).view(b, -1, heads, dim).transpose(1, 2)
        v = self.v_proj(v).view(b, -1, heads, dim).transpose(1, 2)
        attn = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(dim), dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, nq, self.internal_dim)
        return self.out_proj(out)

    def tokens_to_image(
        self,
        tokens: torch.Tensor,
        image_keys: torch.Tensor,
        image_values: torch.Tensor,
        key_pe: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Few token queries attend to many image tokens.

        tokens: (B, Nt, C); image_keys, image_values: (B or 1, N, C), raw (unprojected).
        key_pe: optional (1 or B, N, C) added to the keys; a shared (1, N, C) one is scored
        in one GEMM for all prompts instead of being added to every prompt's keys.
        Returns (B, Nt, C).
        """
        b, nt, _ = tokens.shape
        heads, dim = self.num_heads, self.head_dim
        q = self.q_proj(tokens).view(b, nt, heads, dim)
        # Query of head h mapped into the input space: (B, heads, Nt, C).
        q_in = torch.einsum("bthd,hdc->bhtc", q, self._per_head(self.k_proj.weight))
        q_in = q_in.reshape(b, heads * nt, -1) / math.sqrt(dim)
        if key_pe is not None and key_pe.shape[0] > 1:
            image_keys, key_pe = image_keys + key_pe, None
        shared = image_keys.shape[0] == 1 and b > 1
        if shared:  # one image side for every prompt: one GEMM over all their queries
            keys = image_keys[0] if key_pe is None else image_keys[0] + key_pe[0]
            scores = q_in.reshape(b * heads * nt, -1) @ keys.T
            mixed = torch.softmax(scores, dim=-1) @ image_values[0]  # (B*heads*Nt, C)
        else:
            keys_t = image_keys.transpose(1, 2)  # (B, C, N)
            if key_pe is None:
                scores = q_in @ keys_t  # (B, heads*Nt, N)
            else:  # q.(x + pe) = q.x + q.pe, the second for all prompts at once
                pe_scores = (q_in.reshape(b * heads * nt, -1) @ key_pe[0].T).view(b, heads * nt, -1)
                scores = torch.baddbmm(pe_scores, q_in, keys_t)
            mixed = torch.softmax(scores, dim=-1) @ image_values
        mixed = mixed.view(b, heads, nt, -1)
        out = torch.einsum("bhtc,hdc->bthd", mixed, self._per_head(self.v_proj.weight))
        out = out.reshape(b, nt, self.internal_dim) + self.v_proj.bias
        return self.out_proj(out)

    def image_to_tokens(
        self,
        image_queries: torch.Tensor,
        token_keys: torch.Tensor,
        token_values: torch.Tensor,
        query_pe: torch.Tensor | None = None,
        residual: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Many image tokens attend to few tokens.

        image_queries: (B or 1, N, C) raw; token_keys, token_values: (B, Nt, C).
        query_pe: optional (1 or B, N, C) added to the queries (a shared one is scored once
        for all prompts). residual: optional (B or 1, N, C) added to the output in the same
        pass (the block's skip connection).
        Returns (B, N, C).
        """
        b, nt, _ = token_keys.shape
        heads, dim = self.num_heads, self.head_dim
        k = self.k_proj(token_keys).view(b, nt, heads, dim)
        v = self.v_proj(token_values).view(b, nt, heads, dim)
        # score[n, h, j] = (x_n W_q,h^T + b_q,h) . k_hj = x_n . (W_q,h^T k_hj) + b_q,h . k_hj
        folded_k = torch.einsum("bjhd,hdc->bchj", k, self._per_head(self.q_proj.weight))
        folded_k = folded_k.reshape(b, -1, heads * nt) / math.sqrt(dim)  # (B, C, heads*Nt)
        offset = torch.einsum("bjhd,hd->bhj", k, self.q_proj.bias.view(heads, dim))
        offset = offset.reshape(b, 1, heads * nt) / math.sqrt(dim)
        # out_n = sum_h,j a_nhj (v_hj W_o,h^T) + b_o. Each head's weights sum to 1, so adding
        # b_o / heads to every folded value adds exactly b_o: the bias costs no extra pass.
        out_weight = self.out_proj.weight.view(-1, heads, dim)  # (C, heads, d)
        folded_v = torch.einsum("bjhd,chd->bhjc", v, out_weight).reshape(b, heads * nt, -1)
        folded_v = folded_v + self.out_proj.bias / heads
        if query_pe is not None and query_pe.shape[0] > 1:
            image_queries, query_pe = image_queries + query_pe, None
        n = image_queries.shape[1]
        # Scores are laid out (B, heads*Nt, N): the softmax then runs over the Nt tokens of a
        # head along a non-last axis, vectorised over the N image tokens; over a last axis of
        # a few elements it was a third of the decoder's time.
        keys_t = folded_k.transpose(1, 2)  # (B, heads*Nt, C)
        offset = offset.transpose(1, 2)  # (B, heads*Nt, 1)
        if image_queries.shape[0] == 1 and b > 1:  # one GEMM for every prompt
            queries = image_queries[0] if query_pe is None else image_queries[0] + query_pe[0]
            scores = (keys_t.reshape(b * heads * nt, -1) @ queries.T).view(b, heads * nt, n)
            scores = scores + offset
        elif query_pe is None:
            scores = torch.baddbmm(offset, keys_t, image_queries.transpose(1, 2))
        else:  # (x + pe).k = x.k + pe.k, the second for all prompts at once
            pe_scores = keys_t.reshape(b * heads * nt, -1) @ query_pe[0].T
            pe_scores = pe_scores.view(b, heads * nt, n) + offset
            scores = torch.baddbmm(pe_scores, keys_t, image_queries.transpose(1, 2))
        attn = torch.softmax(scores.view(b, heads, nt, n), dim=2).view(b, heads * nt, n)
        if residual is None:
            return attn.transpose(1, 2) @ folded_v
        return torch.baddbmm(residual.expand(b, n, -1), attn.transpose(1, 2), folded_v)


@dataclass
class ImageSide:
    """The prompt-independent part of the first two-way block for one image: its image
    tokens (the image + dense prompt embedding), their positional encoding and their sum,
    each (1, h*w, C). Computed once per image and shared by every prompt."""

    keys: torch.Tensor
    key_pe: torch.Tensor
    keys_with_pe: torch.Tensor


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

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_pe: torch.Tensor,
        key_pe: torch.Tensor,
        keys_with_pe: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """queries (B, Nq, C) prompt tokens; keys (B or 1, Nk, C) image tokens; *_pe the same.

        `keys_with_pe` (keys + key_pe) may be passed in when already computed.
        Returns queries (B, Nq, C) and keys (B, Nk, C).
        """
        if self.skip_first_layer_pe:
            # The first layer's queries are the prompt embeddings themselves: no residual.
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        # The image side's keys + key_pe are never formed per prompt: both attentions score
        # the positional part once for all prompts (keys_with_pe: already summed, shared).
        q = queries + query_pe
        if keys_with_pe is not None:
            k, pe = keys_with_pe, None
        else:
            k, pe = keys, key_pe
        attn_out = self.cross_attn_token_to_image.tokens_to_image(q, k, keys, pe)
        queries = self.norm2(queries + attn_out)
        queries = self.norm3(queries + self.mlp(queries))

        q = queries + query_pe
        keys = self.cross_attn_image_to_token.image_to_tokens(k, q, queries, pe, residual=keys)
        return queries, self.norm4(keys)


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
        return ImageSide(keys=keys, key_pe=key_pe, keys_with_pe=keys + key_pe)

    def forward(
        self,
        image_embedding: torch.Tensor | None,
        image_pe: torch.Tensor | None,
        point_embedding: torch.Tensor,
        image_side: ImageSide | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """image_embedding, image_pe: (B, C, h, w); point_embedding: (B, N, C).

        With `image_side` (from `image_side()`), the first two arguments are not used and the
        image side is shared by the B prompts.
        Returns the processed tokens (B, N, C) and image tokens (B, h*w, C).
        """
        if image_side is None:
            keys = image_embedding.flatten(2).transpose(1, 2)  # (B, h*w, C)
            key_pe = image_pe.flatten(2).transpose(1, 2)
            if key_pe.shape[0] > 1 and key_pe.stride(0) == 0:  # one pe broadcast to B
                key_pe = key_pe[:1]
            keys_with_pe = None
        else:
            keys, key_pe = image_side.keys, image_side.key_pe
            keys_with_pe = image_side.keys_with_pe
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe, keys_with_pe)
            keys_with_pe = None
        q = queries + point_embedding
        final = self.final_attn_token_to_image.tokens_to_image(q, keys, keys, key_pe)
        queries = self.norm_final_attn(queries + final)
        return queries, keys
