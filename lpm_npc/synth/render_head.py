"""The 2.5D head: skull, ears, nose, hair shell, bun, hats and earrings, ray-cast per pixel.

The head is a set of ellipsoids in a local frame (x right, y up, z out of the face). For every pixel
near the head, an orthographic ray is turned into that frame by roll, a chin/jaw warp and the
yaw/pitch rotation, then intersected in closed form; a per-pixel depth buffer decides which object
shows. Face features are painted by `render_face.py` in the skull's local (x, y) coordinates, so they
foreshorten and vanish naturally as the head turns. The back of the head is simply what the rays hit
at yaw 180°. This module does not draw the torso or background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lpm_npc.synth.raster import (
    F32,
    Grid,
    Window,
    coverage,
    lambert,
    paint,
    ray_ellipsoid,
    shaded,
)
from lpm_npc.synth.render_controls import Controls
from lpm_npc.synth.render_face import paint_face, paint_glasses
from lpm_npc.synth.render_look import Look

JAW_STRETCH = 0.22  # how far the lower face stretches at jaw_open = 1 (fraction)
# The camera looks down on the head a little, so crowns, hat brims and the top of the hair read.
CAMERA_TILT = np.float32(np.deg2rad(5.0))


def _col(v: np.ndarray) -> np.ndarray:
    return np.asarray(v, F32).reshape(-1, 1, 1)


@dataclass
class HeadFrame:
    """Rays of the head window, in the head's local frame, for G frames."""

    win: Window
    q0: tuple[np.ndarray, np.ndarray, np.ndarray]  # ray origins, local frame, (G, h, w) each
    d: tuple[np.ndarray, np.ndarray, np.ndarray]  # ray direction, local frame, (G, 1, 1) each
    light: tuple[np.ndarray, np.ndarray, np.ndarray]  # key light, local frame, (G, 1, 1) each
    rot: np.ndarray  # (G, 3, 3) local → view rotation (before the warp and roll)
    inv_aa: F32  # 1 / pixel size, world units
    pixel: F32

    def project(self, ctl: Controls, look: Look, point: tuple[float, float, float]):
        """Screen position (G,) x, y and view depth (G,) of a local-frame point."""
        return _project(self.rot, ctl, look, point)

    def sub_window(
        self, grid: Grid, ctl: Controls, look: Look, point, radius: float
    ) -> tuple[slice, slice] | None:
        """Slices of the head window around a projected local point (None when off-image)."""
        x, y, _ = self.project(ctl, look, point)
        r = radius * (1.0 + JAW_STRETCH)
        win = grid.window(
            float(x.min()) - r, float(x.max()) + r, float(y.min()) - r, float(y.max()) + r
        )
        rows = slice(
            max(win.rows.start, self.win.rows.start), min(win.rows.stop, self.win.rows.stop)
        )
        cols = slice(
            max(win.cols.start, self.win.cols.start), min(win.cols.stop, self.win.cols.stop)
        )
        if rows.stop <= rows.start or cols.stop <= cols.start:
            return None
        off_r, off_c = self.win.rows.start, self.win.cols.start
        return slice(rows.start - off_r, rows.stop - off_r), slice(
            cols.start - off_c, cols.stop - off_c
        )


def _project(rot: np.ndarray, ctl: Controls, look: Look, point: tuple[float, float, float]):
    v = rot @ np.asarray(point, F32)  # (G, 3)
    vx, vy = v[:, 0], v[:, 1]
    ym = F32(look.mouth_y)
    stretch = 1.0 + JAW_STRETCH * ctl.jaw
    yr = np.where(vy < ym, ym + (vy - ym) * stretch, vy)
    xr = vx * _width_warp(vy, look)
    cr, sr = np.cos(ctl.roll), np.sin(ctl.roll)
    return ctl.head_x + cr * xr - sr * yr, ctl.head_y + sr * xr + cr * yr, v[:, 2]


def project_local(ctl: Controls, look: Look, point: tuple[float, float, float]):
    """World screen x, y and view depth, each (G,), of a point in the head's local frame."""
    return _project(_rotation(ctl), ctl, look, point)


