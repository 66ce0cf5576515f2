"""Joining the polygons that overlapping windows found of the same object into one.

Windows overlap by a strip, and both windows of a strip see what lies in it. An object that
crosses a seam is seen cut in each window; an object inside the strip is seen whole twice. In
both cases the two windows' polygons agree *inside the strip* (their shared rectangle), and
there they are compared: a piece of one window and a piece of the other are the same object
when their IoU in the strip is at least `min_iou` and one is the other's best match there.
Matched pieces are joined (union-find, so an object spanning many windows becomes one group)
and each group is written as the union of its pieces. The idea is that of overlapping-tile
inference in remote sensing (e.g. samgeo's tiled segmentation, SAHI's slice merging), with
matching restricted to the region both tiles saw.

Memory stays bounded by a few rows of windows: windows are read in row-major order, a window's
pieces are dropped once every window overlapping it was seen, and a group is emitted as soon as
no window still to come overlaps any of its pieces.

Geometries here are in the raster's pixel frame ((col, row), pixel corners at integers), where
pieces of neighbouring windows share exact coordinates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import box as rectangle
from shapely.geometry.base import BaseGeometry


@dataclass(frozen=True)
class Tile:
    """One window of the raster: its place in row-major order, its grid row and column, and
    its pixel rectangle (col_off, row_off, width, height)."""

    index: int
    row: int
    col: int
    col_off: int
    row_off: int
    width: int
    height: int

    def overlaps(self, other: Tile) -> bool:
        return (
            self.col_off < other.col_off + other.width
            and other.col_off < self.col_off + self.width
            and self.row_off < other.row_off + other.height
            and other.row_off < self.row_off + self.height
        )

    def shared(self, other: Tile) -> BaseGeometry:
        """The rectangle both windows cover (pixel frame)."""
        return rectangle(
            max(self.col_off, other.col_off),
            max(self.row_off, other.row_off),
            min(self.col_off + self.width, other.col_off + other.width),
            min(self.row_off + self.height, other.row_off + other.height),
        )


@dataclass(frozen=True)
class Piece:
    """A polygon one window found: pixel-frame geometry, predicted IoU, stability score."""

    geometry: BaseGeometry
    score: float
    stability: float


@dataclass
class Merged:
    """One object: the union of its pieces, their best scores, and how many windows saw it."""

    geometry: BaseGeometry
    score: float
    stability: float
    tiles: int


@dataclass
class _Group:
    keys: list[tuple[int, int]] = field(default_factory=list)
    close_after: int = -1  # the last tile (index) that overlaps any of the group's pieces


def tile_grid(width: int, height: int, tile_size: int, overlap: int) -> list[Tile]:
    """Windows of `tile_size` pixels a side, `overlap` pixels in common with the next, covering
    a `width` x `height` raster, in row-major order. The last window of a row or column is moved
    back to end at the raster's edge, so every window is whole when the raster is at least
    `tile_size` a side (it then overlaps its neighbour by more than `overlap`)."""
    cols = _offsets(width, tile_size, overlap)
    rows = _offsets(height, tile_size, overlap)
    return [
        Tile(i * len(cols) + j, i, j, x, y, min(tile_size, width), min(tile_size, height))
        for i, y in enumerate(rows)
        for j, x in enumerate(cols)
    ]


def _offsets(size: int, tile_size: int, overlap: int) -> list[int]:
    if size <= tile_size:
        return [0]
    stride = tile_size - overlap
    offsets = list(range(0, size - tile_size, stride))
    return offsets + [size - tile_size]


def neighbours(tiles: Sequence[Tile]) -> dict[int, list[Tile]]:
    """Tile index -> the tiles that overlap it (in any order). Overlapping windows are at most
    two grid rows or columns apart (the moved-back last window), so only those are tested."""
    by_cell = {(t.row, t.col): t for t in tiles}
    found: dict[int, list[Tile]] = {}
    for t in tiles:
        found[t.index] = [
            other
            for dr in range(-2, 3)
            for dc in range(-2, 3)
            if (dr or dc)
            and (other := by_cell.get((t.row + dr, t.col + dc))) is not None
            and t.overlaps(other)
        ]
    return found


def merge_pieces(
    tiles: Sequence[Tile],
    load: Callable[[Tile], list[Piece]],
    min_iou: float = 0.5,
) -> Iterator[Merged]:
    """The objects the tiles' pieces make up, each emitted once as soon as it is complete.

    tiles: every window in row-major order (`tile_grid`); load(tile) -> its pieces ([] for a
    window skipped as nodata), called once per tile; min_iou: the IoU in the shared rectangle
    from which two pieces of overlapping windows count as one object.
    """
    around = neighbours(tiles)
    last_needed = {t.index: max([t.index] + [o.index for o in around[t.index]]) for t in tiles}
    pieces: dict[tuple[int, int], Piece] = {}
    loaded: dict[int, list[tuple[int, int]]] = {}  # tile index -> its piece keys, while needed
    parent: dict[tuple[int, int], tuple[int, int]] = {}
    groups: dict[tuple[int, int], _Group] = {}  # root key -> group

    def find(key: tuple[int, int]) -> tuple[int, int]:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def join(a: tuple[int, int], b: tuple[int, int]) -> None:
        ra, rb = find(a), find(b)
        if ra == rb:
            return
        if ra > rb:
            ra, rb = rb, ra
        parent[rb] = ra
        kept, gone = groups[ra], groups.pop(rb)
        kept.keys += gone.keys
        kept.close_after = max(kept.close_after, gone.close_after)

    for tile in tiles:
        keys = []
        for k, piece in enumerate(load(tile)):
            key = (tile.index, k)
            pieces[key] = piece
            parent[key] = key
            groups[key] = _Group([key], last_needed[tile.index])
            keys.append(key)
        loaded[tile.index] = keys
        for other in around[tile.index]:
            if other.index in loaded and keys and loaded[other.index]:
                shared = tile.shared(other)
                for a, b in _matches(keys, loaded[other.index], pieces, shared, min_iou):
                    join(a, b)
        for index in [i for i in loaded if last_needed[i] <= tile.index]:
            del loaded[index]
        done = sorted(root for root, g in groups.items() if g.close_after <= tile.index)
        for root in done:
            yield _emit(groups.pop(root), pieces, parent)


def _matches(
    keys_a: list[tuple[int, int]],
    keys_b: list[tuple[int, int]],
    pieces: dict[tuple[int, int], Piece],
    shared: BaseGeometry,
    min_iou: float,
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Pairs (a, b) with IoU inside `shared` at least min_iou, b being a's best match there or
    a being b's."""
    a_keys, a_parts = _inside(keys_a, pieces, shared)
    b_keys, b_parts = _inside(keys_b, pieces, shared)
    if not a_keys or not b_keys:
        return []
    tree = shapely.STRtree(b_parts)
    ia, ib = tree.query(a_parts, predicate="intersects")  # candidate pairs, (P,) each
    if len(ia) == 0:
        return []
    common = shapely.area(shapely.intersection(a_parts[ia], b_parts[ib]))
    union = shapely.area(a_parts[ia]) + shapely.area(b_parts[ib]) - common
    iou = np.where(union > 0, common / np.maximum(union, 1e-12), 0.0)
    best_a = np.full(len(a_parts), -1.0)
    best_b = np.full(len(b_parts), -1.0)
    np.maximum.at(best_a, ia, iou)
    np.maximum.at(best_b, ib, iou)
    # Either's best, not both's: near-duplicate pieces (SAM often outlines an object twice)
    # all join, while an object and a larger mask around it, each the best match of its own
    # counterpart, stay apart.
    best = (iou >= min_iou) & ((iou == best_a[ia]) | (iou == best_b[ib]))
    return [(a_keys[i], b_keys[j]) for i, j in zip(ia[best], ib[best], strict=True)]


def _inside(
    keys: list[tuple[int, int]], pieces: dict[tuple[int, int], Piece], shared: BaseGeometry
) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The keys whose piece has area inside `shared`, and those parts (an array of geometries)."""
    geometries = np.array([pieces[k].geometry for k in keys], dtype=object)
    near = shapely.intersects(geometries, shared)
    parts = shapely.intersection(geometries[near], shared)
    has_area = shapely.area(parts) > 0
    chosen = [k for k, n in zip(keys, near, strict=True) if n]
    return [k for k, a in zip(chosen, has_area, strict=True) if a], parts[has_area]


def _emit(
    group: _Group,
    pieces: dict[tuple[int, int], Piece],
    parent: dict[tuple[int, int], tuple[int, int]],
) -> Merged:
    members = [pieces.pop(key) for key in sorted(group.keys)]
    for key in group.keys:
        del parent[key]
    geometry = (
        members[0].geometry
        if len(members) == 1
        else shapely.union_all([m.geometry for m in members])
    )
    return Merged(
        geometry,
        max(m.score for m in members),
        max(m.stability for m in members),
        len({key[0] for key in group.keys}),
    )
