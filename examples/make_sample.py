"""Draw `examples/sample.png`: a synthetic 640x480 scene for trying `segany predict` (the
drawing itself is `segany.data.sample_scene`, which the demo of `segany serve` uses too)."""

from __future__ import annotations

from pathlib import Path

from segany.data.sample_scene import make_sample

if __name__ == "__main__":
    out = Path(__file__).with_name("sample.png")
    make_sample().save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")
