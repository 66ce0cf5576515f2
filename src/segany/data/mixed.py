"""Several datasets read as one, their samples interleaved: what a spec "A + B" names.

Training on a mixture (e.g. procedural and photo-texture scenes) keeps each batch varied, so
the model learns the photo textures without forgetting the plain scenes, as two stages one
after the other would risk.
"""

from __future__ import annotations

from collections.abc import Sequence

from segany.data.sample import Sample
from segany.errors import DataError


class Interleaved:
    """`datasets` (k of them) read alternately: index i is sample i // k of dataset i % k.

    The length is k times the shortest dataset's, so each dataset gives the same number of
    samples and a random draw over the whole is a fair mixture.
    """

    def __init__(self, datasets: Sequence[Sequence[Sample]]) -> None:
        if len(datasets) < 2:
            raise DataError("a mixture needs at least two datasets")
        self.datasets = list(datasets)
        self.per_dataset = min(len(d) for d in self.datasets)
        if self.per_dataset == 0:
            raise DataError("a dataset of the mixture is empty")

    def __len__(self) -> int:
        return len(self.datasets) * self.per_dataset

    def __getitem__(self, index: int) -> Sample:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        which, position = index % len(self.datasets), index // len(self.datasets)
        return self.datasets[which][position]
