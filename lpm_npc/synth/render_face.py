"""Face features painted in the skull's local (x, y) coordinates: eyes, brows, mouth, cheeks, glasses.

`paint_face` writes into the skull's albedo (shading is applied afterwards by the head painter), each
feature only inside the pixels its projected position can reach. Local coordinates come from the
ray-cast skull, so features foreshorten with yaw and pitch and fade where the surface turns away.
Coordinates: x to the character's left (viewer's right at yaw 0), y up, origin at the head centre.
This module does not ray-cast anything itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lpm_npc.synth.raster import F32, Grid, Hit, coverage, ellipse_sdf, paint, shaded
from lpm_npc.synth.render_controls import Controls
from lpm_npc.synth.render_look import Look

if TYPE_CHECKING:
    from lpm_npc.synth.render_head import HeadFrame

SCLERA = np.array([0.97, 0.96, 0.94], F32)
LASH = np.array([0.1, 0.07, 0.06], F32)
PUPIL = np.array([0.04, 0.03, 0.03], F32)
WHITE = np.array([1.0, 1.0, 1.0], F32)
CAVITY = np.array([0.28, 0.07, 0.09], F32)
TEETH = np.array([0.96, 0.95, 0.9], F32)
TONGUE = np.array([0.86, 0.38, 0.42], F32)
BLUSH = np.array([0.92, 0.42, 0.45], F32)
# A full brow raise lifts the brow this far (head units; ~4 px at 128 px, so a listening raise of
# 0.35-0.7 moves it 1.5-3 px). Stylised: a real brow travels about half as far.
BROW_TRAVEL = 0.07
BROW_ARCH_LIFT = 0.02  # a raise also arches the brow (head units at full raise)
BROW_RIM = 0.014  # forehead shown around a brow drawn over a fringe (~1 px at 128 px)


def _col(v) -> np.ndarray:
    return np.asarray(v, F32).reshape(-1, 1, 1)


def _surface_z(look: Look, x: float, y: float) -> float:
    rx, ry, rz = look.skull
    return rz * float(np.sqrt(max(1.0 - (x / rx) ** 2 - (y / ry) ** 2, 0.05)))


def paint_face(
    albedo: np.ndarray,
    qx: np.ndarray,
    qy: np.ndarray,
    qz: np.ndarray,
    hf: HeadFrame,
    grid: Grid,
    look: Look,
    ctl: Controls,
) -> np.ndarray:
    """Paint cheeks, eyes, brows and mouth into the planar `albedo` (3, G, h, w) in place.

    Returns the brow window (G, h, w): each brow and a rim of forehead around it, which the head
    painter draws again over a fringe (brows show through hair, a cartoon convention that keeps a
    brow raise visible on every hair style)."""
    inv_aa = hf.inv_aa
    brow_window = np.zeros(qx.shape, F32)
    front = np.clip(qz * F32(6.0 / look.skull[2]), 0.0, 1.0)  # features fade towards the sides

    def window(x: float, y: float, radius: float):
        return hf.sub_window(grid, ctl, look, (x, y, _surface_z(look, x, y)), radius)

    # Cheeks: blush, lifted by smiles; soft smile lines from nose to mouth corners.
    for side in (-1.0, 1.0):
        cx, cy = side * 0.19, -0.1
        sl = window(cx, cy, 0.1)
        if sl is None:
            continue
        x, y = qx[:, sl[0], sl[1]], qy[:, sl[0], sl[1]]
        lift = _col(ctl.cheek) * F32(0.02)
        soft = ellipse_sdf(x - F32(cx), y - (F32(cy) + lift), F32(0.075), F32(0.05))
        strength = F32(look.spec.blush * 0.6) + _col(ctl.cheek) * F32(0.12)
        a = coverage(soft, F32(1.0 / 0.05)) * strength * front[:, sl[0], sl[1]]
        paint(albedo[:, :, sl[0], sl[1]], a, BLUSH)

    _paint_mouth(albedo, qx, qy, front, hf, grid, look, ctl, window)
    for side in (-1.0, 1.0):
        _paint_eye(albedo, qx, qy, front, inv_aa, look, ctl, side, window)
        _paint_brow(albedo, brow_window, qx, qy, front, inv_aa, look, ctl, side, window)
    return brow_window


def _paint_eye(albedo, qx, qy, front, inv_aa, look: Look, ctl: Controls, side: float, window):
    ew, eu, el, tilt = look.eye
    ex, ey = side * look.eye_x, look.eye_y
    sl = window(ex, ey, ew * 1.3 + 0.04)
    if sl is None:
        return
    x = qx[:, sl[0], sl[1]] - F32(ex)
    y = qy[:, sl[0], sl[1]] - F32(ey)
    fr = front[:, sl[0], sl[1]]
    dst = albedo[:, :, sl[0], sl[1]]
    opening = _col(ctl.open_l if side > 0 else ctl.open_r)
    squint = _col(ctl.squint_l if side > 0 else ctl.squint_r)
    y = y - F32(tilt * 0.5) * x * F32(side)  # outer corner up (or down for droopy eyes)
    t = F32(1.0) - (x / F32(ew)) ** 2
    bottom = -F32(el) * t * (F32(1.0) - F32(0.6) * squint)
    top_open = F32(eu) * t
    top = bottom + (top_open - bottom) * opening  # closing = upper lid meets the lower lid
    open_sdf = np.maximum(np.maximum(y - top, bottom - y), np.abs(x) - F32(ew))
    # A lid gap thinner than a pixel covers only that fraction of it (a closed eye shows no white).
    gap = np.clip((top - bottom) * inv_aa, F32(0.0), F32(1.0))
    a_open = coverage(open_sdf, inv_aa) * gap * fr
    # Lid crease above the open eye (the lid skin grows as the eye closes).
    crease = np.maximum(np.abs(y - top_open - F32(0.016)) - F32(0.003), np.abs(x) - F32(ew * 0.9))
    paint(dst, coverage(crease, inv_aa) * fr * F32(0.25), look.skin_shadow)
    paint(dst, a_open, SCLERA)
    gx = _col(ctl.gaze_x) * F32(ew * 0.42)
    gy = _col(ctl.gaze_y) * F32(eu * 0.4)
    ir = F32(min(ew * 0.52, 0.038))
    px, py = x - gx, y - gy
    r = np.sqrt(px * px + py * py)
    a_iris = np.minimum(coverage(r - ir, inv_aa), a_open)
    ring = np.clip(r / ir, 0.0, 1.0)
    paint(dst, a_iris, shaded(look.iris, F32(1.05) - F32(0.35) * ring * ring))
    paint(dst, np.minimum(coverage(r - ir * F32(0.45), inv_aa), a_open), PUPIL)
    hx = px + F32(ir * 0.35 * np.sign(look.light[0] + 1e-3))
    glint = np.sqrt(hx * hx + (py - F32(ir * 0.4)) ** 2) - ir * F32(0.24)
    paint(dst, np.minimum(coverage(glint, inv_aa), a_open) * F32(0.9), WHITE)
    # Upper lash line follows the lid, so a closed eye is one dark curve.
    lash_w = F32(0.005) + F32(0.003) * np.clip(x * F32(side) / F32(ew), 0.0, 1.0)
    lash = np.maximum(np.abs(y - top - lash_w * 0.5) - lash_w, np.abs(x) - F32(ew * 1.06))
    paint(dst, coverage(lash, inv_aa) * fr, LASH)
    lower = np.maximum(np.abs(y - bottom) - F32(0.0025), np.abs(x) - F32(ew * 0.9))
    paint(dst, coverage(lower, inv_aa) * fr * F32(0.35), look.skin_shadow)


def _paint_brow(
    albedo, brow_window, qx, qy, front, inv_aa, look: Look, ctl: Controls, side: float, window
):
    bl, thick, arch, inner_k = look.brow_shape
    _, eu, _, _ = look.eye
    raise_ = _col(ctl.brow_l if side > 0 else ctl.brow_r)
    furrow = _col(ctl.furrow)
    sad = _col(ctl.sad_brow)
    bx0 = side * look.eye_x * 1.02
    by0 = look.eye_y + eu + 0.055
    sl = window(bx0, by0 + 0.05, bl + 0.1)
    if sl is None:
        return
    bx = F32(bx0) - F32(side * 0.016) * furrow  # furrowed brows pull together
    by = F32(by0) + F32(BROW_TRAVEL) * raise_ - F32(0.012) * furrow
    y = qy[:, sl[0], sl[1]]
    outer = (qx[:, sl[0], sl[1]] - bx) * F32(side)
    u = np.clip(outer / F32(bl), -1.0, 1.0)
    inner = (F32(1.0) - u) * F32(0.5)  # 1 at the inner end, 0 at the outer end
    curve = (
        by
        + (F32(arch) + F32(BROW_ARCH_LIFT) * np.clip(raise_, 0.0, None)) * (F32(1.0) - u * u)
        - F32(0.035) * furrow * inner
        + F32(0.04) * sad * inner
        - F32(0.012) * sad * (F32(1.0) - inner)
    )
    th = (
        F32(thick)
        * (F32(1.0) + F32(inner_k - 1.0) * inner)
        * (F32(1.0) - F32(0.45) * np.clip(u, 0.0, 1.0) ** 2)
    )
    sdf = np.maximum(np.abs(y - curve) - th * 0.5, np.abs(outer) - F32(bl))
    fr = front[:, sl[0], sl[1]]
    dst = albedo[:, :, sl[0], sl[1]]
    paint(dst, coverage(sdf, inv_aa) * fr, look.brow)
    rim = coverage(sdf - F32(BROW_RIM), inv_aa) * fr
    np.maximum(brow_window[:, sl[0], sl[1]], rim, out=brow_window[:, sl[0], sl[1]])
    # Raised brows crease the forehead: two lines above the brow, darker the higher the raise.
    crease = np.clip((raise_ - F32(0.15)) * F32(1.4), 0.0, 1.0) * F32(0.6)
    for k, gap in enumerate((0.035, 0.058)):
        line = np.maximum(
            np.abs(y - curve - F32(gap + thick * 0.5)) - F32(0.003),
            np.abs(outer + F32(0.01 * k)) - F32(bl * (0.85 - 0.15 * k)),
        )
        paint(dst, coverage(line, inv_aa) * fr * crease, look.skin_shadow)


def _paint_mouth(albedo, qx, qy, front, hf, grid, look: Look, ctl: Controls, window):
    inv_aa = hf.inv_aa
    mw, ul, ll = look.mouth
    my = look.mouth_y
    # Shadow under the nose and the chin crease frame the mouth.
    sl = window(0.0, look.nose_y - 0.05, 0.06)
    if sl is not None:
        shadow = ellipse_sdf(
            qx[:, sl[0], sl[1]],
            qy[:, sl[0], sl[1]] - F32(look.nose_y - 0.05),
            F32(0.05),
            F32(0.016),
        )
        a = coverage(shadow, F32(1.0 / 0.025)) * F32(0.2) * front[:, sl[0], sl[1]]
        paint(albedo[:, :, sl[0], sl[1]], a, look.skin_shadow)
    sl = window(0.0, my - 0.06, mw * 1.6 + 0.09)
    if sl is None:
        return
    x = qx[:, sl[0], sl[1]]
    y = qy[:, sl[0], sl[1]] - F32(my)
    fr = front[:, sl[0], sl[1]]
    dst = albedo[:, :, sl[0], sl[1]]
    jaw, spread, rnd = _col(ctl.jaw), _col(ctl.spread), _col(ctl.round)
    hw = F32(mw) * (F32(1.0) + F32(0.4) * spread - F32(0.38) * rnd)
    u = x / hw
    lift = F32(0.032) * _col(ctl.smile) * u * u + F32(0.03) * _col(ctl.asym) * np.clip(u, 0, 1) ** 2
    y = y - lift
    # Spread lips part a little ("cheese"): a slit of teeth shows even with the jaw closed.
    open_h = F32(0.14) * jaw * (F32(1.0) + F32(0.25) * rnd) + F32(0.006) + F32(0.014) * spread
    centre = -open_h * F32(0.5)
    half = open_h * F32(0.5)
    # Lips: an ellipse around the opening, upper and lower lips with their own thickness.
    # Spread lips stretch thin; rounded lips pout thicker.
    plump = F32(1.0) - F32(0.35) * spread + F32(0.45) * rnd
    upper = (y > centre).astype(F32)
    lip_t = (F32(ll) + F32(ul - ll) * upper) * plump
    lips = ellipse_sdf(x, y - centre, hw + F32(0.008), half + lip_t)
    lip_shade = F32(0.92) + F32(0.16) * np.clip((centre - y) / (half + F32(ll)), 0.0, 1.0)
    paint(dst, coverage(lips, inv_aa) * fr, shaded(look.lip, lip_shade))
    # Opening: a narrower ellipse; rounding makes it an O, spreading a wide slit.
    hw_open = hw * (F32(0.9) - F32(0.25) * rnd)
    mouth = ellipse_sdf(x, y - centre, hw_open, half)
    a_open = coverage(mouth, inv_aa) * fr
    inside = np.empty((3,) + y.shape, F32)
    inside[...] = CAVITY.reshape(3, 1, 1, 1)
    teeth_h = F32(0.022) * (F32(0.7) + F32(0.3) * spread)
    top_y = F32(0.0) - F32(0.003)
    paint(inside, coverage(top_y - teeth_h - y, inv_aa), TEETH)
    bottom_y = -open_h
    paint(inside, coverage(y - (bottom_y + F32(0.013)), inv_aa) * np.clip(jaw * 3.0, 0, 1), TEETH)
    tongue = ellipse_sdf(x, y - (bottom_y + F32(0.01)), hw_open * F32(0.6), F32(0.03))
    paint(inside, coverage(tongue, inv_aa), TONGUE)
    # A nearly closed mouth reads as a dark seam between the lips, not as teeth.
    seam = np.clip((jaw + F32(0.15) * spread) * 8.0, 0.0, 1.0)
    inside = inside * seam + shaded(look.lip * F32(0.45), F32(1.0) - seam)
    paint(dst, a_open, inside)


def paint_glasses(
    region: np.ndarray,
    zbuf: np.ndarray,
    skull: Hit,
    qx: np.ndarray,
    qy: np.ndarray,
    qz: np.ndarray,
    hf: HeadFrame,
    grid: Grid,
    look: Look,
    ctl: Controls,
) -> None:
    """Frames (and tinted lenses) drawn on the skull surface, hidden by hair, hats and the nose."""
    kind = look.spec.glasses
    if kind == "none":
        return
    inv_aa = hf.inv_aa
    ew, _, _, _ = look.eye
    ex, ey = look.eye_x, look.eye_y + 0.005
    rad = F32(ew * 1.3 + 0.008)
    frame = np.array([0.08, 0.07, 0.08], F32) if kind != "round" else look.accent * F32(0.3)
    visible = skull.cover * (zbuf <= skull.t + F32(0.01))
    x, y = qx, qy - F32(ey)
    lens = None
    for side in (-1.0, 1.0):
        lx = x - F32(side * ex)
        if kind == "round":
            sdf = np.sqrt(lx * lx + y * y) - rad
        else:
            qxa, qya = np.abs(lx) - rad * F32(1.05), np.abs(y) - rad * F32(0.78)
            sdf = np.sqrt(np.maximum(qxa, 0) ** 2 + np.maximum(qya, 0) ** 2) + np.minimum(
                np.maximum(qxa, qya), 0
            )
        lens = sdf if lens is None else np.minimum(lens, sdf)
    bridge = np.maximum(np.abs(y - F32(0.012)) - F32(0.006), np.abs(x) - F32(ex) + rad)
    arms = np.maximum(np.abs(y - F32(0.01)) - F32(0.006), F32(ex) + rad * F32(0.9) - np.abs(x))
    arms = np.maximum(arms, -qz - F32(0.05))  # temples run back to the ears
    # Lenses and bridge sit on the front of the face only (the same local x, y recur at the back).
    front = np.clip(qz * F32(20.0), F32(0.0), F32(1.0))
    lens = lens + (F32(1.0) - front)
    bridge = bridge + (F32(1.0) - front)
    rim = np.minimum(np.minimum(np.abs(lens) - F32(0.007), bridge), arms)
    if kind == "sun":
        paint(
            region, coverage(lens, inv_aa) * visible * F32(0.88), np.array([0.07, 0.08, 0.1], F32)
        )
    else:
        glint = np.abs(x - y * F32(0.8) - F32(ex * 0.3)) - F32(0.01)
        a = np.minimum(coverage(lens, inv_aa), coverage(glint, inv_aa)) * F32(0.25)
        paint(region, a * visible, WHITE)
    paint(region, coverage(rim, inv_aa) * visible, frame)
