"""`segany serve --demo`: a project that is ready to click on — the README's sample image and a
few generated scenes, and a few categories — so the first minute needs no data of one's own."""

from __future__ import annotations

import io

from PIL import Image

from segany.data.sample_scene import make_sample
from segany.data.synthetic import SceneConfig, make_scene, split_seeds
from segany.project.storage import repository
from segany.project.workspace import Project

DEMO_SCENES = 3
DEMO_CATEGORIES = (("object", "#f5be28"), ("part", "#28a0b4"), ("background", "#78c850"))


def load_demo(project: Project) -> int:
    """Add the demo images and categories to `project` unless they are there (the same bytes
    are stored once); returns the number of images added."""
    pictures = [("sample.png", make_sample())]
    config = SceneConfig(height=480, width=640)
    for seed in split_seeds("val", DEMO_SCENES):
        pictures.append((f"scene-{seed}.png", Image.fromarray(make_scene(seed, config).image)))
    added = 0
    for name, picture in pictures:
        encoded = io.BytesIO()
        picture.save(encoded, format="PNG")
        _, created = project.add_upload(encoded.getvalue(), name)
        added += created
    with project.db.session() as session:
        known = {c.name for c in repository.list_categories(session)}
        for name, color in DEMO_CATEGORIES:
            if name not in known:
                repository.add_category(session, name, color)
    return added