def _width_warp(yw: np.ndarray, look: Look) -> np.ndarray:
    """Horizontal scale of the lower face: jaw width around the jaw line, taper towards the chin."""
    s = np.clip(-yw / F32(look.skull[1]), 0.0, 1.0)
    return F32(1.0) + F32(4.0 * look.jaw_width) * s * (1.0 - s) - F32(look.chin_taper) * s * s * s


def _rotation(ctl: Controls) -> np.ndarray:
    """(G, 3, 3) local → view rotation: pitch about x after yaw about y."""
    cy, sy = np.cos(ctl.yaw), np.sin(ctl.yaw)
    cp, sp = np.cos(ctl.pitch + CAMERA_TILT), np.sin(ctl.pitch + CAMERA_TILT)
    zero = np.zeros_like(cy)
    rows = [
        [cy, zero, sy],
        [sp * sy, cp, -sp * cy],
        [-cp * sy, sp, cp * cy],
    ]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2).astype(F32)


def head_frame(grid: Grid, look: Look, ctl: Controls) -> HeadFrame | None:
    # Reach of everything on the head (hair, ears, hats) from its centre, rotated by roll.
    half_x, up, down = _extent(look)
    roll = np.abs(ctl.roll)
    c, s = np.cos(roll), np.sin(roll)
    reach_x = float((half_x * c + max(up, down) * s).max())
    win = grid.window(
        float(ctl.head_x.min()) - reach_x,
        float(ctl.head_x.max()) + reach_x,
        float((ctl.head_y - down * c - half_x * s).min()),
        float((ctl.head_y + up * c + half_x * s).max()),
    )
    if win.empty:
        return None
    dx = win.x - _col(ctl.head_x)
    dy = win.y - _col(ctl.head_y)
    cr, sr = _col(np.cos(ctl.roll)), _col(np.sin(ctl.roll))
    xr = cr * dx + sr * dy
    yr = cr * dy - sr * dx
    ym = F32(look.mouth_y)
    stretch = _col(1.0 + JAW_STRETCH * ctl.jaw)
    # Below the lip line the face stretches down with the jaw (a min() instead of a slow where()).
    yw = yr + np.clip(yr - ym, None, F32(0.0)) * (F32(1.0) / stretch - F32(1.0))
    xw = xr / _width_warp(yw, look)
    rot = _rotation(ctl)
    m = [[_col(rot[:, i, j]) for j in range(3)] for i in range(3)]
    q0 = tuple(m[0][j] * xw + m[1][j] * yw for j in range(3))
    d = (m[2][0], m[2][1], m[2][2])
    lv = look.light
    light = tuple(m[0][j] * lv[0] + m[1][j] * lv[1] + m[2][j] * lv[2] for j in range(3))
    return HeadFrame(
        win=win, q0=q0, d=d, light=light, rot=rot, inv_aa=F32(1.0) / grid.pixel, pixel=grid.pixel
    )


def _extent(look: Look) -> tuple[float, float, float]:
    """Half width, reach above and reach below the head centre of every head part, world units."""
    rx, ry, rz = look.skull
    hs = look.hair_shape
    vol = max(1.0, hs.volume) * (1.1 if hs.curls else 1.0)
    half_x = max(rx, rz) * vol + 0.03
    half_x = max(half_x, rx * 0.9 + look.ear_radii[0] + 0.03)
    up = ry * vol + hs.lift + 0.03
    if look.spec.hat != "none":
        up += 0.07
        half_x = max(half_x, rx * (1.75 if look.spec.hat == "brim" else 1.15))
    if hs.bun:
        up = max(up, ry * 0.72 + 0.17)
        half_x = max(half_x, rz * 0.6 + 0.17)
    down = ry * (1.0 + JAW_STRETCH) + 0.03
    return half_x, up, down


def _sub(arrays, sl):
    return tuple(a[:, sl[0], sl[1]] for a in arrays)


def _hairline(nx, ny, nz, look: Look):
    """Normalised height of the hair edge at each shell point (hair where ny > this)."""
    hs = look.hair_shape
    front = np.clip(nz, 0.0, 1.0)
    back = np.clip(-nz, 0.0, 1.0)
    line = hs.side + (hs.front - hs.side) * front * front + (hs.back - hs.side) * back
    if hs.fringe_waves:
        line = line + F32(hs.fringe_waves) * np.cos(nx * 16.0) * front
    if hs.part:
        line = line + F32(hs.part) * nx * front
    return line


