"""Render procedural characters: `render_frames(spec, motion, size)` and `render_still(...)`.

A character (`CharacterSpec`) is drawn as a stylised bust — 2.5D ray-cast head with hair, face,
ears, nose, hats and accessories over a neck, clothed torso and a per-character scene — at any size
from 64 to 512 px, any yaw in −90°..+90° (stills also from behind), pitch, roll and blended
expressions. Frames are painted in groups of `GROUP` with numpy float32, each shape only inside the
window it can reach, so rendering is deterministic (same inputs → identical bytes) and fast on one
core. It does not write files, read audio or decide motion (see `director.py`).
"""

from __future__ import annotations

import numpy as np

from lpm_npc.synth.character import CharacterSpec
from lpm_npc.synth.motion import EXPRESSIONS, Motion
from lpm_npc.synth.raster import Grid
from lpm_npc.synth.render_body import background, paint_back_hair, paint_torso
from lpm_npc.synth.render_controls import Controls, controls_from_motion
from lpm_npc.synth.render_head import paint_head
from lpm_npc.synth.render_look import Look, look_for

MIN_SIZE = 64  # smallest frame side, px
MAX_SIZE = 512  # largest frame side, px
GROUP = 12  # frames painted together: amortises per-call overhead, keeps windows cache-sized
BASE_ZOOM = 1.3  # default framing: head and shoulders fill the frame
CAMERA_Y = 0.1  # world height the default framing is centred on


def _check_size(size: int) -> int:
    if not isinstance(size, (int, np.integer)) or not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise ValueError(f"size = {size!r}; allowed: integer {MIN_SIZE} .. {MAX_SIZE} px")
    return int(size)


def _render_group(look: Look, ctl: Controls, size: int, zoom: float) -> np.ndarray:
    # Close-ups (zoom > 1) also move the camera up towards the face.
    camera_y = CAMERA_Y + 0.3 * min(max(zoom - 1.0, 0.0), 1.0)
    grid = Grid(size, zoom * BASE_ZOOM, camera_y)
    canvas = np.empty((3, ctl.n_frames, size, size), np.float32)  # planar RGB
    canvas[...] = background(look.spec, size, zoom * BASE_ZOOM, camera_y)[:, None]
    hair_in_front_of_torso = bool(np.cos(ctl.yaw).min() < -0.1)  # seen from behind
    if not hair_in_front_of_torso:
        paint_back_hair(canvas, grid, look, ctl)
    paint_torso(canvas, grid, look, ctl)
    if hair_in_front_of_torso:
        paint_back_hair(canvas, grid, look, ctl)
    paint_head(canvas, grid, look, ctl)
    canvas *= np.float32(255.0)
    canvas += np.float32(0.5)
    np.clip(canvas, 0.0, 255.0, out=canvas)
    return canvas.astype(np.uint8).transpose(1, 2, 3, 0)


def render_controls(spec: CharacterSpec, ctl: Controls, size: int, zoom: float = 1.0) -> np.ndarray:
    """Render already-computed drawing controls; uint8 (T, size, size, 3)."""
    size = _check_size(size)
    look = look_for(spec)
    out = np.empty((ctl.n_frames, size, size, 3), np.uint8)
    for start in range(0, ctl.n_frames, GROUP):
        stop = min(start + GROUP, ctl.n_frames)
        out[start:stop] = _render_group(look, ctl.slice(start, stop), size, zoom)
    return out


def render_frames(
    spec: CharacterSpec, motion: Motion, size: int, *, zoom: float = 1.0
) -> np.ndarray:
    """Draw one frame per motion frame: uint8 (T, size, size, 3) RGB.

    Motion channels are clamped to `SCALAR_RANGES`; expression weights blend. `zoom` < 1 frames
    the bust smaller in a wider view of its scene (the sheet's `global` shot).
    """
    if not 0.25 <= zoom <= 2.0:
        raise ValueError(f"zoom = {zoom}; allowed 0.25 .. 2.0")
    look = look_for(spec)
    return render_controls(spec, controls_from_motion(motion, look.head_centre), size, zoom)


def expression_motion(expression: str, n_frames: int = 1) -> Motion:
    """A still motion showing one expression at full weight."""
    if expression not in EXPRESSIONS:
        raise ValueError(f"expression = {expression!r}; allowed: {', '.join(EXPRESSIONS)}")
    motion = Motion.neutral(n_frames)
    motion.expression[:] = 0.0
    motion.expression[:, EXPRESSIONS.index(expression)] = 1.0
    return motion


