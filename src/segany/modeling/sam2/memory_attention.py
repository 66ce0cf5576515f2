"""SAM 2's memory attention: the current frame's image tokens attend to themselves and then to
the memory bank (spatial memories of earlier frames and object pointers), with 2-D rotary
position encodings on the image and memory tokens.

Rotary encoding (RoPE, Su et al. 2021) in its axial 2-D form (Heo et al. 2024, "Rotary position
embedding for vision transformer"): a head's channels are taken as complex pairs; the first
half of the pairs turns with the token's column, the second half with its row. Memory keys
come from frames of the same grid size, so a memory of F frames is rotated with the query
grid's angles repeated F times; the object-pointer tokens at the end of the memory have no
grid position and are not rotated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def axial_rope_angles(
    head_dim: int, grid_size: tuple[int, int], theta: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) of the rotation angles of a row-major (H, W) token grid, each
    (H * W, head_dim / 2): per token, head_dim / 4 column frequencies then head_dim / 4 row
    frequencies."""
    if head_dim % 4:
        raise ValueError(f"axial rotary encoding needs head_dim divisible by 4, got {head_dim}")
    h, w = grid_size
    exponents = torch.arange(0, head_dim, 4, device=device)[: head_dim // 4].float() / head_dim
    freqs = 1.0 / theta**exponents
    index = torch.arange(h * w, device=device)
    cols = (index % w).float()
    rows = torch.div(index, w, rounding_mode="floor").float()
    angles = torch.cat((torch.outer(cols, freqs), torch.outer(rows, freqs)), dim=1)
    return angles.cos(), angles.sin()


def rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive channel pairs (x[2i], x[2i+1]) of x (..., N, D) by the angles whose
    cos/sin are (N, D / 2). Computed in float32, returned in x's dtype."""
    pairs = x.float().unflatten(-1, (-1, 2))  # (..., N, D/2, 2)
    real, imag = pairs.unbind(-1)
    out = torch.stack((real * cos - imag * sin, real * sin + imag * cos), dim=-1)
    return out.flatten(-2).to(x.dtype)


class RoPEAttention(nn.Module):
    """Multi-head attention with axial rotary position encoding of queries and keys.

    Queries (B, Nq, C) are the tokens of an (H, W) grid (Nq = H * W). Keys and values
    (B, Nk, kv_in_dim) hold whole copies of such a grid (one per memory frame, or the queries
    themselves in self-attention) followed by `num_k_exclude_rope` unrotated tokens.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int = 1,
        kv_in_dim: int | None = None,
        rope_theta: float = 10000.0,
    ) -> None:
        super().__init__()
        kv_in_dim = embedding_dim if kv_in_dim is None else kv_in_dim
        if embedding_dim % num_heads:
            raise ValueError(f"num_heads {num_heads} does not divide width {embedding_dim}")
        self.num_heads = num_heads
        self.head_dim = embedding_dim // num_heads
        self.rope_theta = rope_theta
        self.q_proj = nn.Linear(embedding_dim, embedding_dim)
        self.k_proj = nn.Linear(kv_in_dim, embedding_dim)
        self.v_proj = nn.Linear(kv_in_dim, embedding_dim)
        self.out_proj = nn.Linear(embedding_dim, embedding_dim)
        # not a buffer: derived from the grid size, and absent from the official checkpoints
        self._angles: dict[tuple[int, int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    def angles(self, grid_size: tuple[int, int], device: torch.device):
        key = (grid_size[0], grid_size[1], device)
        if key not in self._angles:
            self._angles[key] = axial_rope_angles(self.head_dim, grid_size, self.rope_theta, device)
        return self._angles[key]

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # (B, heads, N, d)

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        grid_size: tuple[int, int],
        num_k_exclude_rope: int = 0,
    ) -> torch.Tensor:
        """q (B, Nq, C), k and v (B, Nk, kv_in_dim) -> (B, Nq, C); grid_size (H, W) of the
        queries; the last `num_k_exclude_rope` keys are not rotated."""
        q = self._heads(self.q_proj(q))
        k = self._heads(self.k_proj(k))
        v = self._heads(self.v_proj(v))
        nq = q.shape[2]
        if grid_size[0] * grid_size[1] != nq:
            raise ValueError(f"{nq} query tokens do not form a {grid_size} grid")
        n_rotated = k.shape[2] - num_k_exclude_rope
        if n_rotated % nq:
            raise ValueError(
                f"{n_rotated} rotated keys are not whole copies of the {nq}-token query grid"
            )
        cos, sin = self.angles(grid_size, q.device)
        q = rotate_pairs(q, cos, sin)
        if n_rotated:
            # whole copies of the grid: rotate them as (B, heads, copies, Nq, d), angles broadcast
            copies = k[:, :, :n_rotated].unflatten(2, (n_rotated // nq, nq))
            k_grid = rotate_pairs(copies, cos, sin).flatten(2, 3)
            k = torch.cat((k_grid, k[:, :, n_rotated:]), dim=2) if num_k_exclude_rope else k_grid
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, Nq, d)
        out = out.transpose(1, 2).flatten(2)  # (B, Nq, C)
        return self.out_proj(out)


class MemoryAttentionLayer(nn.Module):
    """Pre-norm transformer layer: self-attention of the frame's tokens (no position added,
    rotary only), cross-attention to the memory (memory positions added to the keys only),
    then a ReLU feed-forward. Every sub-block is residual."""

    def __init__(
        self,
        d_model: int = 256,
        mem_dim: int = 64,
        dim_feedforward: int = 2048,
        num_heads: int = 1,
        rope_theta: float = 10000.0,
    ) -> None:
        super().__init__()
        self.self_attn = RoPEAttention(d_model, num_heads, rope_theta=rope_theta)
        self.cross_attn_image = RoPEAttention(
            d_model, num_heads, kv_in_dim=mem_dim, rope_theta=rope_theta
        )
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        grid_size: tuple[int, int],
        num_obj_ptr_tokens: int = 0,
    ) -> torch.Tensor:
        """x (B, N, d_model); memory and memory_pos (B, M, mem_dim) -> (B, N, d_model)."""
        normed = self.norm1(x)
        x = x + self.self_attn(normed, normed, normed, grid_size)
        normed = self.norm2(x)
        x = x + self.cross_attn_image(
            normed, memory + memory_pos, memory, grid_size, num_k_exclude_rope=num_obj_ptr_tokens
        )
        return x + self.linear2(torch.relu(self.linear1(self.norm3(x))))


class MemoryAttention(nn.Module):
    """Conditions a frame's image embedding on the memory bank.

    State-dict keys are those of the official `memory_attention.*` (layers.{i}.self_attn,
    layers.{i}.cross_attn_image, linear1/2, norm1/2/3, and the final `norm`). Dropout (0.1 in
    training) is left out: this is the inference network.
    """

    def __init__(
        self,
        d_model: int = 256,
        mem_dim: int = 64,
        num_layers: int = 4,
        dim_feedforward: int = 2048,
        num_heads: int = 1,
        rope_theta: float = 10000.0,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.layers = nn.ModuleList(
            MemoryAttentionLayer(d_model, mem_dim, dim_feedforward, num_heads, rope_theta)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self,
        curr: torch.Tensor,
        curr_pos: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        grid_size: tuple[int, int],
        num_obj_ptr_tokens: int = 0,
    ) -> torch.Tensor:
        """Batch-first throughout.

        curr, curr_pos: (B, H*W, d_model) the frame's image tokens (row-major over the
        (H, W) = grid_size grid) and their sine position encoding.
        memory, memory_pos: (B, M, mem_dim) memory tokens and their encodings: whole (H, W)
        grids of spatial memory, then `num_obj_ptr_tokens` object-pointer tokens at the end.
        Returns the conditioned tokens (B, H*W, d_model).
        """
        if curr.shape[0] != memory.shape[0]:
            raise ValueError(
                f"batch sizes differ: {curr.shape[0]} frames, {memory.shape[0]} memories"
            )
        x = curr + 0.1 * curr_pos
        for layer in self.layers:
            x = layer(x, memory, memory_pos, grid_size, num_obj_ptr_tokens)
        return self.norm(x)