def _in_front(t: np.ndarray, zbuf: np.ndarray) -> np.ndarray:
    """1 where depth t is nearer than the depth buffer, else 0 (float, avoids bool casts)."""
    return np.clip((t - zbuf) * F32(1e4), F32(0.0), F32(1.0))


def _hair_colour(nx, ny, nz, look: Look, shade: np.ndarray) -> np.ndarray:
    hs = look.hair_shape
    if hs.curls:
        texture = F32(0.8) + F32(0.2) * np.sin(nx * 38.0) * np.sin(ny * 38.0 + nz * 20.0)
    else:
        # Strands run from the crown down: stripes in the angle around the vertical axis, via the
        # cheap "diamond angle" nx / (|nx| + |nz|) instead of arctan2.
        azimuth = nx / (np.abs(nx) + np.abs(nz) + F32(0.02))
        texture = F32(0.88) + F32(0.12) * np.sin(azimuth * F32(40.0))
    # A soft highlight band across the crown (a parabola: cheaper than a Gaussian).
    sheen = np.clip(F32(1.0) - ((ny - F32(0.55)) * F32(3.5)) ** 2, F32(0.0), None)
    sheen *= shade
    sheen *= F32(0.2)
    colour = shaded(look.hair, shade * texture) + sheen
    if hs.stubble:
        colour = colour * (1.0 - hs.stubble) + shaded(look.skin, shade * hs.stubble)
    return colour


