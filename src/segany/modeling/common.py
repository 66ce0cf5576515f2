"""Small building blocks shared by the encoders and the decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """Layer norm over the channel axis of a (B, C, H, W) tensor (eps 1e-6, as SAM)."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        centred = x - mean
        var = centred.pow(2).mean(1, keepdim=True)
        x = centred * torch.rsqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class MLPBlock(nn.Module):
    """Transformer feed-forward: lin1 -> activation -> lin2."""

    def __init__(self, embedding_dim: int, mlp_dim: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.lin1 = nn.Linear(embedding_dim, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, embedding_dim)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


class MLP(nn.Module):
    """`num_layers` linear layers with ReLU between them (none after the last)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims_in, dims_out, strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = torch.relu(x)
        return x


def gelu_fresh(x: torch.Tensor) -> torch.Tensor:
    """Exact GELU of a freshly computed activation, overwriting it when autograd allows.

    On CPU, allocating a new multi-megabyte output costs several times more than the erf
    itself (fresh pages from the allocator).
    """
    if x.requires_grad:
        return F.gelu(x)
    return torch.ops.aten.gelu_(x)


class FreshGELU(nn.GELU):
    """`nn.GELU` for inputs that are fresh layer outputs nobody else reads (see gelu_fresh)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gelu_fresh(x)


def _window_blocks(h: int, w: int, window: int):
    """The four rectangles of an (h, w) grid cut into windows: full windows, the partial
    column on the right, the partial row at the bottom, the corner. Yields
    (rows, cols, window_rows, window_cols): grid slices and the matching window-index slices.
    """
    full_h, full_w = h // window * window, w // window * window
    for rows, win_rows in ((slice(0, full_h), slice(0, h // window)), (slice(full_h, h), None)):
        for cols, win_cols in (
            (slice(0, full_w), slice(0, w // window)),
            (slice(full_w, w), None),
        ):
            if rows.stop > rows.start and cols.stop > cols.start:
                yield rows, cols, win_rows, win_cols


def window_partition(
    x: torch.Tensor, window: int, fill: torch.Tensor | None = None
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Split a (B, H, W, C) grid into (B * nW, window, window, C) windows.

    The grid is padded at the bottom and right to a multiple of `window` with zeros, or with
    the (C,) vector `fill`. Returns the windows and the padded size (Hp, Wp). Each element is
    copied once, straight into its window (no padded intermediate grid).
    """
    b, h, w, c = x.shape
    nh, nw = -(-h // window), -(-w // window)
    windows = x.new_empty((b, nh, nw, window, window, c))
    if h % window or w % window:
        pad = torch.zeros((), dtype=x.dtype, device=x.device) if fill is None else fill
        windows[:, -1, :, h % window or window :] = pad  # rows below the grid
        windows[:, :, -1, :, w % window or window :] = pad  # columns right of the grid
    for rows, cols, win_rows, win_cols in _window_blocks(h, w, window):
        block = x[:, rows, cols]
        height, width = block.shape[1], block.shape[2]
        grid_h = -(-height // window)  # windows this block spans
        grid_w = -(-width // window)
        source = block.unflatten(1, (grid_h, min(height, window))).unflatten(
            3, (grid_w, min(width, window))
        )  # (B, grid_h, rows per window, grid_w, cols per window, C)
        target = windows[
            :,
            win_rows if win_rows is not None else slice(nh - 1, nh),
            win_cols if win_cols is not None else slice(nw - 1, nw),
            slice(0, height) if win_rows is None else slice(None),
            slice(0, width) if win_cols is None else slice(None),
        ]
        target.copy_(source.transpose(2, 3))
    return windows.view(-1, window, window, c), (nh * window, nw * window)


def window_unpartition(
    windows: torch.Tensor, window: int, padded: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Inverse of `window_partition`: (B * nW, window, window, C) -> (B, H, W, C), copying
    each kept element once and dropping the padding."""
    hp, wp = padded
    h, w = size
    nh, nw = hp // window, wp // window
    b = windows.shape[0] // (nh * nw)
    grid = windows.view(b, nh, nw, window, window, -1)
    out = windows.new_empty((b, h, w, grid.shape[-1]))
    for rows, cols, win_rows, win_cols in _window_blocks(h, w, window):
        height, width = rows.stop - rows.start, cols.stop - cols.start
        source = grid[
            :,
            win_rows if win_rows is not None else slice(nh - 1, nh),
            win_cols if win_cols is not None else slice(nw - 1, nw),
            slice(0, height) if win_rows is None else slice(None),
            slice(0, width) if win_cols is None else slice(None),
        ]  # (B, grid_h, grid_w, rows per window, cols per window, C)
        target = out[:, rows, cols].unflatten(1, (source.shape[1], source.shape[3]))
        target = target.unflatten(3, (source.shape[2], source.shape[4]))
        target.copy_(source.transpose(2, 3))
    return out
