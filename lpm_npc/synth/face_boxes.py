"""Where the face, the mouth and the eyes are in every rendered frame, from the renderer's geometry.

`face_boxes(spec, motion, size)` projects the corners of each region, given in the skull's local
frame (the coordinates `render_face.py` paints in), through the same yaw / pitch / roll, jaw stretch
and width warp that `render_head.HeadFrame.project` applies, and returns pixel boxes per frame. The
boxes are what the training losses weight (the mouth is ~1% of a 128 px bust) and what the quality
bench crops for `mouth_psnr_db`; they are exact for the default framing (`render_frames(..., zoom=1)`).

Boxes are `(x0, y0, x1, y1)` int pixels, x1 / y1 exclusive, clipped to the image and at least
`MIN_SIDE` px wide and high (a mouth seen in profile is still a region). This module draws nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lpm_npc.synth.character import CharacterSpec
from lpm_npc.synth.motion import Motion
from lpm_npc.synth.raster import F32
from lpm_npc.synth.render import BASE_ZOOM, CAMERA_Y
from lpm_npc.synth.render_controls import Controls, controls_from_motion
from lpm_npc.synth.render_head import project_local
from lpm_npc.synth.render_look import Look, look_for

MIN_SIDE = 4  # smallest box side, px
MARGIN = 0.02  # world units added around every region (anti-aliased edges, lip thickness)


@dataclass(frozen=True)
class FaceBoxes:
    """Per-frame pixel boxes (T, 4) int32 of three regions."""

    face: np.ndarray  # skull front: forehead to chin, cheek to cheek
    mouth: np.ndarray  # lips and the open mouth at the frame's jaw opening
    eyes: np.ndarray  # both eyes and the brows at rest (a raised brow and its creases go above)

    def stacked(self) -> np.ndarray:
        """(T, 3, 4) int32 in the order face, mouth, eyes (the latent dataset's layout)."""
        return np.stack([self.face, self.mouth, self.eyes], axis=1)


def _surface_z(look: Look, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    rx, ry, rz = look.skull
    return rz * np.sqrt(np.maximum(1.0 - (x / rx) ** 2 - (y / ry) ** 2, 0.05))


def _region_box(
    look: Look, ctl: Controls, xs: tuple[float, float], ys: tuple[float, float], size: int
) -> np.ndarray:
    """Pixel box of the local-frame rectangle xs × ys on the skull surface, per frame (T, 4)."""
    gx, gy = np.meshgrid(np.linspace(*xs, 5), np.linspace(*ys, 5))
    gx, gy = gx.ravel(), gy.ravel()
    gz = _surface_z(look, gx, gy)
    screen_x, screen_y = [], []
    for point in zip(gx, gy, gz):
        x, y, _ = project_local(ctl, look, tuple(float(v) for v in point))
        screen_x.append(x)
        screen_y.append(y)
    sx = np.stack(screen_x, axis=1)  # (T, 25) world x
    sy = np.stack(screen_y, axis=1)
    zoom = BASE_ZOOM
    # World -> pixel, the inverse of raster.Grid's pixel centres (row 0 at the top).
    col = (sx * zoom + 1.0) * 0.5 * size
    row = ((CAMERA_Y - sy) * zoom + 1.0) * 0.5 * size
    margin = MARGIN * zoom * 0.5 * size
    x0 = np.floor(col.min(axis=1) - margin)
    x1 = np.ceil(col.max(axis=1) + margin)
    y0 = np.floor(row.min(axis=1) - margin)
    y1 = np.ceil(row.max(axis=1) + margin)
    boxes = np.stack([x0, y0, x1, y1], axis=1).clip(0, size)
    # Enforce a minimum side, staying inside the image.
    for lo, hi in ((0, 2), (1, 3)):
        short = boxes[:, hi] - boxes[:, lo] < MIN_SIDE
        centre = 0.5 * (boxes[short, lo] + boxes[short, hi])
        start = np.clip(np.round(centre - MIN_SIDE / 2), 0, size - MIN_SIDE)
        boxes[short, lo] = start
        boxes[short, hi] = start + MIN_SIDE
    return boxes.astype(np.int32)


def face_boxes(spec: CharacterSpec, motion: Motion, size: int) -> FaceBoxes:
    """Face, mouth and eye boxes of `render_frames(spec, motion, size)` (default framing)."""
    look = look_for(spec)
    ctl = controls_from_motion(motion, look.head_centre)
    rx, ry, _ = look.skull
    mw = look.mouth[0]
    my = look.mouth_y
    mouth_half = mw * 1.45 + MARGIN
    # The opening reaches 0.14 below the lip line at jaw 1 (render_face._paint_mouth), plus lips.
    mouth = _region_box(look, ctl, (-mouth_half, mouth_half), (my - 0.17, my + 0.04), size)
    ew, eu, _, _ = look.eye
    eye_half = look.eye_x + ew + MARGIN
    eyes = _region_box(
        look, ctl, (-eye_half, eye_half), (look.eye_y - 0.06, look.eye_y + eu + 0.08), size
    )
    face = _region_box(look, ctl, (-0.85 * rx, 0.85 * rx), (-0.98 * ry, 0.55 * ry), size)
    return FaceBoxes(face=face, mouth=mouth, eyes=eyes)


def box_mask(boxes: np.ndarray, size: int, weight: float = 1.0) -> np.ndarray:
    """(T, size, size) float32 mask: `weight` inside each frame's box, 0 outside."""
    mask = np.zeros((len(boxes), size, size), F32)
    for i, (x0, y0, x1, y1) in enumerate(np.asarray(boxes)):
        mask[i, y0:y1, x0:x1] = weight
    return mask
