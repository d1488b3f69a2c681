"""Small real reference sheets for exercising the daemon fast: random PNG images with roles.

`lpm-npc bench serve` and the tests register these; they go through the real sheet loader, only
small. (A small real generator is `StreamingGenerator.from_checkpoint(random_weights=True,
preset="test-tiny")`.)
"""

from __future__ import annotations

import io

import numpy as np


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def sheet_images(seed: int = 0, size: int = 64) -> list[tuple[str, str, str, bytes]]:
    """(role, label, filename, PNG bytes) of a small random three-image sheet."""
    rng = np.random.default_rng(seed)
    roles = [
        ("global", "", "scene.png"),
        ("view", "front", "front.png"),
        ("expression", "smile", "smile.png"),
    ]
    return [
        (role, label, name, png_bytes(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)))
        for role, label, name in roles
    ]
