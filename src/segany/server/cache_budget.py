"""How `segany serve` shares its two cache bounds between its stores: `--cache-size` (memory,
per worker process) and `--disk-cache-size` (the data folder's cache folders, shared by the
workers). Every store is bounded in bytes, least recently used first out.

    budget = CacheBudget.split(memory_bytes=1536 * MiB, disk_bytes=10 * GiB)
    budget.embeddings_memory  # 1 GiB: 256 SAM ViT embeddings (4 MiB), 512 of segany-tiny-v2
"""

from __future__ import annotations

from dataclasses import dataclass

from segany.byte_sizes import format_bytes

MiB = 1 << 20
GiB = 1 << 30
DEFAULT_MEMORY_BYTES = 1536 * MiB
DEFAULT_DISK_BYTES = 10 * GiB

# Shares of each bound. Memory: embeddings save an encoder pass (seconds) per image, decoded
# pixels a file read and decode per click (edge refinement), previous answers only matter for a
# person's next click. Disk: embeddings again; previous answers are read back only when a
# person's next click reaches another worker; map tiles save a download.
_MEMORY_SHARES = {"embeddings": 4 / 6, "pixels": 1 / 6, "previous": 1 / 6}
_DISK_SHARES = {"embeddings": 0.8, "previous": 0.1, "tiles": 0.1}


@dataclass(frozen=True)
class CacheBudget:
    """Bytes for each store.

    embeddings_memory: `EmbeddingCache`'s memory LRU; pixels_memory: `PixelCache` (decoded
        images for edge refinement); previous_memory: `PreviousLogits` in memory.
    embeddings_disk: DATA/cache; previous_disk: DATA/previous; tiles_disk: DATA/tiles.
    """

    embeddings_memory: int
    pixels_memory: int
    previous_memory: int
    embeddings_disk: int
    previous_disk: int
    tiles_disk: int

    @classmethod
    def split(cls, memory_bytes: int, disk_bytes: int) -> CacheBudget:
        """The stores' shares of `memory_bytes` (embeddings 2/3, decoded images 1/6, previous
        answers 1/6) and `disk_bytes` (embeddings 80%, previous answers 10%, tiles 10%)."""
        memory = {name: int(memory_bytes * share) for name, share in _MEMORY_SHARES.items()}
        disk = {name: int(disk_bytes * share) for name, share in _DISK_SHARES.items()}
        return cls(
            embeddings_memory=memory["embeddings"],
            pixels_memory=memory["pixels"],
            previous_memory=memory["previous"],
            embeddings_disk=disk["embeddings"],
            previous_disk=disk["previous"],
            tiles_disk=disk["tiles"],
        )

    @property
    def memory_bytes(self) -> int:
        return self.embeddings_memory + self.pixels_memory + self.previous_memory

    @property
    def disk_bytes(self) -> int:
        return self.embeddings_disk + self.previous_disk + self.tiles_disk

    def describe(self) -> str:
        """One line for the start of `segany serve`: the bounds and what each covers."""
        size = format_bytes
        return (
            f"cache bounds: memory {size(self.memory_bytes)} per worker (embeddings "
            f"{size(self.embeddings_memory)}, decoded images {size(self.pixels_memory)}, "
            f"previous answers {size(self.previous_memory)}); disk {size(self.disk_bytes)} "
            f"(embeddings {size(self.embeddings_disk)}, previous answers "
            f"{size(self.previous_disk)}, map tiles {size(self.tiles_disk)})"
        )
