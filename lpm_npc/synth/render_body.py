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
    cos_b, sin_b = np.cos(ctl.body_yaw), np.sin(ctl.body_yaw)
    half_w = TORSO_HALF_WIDTH * np.abs(cos_b) + TORSO_DEPTH * np.abs(sin_b)
    shoulder = SHOULDER_Y + ctl.breath * F32(0.018)
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

    nx_lo, nx_hi = float(neck_x.min()), float(neck_x.max())
    top = float(ctl.head_y.max())
    bottom = float(shoulder.min())

    # Hood lies around the neck, behind it.
    if spec.clothing_style == "hoodie":
        part = grid.inside(win, nx_lo - 0.27, nx_hi + 0.27, bottom - 0.12, bottom + 0.16)
        if part is not None:
            sub, (rs, cs) = part
            hood = ellipse_sdf(sub.x - neck_x, sub.y - sy - 0.02, F32(0.25), F32(0.11))
            paint(region[:, :, rs, cs], coverage(hood, inv_aa), look.cloth * F32(0.72))

    # Neck: a cylinder from under the chin to the shoulders, darker under the jaw.
    neck_hw = F32(0.14 * spec.head_width)
    hx, hy = _col(ctl.head_x), _col(ctl.head_y)
    lo = min(nx_lo, float(ctl.head_x.min())) - 0.2
    hi = max(nx_hi, float(ctl.head_x.max())) + 0.2
    part = grid.inside(win, lo, hi, bottom - 0.31, top)
    if part is not None:
        sub, (rs, cs) = part
        x, y = sub.x, sub.y
        frac = np.clip((y - sy) / (hy - sy), 0.0, 1.0)
        centre = neck_x + (hx - neck_x) * frac
        across = (x - centre) / neck_hw
        neck_sdf = np.maximum(np.abs(x - centre) - neck_hw, y - hy)
        neck_sdf = np.maximum(neck_sdf, sy - F32(0.3) - y)
        shade = F32(0.78) + F32(0.18) * np.clip(across * light_x + 0.3, -1.0, 1.0)
        shade = shade * (F32(1.0) - F32(0.35) * np.clip((y - (hy - 0.42)) * 6.0, 0.0, 1.0))
        dst = region[:, :, rs, cs]
        paint(dst, coverage(neck_sdf, inv_aa), shaded(look.skin, shade))
        if spec.clothing_style == "turtleneck":
            collar = np.maximum(np.abs(x - centre) - neck_hw * 1.12, y - (hy - 0.34))
            ribs = F32(0.9) + F32(0.1) * np.sin(y * 120.0)
            paint(dst, coverage(collar, inv_aa), shaded(look.cloth, ribs * shade))

    # Torso: rounded box below the shoulder line, shaded across by the key light.
    x, y = win.x, win.y
    body_h = F32(0.9)
    torso_sdf = box_sdf(x - tx, y - (sy - body_h), _col(half_w), body_h, F32(0.3))
    torso_a = coverage(torso_sdf, inv_aa)
    u = (x - tx) / _col(half_w)
    t_shade = F32(0.8) + F32(0.2) * u * light_x - F32(0.12) * np.clip((sy - y) * 0.8, 0.0, 1.0)
    cloth = shaded(look.cloth, t_shade)
    if spec.clothing_style == "turtleneck":
        cloth *= F32(0.95) + F32(0.05) * np.abs(np.sin((x - tx) * F32(47.0)))
    # Neckline, collar, lapels (front) or a seam (back): only near the neck.
    part = grid.inside(win, nx_lo - 0.32, nx_hi + 0.32, bottom - 0.75, bottom + 0.12)
    if part is not None:
        sub, (rs, cs) = part
        _paint_neckline(
            cloth[:, :, rs, cs], sub, look, ctl, neck_x, tx, sy, inv_aa, t_shade[:, rs, cs]
        )
    paint(region, torso_a, cloth)


def _paint_neckline(cloth, sub, look: Look, ctl: Controls, neck_x, tx, sy, inv_aa, t_shade):
    x, y = sub.x, sub.y
    fr = _col(np.clip(np.cos(ctl.body_yaw) * 4.0, 0.0, 1.0))
    # The head and neck cast a soft shadow on the chest.
    shadow = coverage(ellipse_sdf(x - neck_x, y - sy, 0.22, 0.12), F32(1.0 / 0.1))
    cloth *= F32(1.0) - F32(0.18) * shadow
    skin = shaded(look.skin * F32(0.85), t_shade)
    accent = shaded(look.accent, t_shade)
    nx = x - neck_x
    dy = sy - y  # depth below the shoulder line
    style = look.spec.clothing_style
    if style in ("tshirt", "hoodie"):
        neckline = ellipse_sdf(nx, y - sy, F32(0.15), F32(0.075))
        paint(cloth, coverage(np.abs(neckline) - 0.012, inv_aa) * fr, accent)
        paint(cloth, coverage(neckline, inv_aa) * fr, skin)
        if style == "hoodie":
            strings = np.maximum(np.abs(np.abs(nx) - 0.06) - 0.008, np.abs(dy - 0.17) - 0.1)
            paint(cloth, coverage(strings, inv_aa) * fr, accent)
    elif style == "vneck":
        vee = np.maximum(np.abs(nx) * 1.4 - (0.2 - dy), y - sy - 0.1)
        paint(cloth, coverage(np.abs(vee) - 0.012, inv_aa) * fr, accent)
        paint(cloth, coverage(vee, inv_aa) * fr, skin)
    elif style == "collar":
        vee = np.maximum(np.abs(nx) * 1.8 - (0.12 - dy), y - sy - 0.1)
        paint(cloth, coverage(vee, inv_aa) * fr, skin)
        flap = np.maximum(np.abs(np.abs(nx) - 0.1) - (0.1 - dy) * 0.6, -dy - 0.02)
        flap = np.maximum(flap, dy - 0.13)
        paint(cloth, coverage(flap, inv_aa) * fr, accent)
        # Buttons every 0.14 below the collar (a triangle wave instead of a slow modulo).
        phase = np.abs(np.sin(dy * F32(np.pi / 0.14))) * F32(0.14 / np.pi)
        buttons = np.sqrt(nx * nx + phase * phase) - 0.012
        paint(cloth, coverage(np.maximum(buttons, 0.18 - dy), inv_aa) * fr, accent * F32(0.7))
    elif style == "jacket":
        shirt = np.abs(nx) - (0.22 - dy * 0.35)
        paint(cloth, coverage(shirt, inv_aa) * fr, accent)
        edge = np.abs(shirt) - 0.01
        paint(cloth, coverage(edge, inv_aa) * fr, shaded(look.cloth * F32(0.55), t_shade))
        neckline = ellipse_sdf(nx, y - sy, F32(0.12), F32(0.06))
        paint(cloth, coverage(neckline, inv_aa) * fr, skin)
    # From behind: a seam down the back instead of a neckline.
    seam = np.abs(x - tx) - 0.006
    paint(cloth, coverage(seam, inv_aa) * (1.0 - fr) * 0.5, shaded(look.cloth * F32(0.6), t_shade))
