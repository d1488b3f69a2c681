"""Painters for everything below and behind the head: background, hanging hair, neck and torso.

Each painter works in place on a planar float32 canvas (3, G, S, S) and touches only the window its shape
can reach. The background is computed once per (character, size, zoom) and cached. This module does
not draw the head, face or headwear (see `render_head.py` / `render_face.py`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from lpm_npc.synth.character import CharacterSpec
from lpm_npc.synth.raster import F32, Grid, box_sdf, coverage, ellipse_sdf, paint, shaded
from lpm_npc.synth.render_controls import Controls
from lpm_npc.synth.render_look import Look, look_for

SHOULDER_Y = -0.44  # rest height of the shoulder line, world
TORSO_HALF_WIDTH = 0.66
TORSO_DEPTH = 0.36  # half depth, seen when the body turns


@lru_cache(maxsize=64)
def background(spec: CharacterSpec, size: int, zoom: float, centre_y: float) -> np.ndarray:
    """The character's scene, planar float32 (3, S, S), read-only. Depends only on the character."""
    look = look_for(spec)
    grid = Grid(size, zoom, centre_y)
    x = grid.xs.reshape(1, -1)
    y = grid.ys.reshape(-1, 1)
    c0, c1 = look.background
    style = spec.background
    ones = np.ones((size, size), F32)
    inv_aa = 1.0 / grid.pixel

    def mix(t: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return shaded(a, (1.0 - t) * ones) + shaded(b, t * ones)

    if style == "gradient":
        img = mix(np.clip((1.0 - y) * 0.5, 0.0, 1.0), c0, c1)
    elif style == "studio":
        img = mix(np.clip(np.sqrt(x * x + (y - 0.1) ** 2) / 1.6, 0.0, 1.0), c0, c1)
    elif style == "stripes":
        img = mix(0.35 * (0.5 + 0.5 * np.sin(x * 14.0 + 0.3)), c0, c1)
    elif style == "window":
        img = shaded(c0 * 0.9, ones)
        side = 1.0 if look.light[0] >= 0 else -1.0
        pane = box_sdf(x - side * 0.7, y - 0.45, 0.42, 0.55, 0.02)
        sky = np.array([0.78, 0.88, 0.97], F32) * 0.6 + c0 * 0.4
        paint(img, coverage(pane, inv_aa) * ones, sky)
        bars = np.minimum(np.abs(x - side * 0.7), np.abs(y - 0.45)) - 0.018
        paint(img, coverage(np.maximum(bars, pane), inv_aa) * ones, c1)
    else:  # dots
        img = shaded(c0, ones)
        gx = (x * 3.2) % 1.0 - 0.5
        gy = (y * 3.2 + 0.5 * np.floor(x * 3.2)) % 1.0 - 0.5
        dots = np.sqrt(gx * gx + gy * gy) / 3.2 - 0.045
        paint(img, coverage(dots, inv_aa) * 0.6, c1)
    # Floor below the bust (seen in the wide "global" shot), then a glow on the key-light side.
    floor = np.clip((-1.25 - y) * 4.0, 0.0, 1.0) * ones
    img = img * (1.0 - floor) + shaded(c1 * 0.55, floor)
    glow = np.exp(-((x - look.light[0] * 1.2) ** 2 + (y - 0.7) ** 2) / 1.2)
    img = np.ascontiguousarray(np.clip(img * (0.82 + 0.3 * glow), 0.0, 1.0), dtype=F32)
    img.setflags(write=False)
    return img


def _col(v: np.ndarray) -> np.ndarray:
    return v.reshape(-1, 1, 1)


def paint_back_hair(canvas: np.ndarray, grid: Grid, look: Look, ctl: Controls) -> None:
    """Hair hanging behind the shoulders (long styles), following the head's yaw and position."""
    length = look.hair_shape.back_hair
    if length <= 0.0:
        return
    rx, _, rz = look.skull
    s, c = np.abs(np.sin(ctl.yaw)), np.abs(np.cos(ctl.yaw))
    half_w = rx * 1.12 * c + rz * 0.85 * s
    # Turned sideways, hanging hair sits behind the skull, away from the face.
    off = -np.sin(ctl.yaw) * rz * 0.45
    top = ctl.head_y
    bottom = ctl.head_y - 0.3 - length
    win = grid.window(
        float((ctl.head_x + off - half_w).min()) - 0.1,
        float((ctl.head_x + off + half_w).max()) + 0.1,
        float(bottom.min()) - 0.05,
        float(top.max()),
    )
    if win.empty:
        return
    cx = _col(ctl.head_x + off)
    cy = _col((top + bottom) * 0.5)
    hh = _col((top - bottom) * 0.5)
    x = win.x - cx
    sdf = box_sdf(x, win.y - cy, _col(half_w), hh, 0.16)
    if look.hair_shape.curls > 0:
        sdf = sdf + F32(0.02) * np.sin(x * 40.0) * np.sin(win.y * 37.0)
    alpha = coverage(sdf, 1.0 / grid.pixel)
    strands = F32(0.85) + F32(0.15) * np.sin(x * (90.0 / (1.0 + look.hair_shape.curls)))
    colour = shaded(look.hair_dark, strands + F32(0.1))
    region = canvas[:, :, win.rows, win.cols]
    paint(region, alpha, colour)


def paint_torso(canvas: np.ndarray, grid: Grid, look: Look, ctl: Controls) -> None:
    """Neck, torso and clothing (neckline style, collar, hood, lapels), shaded by the key light."""
    spec = look.spec
    inv_aa = F32(1.0) / grid.pixel
    g = ctl.n_frames
    cos_b, sin_b = np.cos(ctl.body_yaw), np.sin(ctl.body_yaw)
    half_w = TORSO_HALF_WIDTH * np.abs(cos_b) + TORSO_DEPTH * np.abs(sin_b)
    shoulder = SHOULDER_Y + ctl.breath * F32(0.018)
    front = np.clip(cos_b * 4.0, 0.0, 1.0)  # 1 when the chest faces the camera, 0 from behind
    win = grid.window(
        float((ctl.body_x - half_w).min()) - 0.05,
        float((ctl.body_x + half_w).max()) + 0.05,
        grid.centre_y - 1.0 / grid.zoom - 0.1,
        float(ctl.head_y.max()) - 0.1,
    )
    if win.empty:
        return
    region = canvas[:, :, win.rows, win.cols]
    x, y = win.x, win.y
    tx, sy = _col(ctl.body_x), _col(shoulder)
    neck_x = _col(ctl.body_x + sin_b * TORSO_DEPTH * 0.3)
    light_x = F32(look.light[0])

    # Hood lies around the neck, behind it.
    if spec.clothing_style == "hoodie":
        hood = ellipse_sdf(x - neck_x, y - sy - 0.02, F32(0.25), F32(0.11))
        paint(region, coverage(hood, inv_aa), look.cloth * F32(0.72))

    # Neck: a cylinder from under the chin to the shoulders, darker under the jaw.
    neck_hw = F32(0.14 * spec.head_width)
    hx, hy = _col(ctl.head_x), _col(ctl.head_y)
    frac = np.clip((y - sy) / (hy - sy), 0.0, 1.0)
    centre = neck_x + (hx - neck_x) * frac
    across = (x - centre) / neck_hw
    neck_sdf = np.maximum(np.abs(x - centre) - neck_hw, y - hy)
    shade = F32(0.78) + F32(0.18) * np.clip(across * light_x + 0.3, -1.0, 1.0)
    shade = shade * (F32(1.0) - F32(0.35) * np.clip((y - (hy - 0.42)) * 6.0, 0.0, 1.0))
    neck_colour = shaded(look.skin, shade)
    paint(region, coverage(neck_sdf, inv_aa) * (y > sy - 0.3), neck_colour)
    if spec.clothing_style == "turtleneck":
        collar = np.maximum(np.abs(x - centre) - neck_hw * 1.12, y - (hy - 0.34))
        ribs = F32(0.9) + F32(0.1) * np.sin(y * 120.0)
        paint(region, coverage(collar, inv_aa), shaded(look.cloth, ribs * shade))

    # Torso: rounded box below the shoulder line.
    body_h = F32(0.9)
    torso_sdf = box_sdf(x - tx, y - (sy - body_h), _col(half_w), body_h, F32(0.3))
    torso_a = coverage(torso_sdf, inv_aa)
    u = (x - tx) / _col(half_w)
    t_shade = F32(0.8) + F32(0.2) * u * light_x - F32(0.12) * np.clip((sy - y) * 0.8, 0.0, 1.0)
    # Shadow the head and neck cast on the chest.
    t_shade = t_shade * (
        F32(1.0) - F32(0.18) * coverage(ellipse_sdf(x - neck_x, y - sy, 0.22, 0.12), F32(1.0 / 0.1))
    )
    cloth = np.empty((3, g, win.y.shape[1], win.x.shape[2]), F32)
    cloth[...] = look.cloth.reshape(3, 1, 1, 1)
    fr = _col(front)
    nx = x - neck_x
    dy = sy - y  # depth below the shoulder line
    style = spec.clothing_style
    if style in ("tshirt", "hoodie"):
        neckline = ellipse_sdf(nx, y - sy, F32(0.15), F32(0.075))
        paint(cloth, coverage(np.abs(neckline) - 0.012, inv_aa) * fr, look.accent)
        paint(cloth, coverage(neckline, inv_aa) * fr, look.skin * F32(0.85))
        if style == "hoodie":
            strings = np.maximum(np.abs(np.abs(nx) - 0.06) - 0.008, np.abs(dy - 0.17) - 0.1)
            paint(cloth, coverage(strings, inv_aa) * fr, look.accent)
    elif style == "vneck":
        vee = np.maximum(np.abs(nx) * 1.4 - (0.2 - dy), y - sy - 0.1)
        paint(cloth, coverage(np.abs(vee) - 0.012, inv_aa) * fr, look.accent)
        paint(cloth, coverage(vee, inv_aa) * fr, look.skin * F32(0.85))
    elif style == "collar":
        vee = np.maximum(np.abs(nx) * 1.8 - (0.12 - dy), y - sy - 0.1)
        paint(cloth, coverage(vee, inv_aa) * fr, look.skin * F32(0.85))
        flap = np.maximum(np.abs(np.abs(nx) - 0.1) - (0.1 - dy) * 0.6, -dy - 0.02)
        flap = np.maximum(flap, dy - 0.13)
        paint(cloth, coverage(flap, inv_aa) * fr, look.accent)
        buttons = np.sqrt(nx * nx + ((dy % 0.14) - 0.07) ** 2) - 0.012
        paint(cloth, coverage(np.maximum(buttons, 0.18 - dy), inv_aa) * fr, look.accent * 0.7)
    elif style == "jacket":
        shirt = np.abs(nx) - (0.22 - dy * 0.35)
        paint(cloth, coverage(shirt, inv_aa) * fr, look.accent)
        edge = np.abs(shirt) - 0.01
        paint(cloth, coverage(edge, inv_aa) * fr, look.cloth * F32(0.55))
        neckline = ellipse_sdf(nx, y - sy, F32(0.12), F32(0.06))
        paint(cloth, coverage(neckline, inv_aa) * fr, look.skin * F32(0.85))
    elif style == "turtleneck":
        ribs = np.abs(((x - tx) * 30.0) % 2.0 - 1.0)
        cloth *= F32(0.95) + F32(0.05) * ribs
    # From behind: a seam down the back instead of a neckline.
    seam = np.abs(x - tx + _col(sin_b) * 0.0) - 0.006
    paint(cloth, coverage(seam, inv_aa) * (1.0 - fr) * 0.5, look.cloth * F32(0.6))
    cloth *= t_shade
    paint(region, torso_a, cloth)