def paint_head(canvas: np.ndarray, grid: Grid, look: Look, ctl: Controls) -> None:
    """Draw head, face, hair, hats and accessories onto the planar `canvas` (3, G, S, S)."""
    hf = head_frame(grid, look, ctl)
    if hf is None:
        return
    region = canvas[:, :, hf.win.rows, hf.win.cols]
    zbuf = np.full(hf.q0[0].shape, -np.inf, F32)
    rx, ry, rz = look.skull
    hs = look.hair_shape
    shell = (rx * hs.volume, ry * hs.volume, rz * hs.volume)
    shell_c = (0.0, hs.lift, -0.01)

    # Inner (far) side of the hair shell: seen through the face opening beside neck and jaw.
    if hs.volume > 0:
        hair_hit = ray_ellipsoid(hf.q0, hf.d, shell_c, shell, hf.inv_aa, back=True)
        keep_b = np.clip(
            (hair_hit.by - _hairline(hair_hit.bx, hair_hit.by, hair_hit.bz, look))
            * (shell[1] * hf.inv_aa)
            + 0.5,
            0.0,
            1.0,
        )
        cover_b = hair_hit.cover * keep_b
        paint(region, cover_b, shaded(look.hair_dark, F32(0.7) + F32(0.2) * hair_hit.by))
        np.copyto(zbuf, hair_hit.t_back, where=cover_b > 0.5)

    # Skull and face.
    skull = ray_ellipsoid(hf.q0, hf.d, (0.0, 0.0, 0.0), look.skull, hf.inv_aa)
    qx, qy, qz = skull.nx * F32(rx), skull.ny * F32(ry), skull.nz * F32(rz)
    shade = lambert(skull.nx / rx, skull.ny / ry, skull.nz / rz, hf.light, 0.62)
    albedo = np.empty((3,) + qx.shape, F32)
    albedo[...] = look.skin.reshape(3, 1, 1, 1)
    brow_window = paint_face(albedo, qx, qy, qz, hf, grid, look, ctl)
    skin_colour = albedo * shade
    alpha = skull.cover * _in_front(skull.t, zbuf)
    paint(region, alpha, skin_colour)
    np.copyto(zbuf, skull.t, where=alpha > 0.5)

    # Ears and nose: small ellipsoids tested against the depth buffer.
    erx, ery, erz = look.ear_radii
    # Hair that falls below the ears covers them (they would poke through the thin shell).
    ear_sides = () if hs.side < -0.3 else (-1.0, 1.0)
    for side in ear_sides:
        centre = (side * rx * 0.96, look.ear_y, -0.03)
        sl = hf.sub_window(grid, ctl, look, centre, max(ery, erx) + 0.02)
        if sl is None:
            continue
        ear = ray_ellipsoid(_sub(hf.q0, sl), hf.d, centre, look.ear_radii, hf.inv_aa)
        z = zbuf[:, sl[0], sl[1]]
        a = ear.cover * _in_front(ear.t, z)
        e_shade = lambert(ear.nx / erx, ear.ny / ery, ear.nz / erz, hf.light, 0.62)
        bowl = (ear.nz * F32(0.8)) ** 2 + (ear.ny * F32(0.7)) ** 2
        inner = np.clip((0.45 - bowl) * 4.0, 0.0, 1.0) * np.clip(ear.nx * side * 3.0, 0.0, 1.0)
        colour = shaded(look.skin, e_shade * (1.0 - 0.3 * inner))
        paint(region[:, :, sl[0], sl[1]], a, colour)
        np.copyto(z, ear.t, where=a > 0.5)

    nrx, nry, nrz = look.nose_radii
    surface = rz * np.sqrt(max(1.0 - (look.nose_y / ry) ** 2 - (0.0 / rx) ** 2, 0.05))
    nose_c = (0.0, look.nose_y + nry * 0.3, surface - nrz * 0.35)
    sl = hf.sub_window(grid, ctl, look, nose_c, max(nrx, nry, nrz) + 0.02)
    if sl is not None:
        nose = ray_ellipsoid(_sub(hf.q0, sl), hf.d, nose_c, look.nose_radii, hf.inv_aa)
        z = zbuf[:, sl[0], sl[1]]
        a = nose.cover * _in_front(nose.t, z)
        n_shade = lambert(nose.nx / nrx, nose.ny / nry, nose.nz / nrz, hf.light, 0.62)
        nostril = ((np.abs(nose.nx) - 0.42) / 0.22) ** 2 + ((nose.ny + 0.6) / 0.24) ** 2
        dark = np.clip((1.0 - nostril) * 2.0, 0.0, 1.0) * (nose.nz > 0.0)
        colour = shaded(look.skin, n_shade * (1.0 - 0.55 * dark))
        paint(region[:, :, sl[0], sl[1]], a, colour)
        np.copyto(z, nose.t, where=a > 0.5)

    # Hair shell (front side), then the bun.
    if hs.volume > 0:
        keep = np.clip(
            (hair_hit.ny - _hairline(hair_hit.nx, hair_hit.ny, hair_hit.nz, look))
            * (shell[1] * hf.inv_aa)
            + 0.5,
            0.0,
            1.0,
        )
        cover = hair_hit.cover
        if hs.curls:
            bumps = np.sin(hair_hit.nx * 19.0) * np.sin(hair_hit.ny * 17.0 + hair_hit.nz * 9.0)
            cover = coverage(hair_hit.sdf + F32(0.018) * bumps, hf.inv_aa)
        a = cover * keep * _in_front(hair_hit.t, zbuf)
        h_shade = lambert(
            hair_hit.nx / shell[0], hair_hit.ny / shell[1], hair_hit.nz / shell[2], hf.light, 0.45
        )
        paint(region, a, _hair_colour(hair_hit.nx, hair_hit.ny, hair_hit.nz, look, h_shade))
        np.copyto(zbuf, hair_hit.t, where=a > 0.5)
    if hs.bun:
        centre = (0.0, ry * 0.72, -rz * 0.6)
        radii = (0.15, 0.14, 0.14)
        sl = hf.sub_window(grid, ctl, look, centre, 0.18)
        if sl is not None:
            bun = ray_ellipsoid(_sub(hf.q0, sl), hf.d, centre, radii, hf.inv_aa)
            z = zbuf[:, sl[0], sl[1]]
            a = bun.cover * _in_front(bun.t, z)
            b_shade = lambert(bun.nx, bun.ny, bun.nz, hf.light, 0.45)
            swirl = F32(0.85) + F32(0.15) * np.sin((bun.nx * bun.nx + bun.ny * bun.ny) * 30.0)
            paint(region[:, :, sl[0], sl[1]], a, shaded(look.hair, b_shade * swirl))
            np.copyto(z, bun.t, where=a > 0.5)

    _paint_hat(region, zbuf, hf, look)
    # Brows show through a fringe or a hat: the face around each brow is drawn again over them
    # (glasses and earrings, which come next, stay in front).
    if hs.volume > 0 or look.spec.hat != "none":
        paint(region, brow_window * skull.cover, skin_colour)
    paint_glasses(region, zbuf, skull, qx, qy, qz, hf, grid, look, ctl)
    _paint_earrings(canvas, hf, grid, look, ctl)


