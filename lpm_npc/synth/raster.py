"""Vectorised anti-aliased rasterisation helpers shared by the character renderer.

Everything works on float32 numpy arrays laid out (G, h, w) — G frames of one window of the image —
with per-frame parameters shaped (G, 1, 1) so one numpy call serves a whole group of frames. Colour
images are planar, (3, G, h, w), so every channel operation runs over contiguous memory. Shapes
are analytic signed distances (negative inside); coverage is a one-pixel linear ramp across the
edge. Rays are orthographic and intersect ellipsoids in closed form.

World coordinates: x to the viewer's right, y up, the image spans [-1/zoom, 1/zoom] on both axes.
This module knows nothing about characters; it draws nothing by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

F32 = np.float32
# The clip ufunc itself: np.clip's Python wrapper costs more than the work on small windows.
_clip = np.clip if not hasattr(np, "_core") else np._core.umath.clip


@dataclass(frozen=True)
class Window:
    """A rectangular pixel window of the image and the world coordinates of its pixel centres."""

    rows: slice  # image rows covered
    cols: slice  # image columns covered
    x: np.ndarray  # (1, 1, w) world x of each column
    y: np.ndarray  # (1, h, 1) world y of each row

    @property
    def empty(self) -> bool:
        return self.rows.stop <= self.rows.start or self.cols.stop <= self.cols.start

    def sub(self, outer: Window) -> tuple[slice, slice]:
        """This window's position inside `outer` (which must contain it), as slices."""
        return (
            slice(self.rows.start - outer.rows.start, self.rows.stop - outer.rows.start),
            slice(self.cols.start - outer.cols.start, self.cols.stop - outer.cols.start),
        )


class Grid:
    """Pixel centres of a square image of `size` px showing the world square of half-side 1/zoom
    centred on (0, centre_y)."""

    def __init__(self, size: int, zoom: float = 1.0, centre_y: float = 0.0) -> None:
        self.size = size
        self.zoom = zoom
        self.centre_y = centre_y
        self.pixel = F32(2.0 / (size * zoom))  # world units per pixel
        centres = ((np.arange(size, dtype=np.float64) + 0.5) / size * 2.0 - 1.0) / zoom
        self.xs = centres.astype(F32)
        self.ys = (centre_y - centres).astype(F32)  # row 0 is the top of the image

    def window(self, x0: float, x1: float, y0: float, y1: float) -> Window:
        """The pixels whose centres lie in world box [x0, x1] × [y0, y1] (clamped to the image)."""
        s, z = self.size, self.zoom
        c0 = int(np.clip(np.floor((x0 * z + 1.0) * s / 2.0 - 0.5), 0, s))
        c1 = int(np.clip(np.ceil((x1 * z + 1.0) * s / 2.0 + 0.5), 0, s))
        y0, y1 = y0 - self.centre_y, y1 - self.centre_y
        r0 = int(np.clip(np.floor((1.0 - y1 * z) * s / 2.0 - 0.5), 0, s))
        r1 = int(np.clip(np.ceil((1.0 - y0 * z) * s / 2.0 + 0.5), 0, s))
        c1, r1 = max(c1, c0), max(r1, r0)
        return Window(
            rows=slice(r0, r1),
            cols=slice(c0, c1),
            x=self.xs[c0:c1].reshape(1, 1, -1),
            y=self.ys[r0:r1].reshape(1, -1, 1),
        )

    def inside(
        self, parent: Window, x0: float, x1: float, y0: float, y1: float
    ) -> tuple[Window, tuple[slice, slice]] | None:
        """The part of world box [x0, x1] × [y0, y1] inside `parent`, and its slices there."""
        win = self.window(x0, x1, y0, y1)
        rows = slice(max(win.rows.start, parent.rows.start), min(win.rows.stop, parent.rows.stop))
        cols = slice(max(win.cols.start, parent.cols.start), min(win.cols.stop, parent.cols.stop))
        if rows.stop <= rows.start or cols.stop <= cols.start:
            return None
        inner = Window(
            rows=rows,
            cols=cols,
            x=self.xs[cols].reshape(1, 1, -1),
            y=self.ys[rows].reshape(1, -1, 1),
        )
        return inner, inner.sub(parent)

    def full(self) -> Window:
        span = 2.0 / self.zoom
        return self.window(-span, span, self.centre_y - span, self.centre_y + span)


def coverage(sdf: np.ndarray, inv_aa: float | np.ndarray) -> np.ndarray:
    """Fraction of a pixel inside a shape from its signed distance (`inv_aa` = 1 / pixel size)."""
    return _clip(F32(0.5) - sdf * inv_aa, F32(0.0), F32(1.0))


