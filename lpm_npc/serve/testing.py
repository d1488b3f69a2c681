"""Small real parts for exercising the daemon fast: a tiny random-weight generator and sheets.

Tests, `lpm-npc bench serve --preset test` and smoke checks use these; they are real
(a StreamingGenerator over a real LPM, PNG images through the real sheet loader), only small.
"""

from __future__ import annotations

import io

import numpy as np

# The "test" preset shrunk further: ~0.2M parameters, 32 px frames, a few ms per chunk.
TINY_OVERRIDES: dict[str, object] = dict(
    image_size=32,
    latent_channels=4,
    vae_channels=(8, 8, 8, 8),
    dim=32,
    n_layers=2,
    n_heads=2,
    ffn_dim=64,
    refiner_layers=1,
)


def tiny_generator(seed: int = 0, preset: str = "test", shrink: bool = True):  # noqa: ANN201
    """A StreamingGenerator with random weights (deterministic for `seed`)."""
    import torch

    from lpm_npc.config import ModelConfig
    from lpm_npc.engine.generator import StreamingGenerator
    from lpm_npc.model.lpm import LPM

    cfg = ModelConfig.from_name(preset)
    if shrink:
        cfg = cfg.with_overrides(**TINY_OVERRIDES)
    torch.manual_seed(seed)
    return StreamingGenerator(cfg, LPM(cfg))


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