def _paint_hat(region: np.ndarray, zbuf: np.ndarray, hf: HeadFrame, look: Look) -> None:
    kind = look.spec.hat
    if kind == "none":
        return
    rx, ry, rz = look.skull
    over = max(look.hair_shape.volume, 1.0) + (0.08 if kind == "beanie" else 0.05)
    parts: list[tuple[tuple, tuple, float, float]] = []  # centre, radii, keep-above, band
    if kind == "beanie":
        parts.append(((0.0, 0.04, 0.0), (rx * over, ry * over, rz * over), 0.22, 0.36))
    elif kind == "cap":
        parts.append(((0.0, 0.03, 0.0), (rx * over, ry * over, rz * over), 0.32, -1.0))
        parts.append(((0.0, ry * 0.4, rz * 0.92), (rx * 0.78, 0.022, rz * 0.5), -2.0, -1.0))
    else:  # brim
        parts.append(((0.0, ry * 0.62, 0.0), (rx * 0.98, ry * 0.55, rz * 0.98), -0.32, -0.12))
        parts.append(((0.0, ry * 0.45, 0.0), (rx * 1.7, 0.03, rz * 1.65), -2.0, -1.0))
    for centre, radii, keep_above, band in parts:
        hit = ray_ellipsoid(hf.q0, hf.d, centre, radii, hf.inv_aa)
        keep = np.clip((hit.ny - keep_above) * (radii[1] * hf.inv_aa) + 0.5, 0.0, 1.0)
        a = hit.cover * keep * _in_front(hit.t, zbuf)
        shade = lambert(hit.nx / radii[0], hit.ny / radii[1], hit.nz / radii[2], hf.light, 0.5)
        rib = F32(1.0)
        if kind == "beanie":
            rib = F32(0.9) + F32(0.1) * np.sin(hit.nx * F32(30.0))
        colour = shaded(look.hat, shade * rib)
        if band > -1.0:
            in_band = np.clip((band - hit.ny) * (radii[1] * hf.inv_aa) + 0.5, 0.0, 1.0)
            paint(colour, in_band, shaded(look.accent, shade))
        paint(region, a, colour)
        np.copyto(zbuf, hit.t, where=a > 0.5)


def _paint_earrings(
    canvas: np.ndarray, hf: HeadFrame, grid: Grid, look: Look, ctl: Controls
) -> None:
    """Studs or hoops hanging from the lobes; they fade as their ear turns away from the camera."""
    kind = look.spec.earrings
    if kind == "none":
        return
    rx = look.skull[0]
    gold = np.array([0.95, 0.78, 0.3], F32)
    r = 0.022 if kind == "stud" else 0.04
    for side in (-1.0, 1.0):
        lobe = (side * rx * 0.93, look.ear_y - look.ear_radii[1] * 0.85, 0.0)
        x, y, depth = hf.project(ctl, look, lobe)
        visible = np.clip(depth / rx * 3.0 + 1.0, 0.0, 1.0)
        win = grid.window(
            float(x.min()) - r - 0.01,
            float(x.max()) + r + 0.01,
            float(y.min()) - 2 * r - 0.01,
            float(y.max()) + 0.02,
        )
        if win.empty:
            continue
        px, py = win.x - _col(x), win.y - _col(y)
        if kind == "stud":
            sdf = np.sqrt(px * px + py * py) - F32(r)
        else:
            sdf = np.abs(np.sqrt(px * px + (py + F32(r)) ** 2) - F32(r)) - F32(0.007)
        a = coverage(sdf, hf.inv_aa) * _col(visible)
        shine = F32(0.8) + F32(0.4) * np.clip((py - px) * 20.0, 0.0, 1.0)
        paint(canvas[:, :, win.rows, win.cols], a, shaded(gold, shine))
