"""Window partition / unpartition against the plain pad-then-reshape definition."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from segany.modeling.common import window_partition, window_unpartition


def _plain_partition(x, window, fill=None):
    b, h, w, c = x.shape
    pad_h, pad_w = (window - h % window) % window, (window - w % window) % window
    if fill is None:
        padded = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    else:
        padded = fill.expand(b, h + pad_h, w + pad_w, c).clone()
        padded[:, :h, :w] = x
    hp, wp = h + pad_h, w + pad_w
    grid = padded.view(b, hp // window, window, wp // window, window, c)
    return grid.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c), (hp, wp)


@pytest.mark.parametrize(
    "h, w, window", list(itertools.product([1, 5, 14, 15, 64], [1, 7, 14, 20, 64], [3, 7, 14]))
)
def test_partition_matches_definition_and_round_trips(h, w, window):
    x = torch.randn(2, h, w, 5)
    for fill in (None, torch.randn(5)):
        windows, padded = window_partition(x, window, fill)
        expected, expected_padded = _plain_partition(x, window, fill)
        assert padded == expected_padded
        assert torch.equal(windows, expected)
        assert torch.equal(window_unpartition(windows, window, padded, (h, w)), x)