def render_still(
    spec: CharacterSpec,
    size: int,
    *,
    yaw: float = 0.0,
    expression: str = "neutral",
    back: bool = False,
    zoom: float = 1.0,
    turn_body: bool = True,
) -> np.ndarray:
    """One reference image, uint8 (size, size, 3).

    `yaw` in degrees (−90..90, + = turned to the viewer's right); `back=True` shows the character
    from behind (yaw 180°). With `turn_body` the torso turns with the head, as in a turnaround sheet.
    """
    if not -90.0 <= yaw <= 90.0:
        raise ValueError(f"yaw = {yaw}; allowed -90 .. 90 degrees (use back=True for the back)")
    look = look_for(spec)
    motion = expression_motion(expression)
    total_yaw = 180.0 if back else yaw
    ctl = controls_from_motion(
        motion,
        look.head_centre,
        extra_yaw_deg=np.array([total_yaw], np.float32),
        body_yaw_deg=np.array([total_yaw * 0.85 if turn_body else 0.0], np.float32),
    )
    if not -2.0 <= zoom <= 2.0 or zoom < 0.25:
        raise ValueError(f"zoom = {zoom}; allowed 0.25 .. 2.0")
    return render_controls(spec, ctl, size, zoom)[0]


def sample_motion(n_frames: int, seed: int = 0) -> Motion:
    """Varied, smooth motion for benchmarks and tests: speech-like jaw and lips, blinks, head
    turns and nods, gaze shifts, sway, breathing and drifting expression blends."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames, dtype=np.float64) / 24.0

    def wave(amplitude: float, low: float, high: float) -> np.ndarray:
        f = rng.uniform(low, high, 3)
        p = rng.uniform(0, 2 * np.pi, 3)
        return amplitude * np.sin(2 * np.pi * f[:, None] * t + p[:, None]).mean(0) * 1.6

    m = Motion.neutral(n_frames)
    syllables = np.clip(np.sin(2 * np.pi * 4.2 * t + rng.uniform(0, 6)), 0, None)
    m.jaw_open[:] = np.clip(syllables * (0.5 + wave(0.5, 0.2, 0.6)), 0, 1)
    m.lip_round[:] = np.clip(wave(0.6, 0.3, 1.2), 0, 1)
    m.lip_spread[:] = np.clip(wave(0.6, 0.3, 1.2), 0, 1)
    blink = np.zeros(n_frames)
    for start in range(int(rng.integers(0, 30)), n_frames, int(rng.integers(50, 90))):
        blink[start : start + 4] = (1.0, 1.0, 0.6, 0.2)[: len(blink[start : start + 4])]
    m.blink_left[:] = blink
    m.blink_right[:] = blink
    m.brow_raise[:] = np.clip(wave(0.7, 0.1, 0.5), 0, 1)
    m.brow_furrow[:] = np.clip(wave(0.6, 0.1, 0.4), 0, 1)
    m.head_yaw[:] = wave(45.0, 0.05, 0.3)
    m.head_pitch[:] = wave(12.0, 0.1, 0.6)
    m.head_roll[:] = wave(10.0, 0.05, 0.3)
    m.gaze_x[:] = np.clip(wave(0.8, 0.1, 0.5), -1, 1)
    m.gaze_y[:] = np.clip(wave(0.6, 0.1, 0.5), -1, 1)
    m.torso_sway[:] = np.clip(wave(0.8, 0.05, 0.2), -1, 1)
    m.breath[:] = 0.5 + 0.5 * np.sin(2 * np.pi * 0.25 * t)
    weights = np.clip(rng.normal(0, 1, (3, len(EXPRESSIONS))), 0, None)
    phase = (
        np.clip(
            np.stack([1 - t / t[-1] * 2, 1 - np.abs(t / t[-1] * 2 - 1), t / t[-1] * 2 - 1]), 0, 1
        )
        if n_frames > 1
        else np.ones((3, 1))
    )
    m.expression[:] = np.clip(phase.T @ weights, 0, 1)
    m.expression[:, 0] = np.clip(1.0 - m.expression[:, 1:].sum(1), 0, 1)
    return m.clamp()


def benchmark(size: int = 128, n_frames: int = 96, n_characters: int = 4) -> dict[str, float]:
    """Frames per second of `render_frames` on this thread, over varied motion and characters.

    `frames_per_s` divides by the process's CPU time (one core's throughput, robust to other jobs
    sharing the machine); `wall_frames_per_s` divides by elapsed time. Numpy elementwise ufuncs are
    single-threaded, so the renderer uses one core.
    """
    import time

    size = _check_size(size)
    if n_frames < 1 or n_characters < 1:
        raise ValueError("frames and characters must be >= 1")
    specs = [CharacterSpec.from_seed(1000 + i) for i in range(n_characters)]
    motions = [sample_motion(n_frames, seed=i) for i in range(n_characters)]
    for spec in specs:  # warm the per-character caches (background), as training would
        render_frames(spec, motions[0].slice(0, 1), size)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for spec, motion in zip(specs, motions):
        render_frames(spec, motion, size)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    total = n_frames * n_characters
    return {
        "frames_per_s": round(total / max(cpu, 1e-9), 1),
        "wall_frames_per_s": round(total / max(wall, 1e-9), 1),
        "size": size,
        "frames": total,
        "characters": n_characters,
        "threads": 1,
    }