def paint(dst: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    """In place `dst = dst + alpha * (colour - dst)`.

    dst: planar (3, ...); alpha: (...); colour: (3,) constant or planar (3, ...).
    """
    tmp = np.empty(np.broadcast_shapes(dst.shape[1:], alpha.shape), F32)
    for c in range(3):
        np.subtract(colour[c], dst[c], out=tmp)
        tmp *= alpha
        dst[c] += tmp


def shaded(colour: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """A planar colour image (3, ...) = constant colour (3,) × per-pixel factor (...)."""
    return colour.reshape((3,) + (1,) * factor.ndim) * factor


def ellipse_sdf(x: np.ndarray, y: np.ndarray, rx, ry) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse centred at the origin.

    Uses the gradient-normalised implicit function, which is exact on the boundary and good within
    a few pixels of it, which is all anti-aliasing needs.
    """
    u = x / rx
    v = y / ry
    k0 = np.sqrt(u * u + v * v)
    k1 = np.sqrt((u / rx) ** 2 + (v / ry) ** 2) + F32(1e-6)
    return k0 * (k0 - F32(1.0)) / k1


def circle_sdf(x: np.ndarray, y: np.ndarray, r) -> np.ndarray:
    return np.sqrt(x * x + y * y) - r


def box_sdf(x: np.ndarray, y: np.ndarray, hx, hy, radius=0.0) -> np.ndarray:
    """Signed distance to a box of half sizes (hx, hy) with rounded corners, centred at the origin."""
    qx = np.abs(x) - (hx - radius)
    qy = np.abs(y) - (hy - radius)
    outside = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
    inside = np.minimum(np.maximum(qx, qy), 0.0)
    return outside + inside - radius


@dataclass
class Hit:
    """Front (and optionally back) intersection of a bundle of rays with one ellipsoid."""

    cover: np.ndarray  # (G, h, w) silhouette coverage in [0, 1]
    sdf: np.ndarray  # (G, h, w) estimated signed distance to the silhouette, world units
    t: np.ndarray  # (G, h, w) view depth of the near hit (larger = nearer the camera)
    nx: np.ndarray  # (G, h, w) hit point in the ellipsoid's normalised frame (unit sphere)
    ny: np.ndarray
    nz: np.ndarray
    t_back: np.ndarray | None = None  # depth of the far hit, when asked for
    bx: np.ndarray | None = None  # far hit, normalised frame
    by: np.ndarray | None = None
    bz: np.ndarray | None = None


def ray_ellipsoid(
    q0: tuple[np.ndarray, np.ndarray, np.ndarray],
    d: tuple[np.ndarray, np.ndarray, np.ndarray],
    centre: tuple[float, float, float],
    radii: tuple[float, float, float],
    inv_aa: float,
    back: bool = False,
) -> Hit:
    """Intersect rays q(t) = q0 + t·d (in the object's local frame) with an ellipsoid.

    q0: ray origins on the view plane, local frame, each (G, h, w); d: ray direction, each (G, 1, 1)
    (unit length). The silhouette distance is estimated from the discriminant, which for a sphere of
    radius r equals (r² − ρ²)/r² with ρ the distance to the axis.
    """
    rx, ry, rz = (F32(r) for r in radii)
    ox, oy, oz = (F32(c) for c in centre)
    ux = (q0[0] - ox) / rx
    uy = (q0[1] - oy) / ry
    uz = (q0[2] - oz) / rz
    dx, dy, dz = d[0] / rx, d[1] / ry, d[2] / rz
    a = dx * dx + dy * dy + dz * dz  # (G,1,1)
    b = ux * dx + uy * dy + uz * dz  # half of the usual b
    c = ux * ux + uy * uy + uz * uz - F32(1.0)
    disc = (b * b - a * c) / a  # dimensionless; >0 inside the silhouette
    r_mean = F32((rx + ry + rz) / 3.0)
    sdf = -disc * (r_mean * F32(0.5))
    cover = coverage(sdf, inv_aa)
    root = np.sqrt(np.maximum(disc * a, F32(0.0)))
    t = (root - b) / a
    hit = Hit(cover=cover, sdf=sdf, t=t, nx=ux + t * dx, ny=uy + t * dy, nz=uz + t * dz)
    if back:
        tb = (-root - b) / a
        hit.t_back = tb
        hit.bx, hit.by, hit.bz = ux + tb * dx, uy + tb * dy, uz + tb * dz
    return hit


def lambert(
    nx: np.ndarray, ny: np.ndarray, nz: np.ndarray, light: tuple[np.ndarray, ...], ambient: float
) -> np.ndarray:
    """Ambient + diffuse shade of unit-ish normals under a light direction (each (G,1,1))."""
    inv = F32(1.0) / np.sqrt(nx * nx + ny * ny + nz * nz + F32(1e-6))
    ndl = (nx * light[0] + ny * light[1] + nz * light[2]) * inv
    return F32(ambient) + F32(1.0 - ambient) * np.clip(ndl, F32(0.0), F32(1.0))
