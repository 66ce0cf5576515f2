"""What synthetic scenes look like: `SceneConfig` (v1, and v2's `SceneConfig.v2`) and the v2
`Layout`, plain frozen dataclasses checked on creation. The generator is `segany.data.synthetic`."""

from __future__ import annotations

from dataclasses import dataclass

from segany.errors import ConfigError

TEXTURES = ("procedural", "photo")


@dataclass(frozen=True)
class Layout:
    """How the v2 generator places and sizes parts and draws thin and small objects. Sizes are
    fractions of the image's short side unless said otherwise; the defaults are the yardstick's.

    Args:
        part_size: (low, high) part radius as a fraction of its parent's radius, uniform.
        min_part_radius: no part is drawn with a smaller radius, and a shape too small to hold
            such a part (radius under min_part_radius / part_size[1]) gets none.
        min_part_area: a part covering fewer pixels (a fraction of the short side squared),
            clipped to its parent, is drawn again (three tries in all, then left out).
        centre_free: the chance that a part keeps clear of its parent's centre (the pixel
            deepest inside it, where a 1-click protocol clicks for the whole); otherwise it may
            cover it, as parts in photographs sometimes do.
        dot_size: (low, high) radius of the small dots.
        curve_width: (low, high) stroke width of thin curves.

    A part's centre is a uniformly random pixel of its parent at least 0.3 part radii
    inside the parent's rim (v1 took, of three random pixels, the one nearest the parent's
    centroid, so parts mostly covered the point a 1-click protocol clicks for the whole).
    """

    part_size: tuple[float, float] = (0.25, 0.55)
    min_part_radius: float = 0.03
    min_part_area: float = 0.0035
    centre_free: float = 0.7
    dot_size: tuple[float, float] = (0.035, 0.055)
    curve_width: tuple[float, float] = (0.008, 0.018)

    def __post_init__(self) -> None:
        for name in ("part_size", "dot_size", "curve_width"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
            low, high = getattr(self, name)
            if not 0 < low <= high <= 1:
                raise ConfigError(f"layout {name} {(low, high)} must satisfy 0 < low <= high <= 1")
        for name in ("min_part_radius", "min_part_area", "centre_free"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"layout {name} {getattr(self, name)} is not in [0, 1]")


@dataclass(frozen=True)
class SceneConfig:
    """What scenes look like. Sizes given as fractions scale with the image's short side.

    Args:
        height, width: image size in pixels.
        num_objects: (low, high) inclusive range of the number of top-level objects drawn
            (fewer masks may remain after occlusion).
        object_size: (low, high) object radius as a fraction of the short side, log-uniform.
        thin_prob: chance that an object is a thin curve or line (1-4 px wide).
        small_prob: chance that an object is a small dot (radius 0.6-2 % of the short side).
        part_prob: chance that a filled object gets 1..max_parts parts.
        max_parts: most parts per object.
        subpart_prob: chance that a part gets sub-parts of its own.
        min_area: masks with fewer visible pixels than this are dropped.
        noise_std: (low, high) range of the std of the Gaussian pixel noise added to the image.
        blur_prob: chance that the finished image is softened by a 3x3 binomial blur.
        layout: None for the v1 generator (its fixed part placement and sizes, and one random
            stream for everything); a `Layout` for v2 (see the module docstring).
        textures: "procedural" (gradients, noise, stripes, checkers) or "photo" (crops of real
            photographs of the seed's split, see `photos`; needs scikit-image).

    `SceneConfig.v2(size, textures)` gives the yardstick's scenes.
    """

    height: int = 256
    width: int = 256
    num_objects: tuple[int, int] = (6, 16)
    object_size: tuple[float, float] = (0.05, 0.3)
    thin_prob: float = 0.12
    small_prob: float = 0.12
    part_prob: float = 0.55
    max_parts: int = 3
    subpart_prob: float = 0.4
    min_area: int = 16
    noise_std: tuple[float, float] = (0.0, 6.0)
    blur_prob: float = 0.4
    layout: Layout | None = None
    textures: str = "procedural"

    @classmethod
    def v2(cls, size: int = 512, textures: str = "procedural") -> SceneConfig:
        """The yardstick's scenes (issue 13), size x size px. At 512 px about 92 % of the masks
        cover at least 24 x 24 px (sizes scale with `size`)."""
        return cls(
            height=size,
            width=size,
            num_objects=(4, 11),
            object_size=(0.07, 0.35),
            thin_prob=0.08,
            small_prob=0.08,
            part_prob=0.7,
            max_parts=3,
            subpart_prob=0.8,
            min_area=max(16, round(100 * (size / 512) ** 2)),  # occluded slivers under 10 x 10
            layout=Layout(),
            textures=textures,
        )

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists and the layout into a dict; keep the
        # dataclass hashable and comparable.
        for name in ("num_objects", "object_size", "noise_std"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.layout, dict):
            object.__setattr__(self, "layout", Layout(**self.layout))
        if self.textures not in TEXTURES:
            raise ConfigError(f"textures {self.textures!r} is not one of {', '.join(TEXTURES)}")
        if self.height < 16 or self.width < 16:
            raise ConfigError(f"scene size {self.height}x{self.width} is too small; use >= 16 px")
        low, high = self.num_objects
        if not 0 <= low <= high:
            raise ConfigError(f"num_objects {self.num_objects} needs 0 <= low <= high")
        low, high = self.object_size
        if not 0 < low <= high <= 1:
            raise ConfigError(f"object_size {self.object_size} must satisfy 0 < low <= high <= 1")
        for name in ("thin_prob", "small_prob", "part_prob", "subpart_prob", "blur_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} = {getattr(self, name)} is not a probability in [0, 1]")
        if self.thin_prob + self.small_prob > 1:
            raise ConfigError("thin_prob + small_prob must be at most 1")
        if self.max_parts < 1 or self.min_area < 1:
            raise ConfigError("max_parts and min_area must be at least 1")
        if not 0 <= self.noise_std[0] <= self.noise_std[1]:
            raise ConfigError(f"noise_std {self.noise_std} must be (low, high), 0 <= low <= high")
