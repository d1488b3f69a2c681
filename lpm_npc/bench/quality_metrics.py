"""Pure-numpy measurements behind LPM-Bench-synth (see `bench.quality` for the metric definitions).

- `pearson(a, b)`: correlation, 0 when either side is constant (no signal is no sync).
- `psnr_db(a, b)`: PSNR of uint8 frames, peak 255, over all pixels.
- `box_psnr_db(a, b, boxes)`: the same over the pixels inside each frame's box (x0, y0, x1, y1).
- `event_onsets(x, threshold, fps, ...)`: rising edges of x above its running median + threshold,
  at least `refractory_s` apart (a nod = head_pitch dipping down, a brow raise = brow_raise up).
- `segment_mask(turns, speaker, n_frames, fps)`: frames inside a speaker's turns.
- `event_rate(onsets, mask, fps)`: events per second inside a frame mask.

This module knows nothing of models, judges or files.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    if n < 2 or a.std() < 1e-9 or b.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise ValueError(f"psnr: shapes differ {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(10.0 * np.log10(255.0**2 / max(mse, 1e-10)))


def box_psnr_db(a: np.ndarray, b: np.ndarray, boxes: np.ndarray) -> float:
    """PSNR (peak 255) of uint8 frames (T, H, W, C) over the pixels of each frame's box (T, 4),
    x1 / y1 exclusive; the squared errors of all boxes are pooled before the log."""
    if a.shape != b.shape:
        raise ValueError(f"box_psnr: shapes differ {a.shape} vs {b.shape}")
    boxes = np.asarray(boxes)
    if boxes.shape != (len(a), 4):
        raise ValueError(f"box_psnr: boxes must be ({len(a)}, 4), got {boxes.shape}")
    total, count = 0.0, 0
    for frame_a, frame_b, (x0, y0, x1, y1) in zip(a, b, boxes):
        diff = frame_a[y0:y1, x0:x1].astype(np.float64) - frame_b[y0:y1, x0:x1].astype(np.float64)
        total += float(np.sum(diff**2))
        count += diff.size
    if count == 0:
        raise ValueError("box_psnr: every box is empty")
    return float(10.0 * np.log10(255.0**2 / max(total / count, 1e-10)))


def event_onsets(
    x: np.ndarray, threshold: float, fps: float, baseline_s: float, refractory_s: float
) -> np.ndarray:
    """Frame indices where x first exceeds its running median by `threshold`."""
    x = np.asarray(x, np.float64)
    if len(x) == 0:
        return np.zeros(0, np.int64)
    window = max(3, int(round(baseline_s * fps)) | 1)
    above = (x - median_filter(x, size=window, mode="nearest")) > threshold
    rising = np.flatnonzero(above & ~np.concatenate([[False], above[:-1]]))
    gap = refractory_s * fps
    kept: list[int] = []
    for index in rising:
        if not kept or index - kept[-1] >= gap:
            kept.append(int(index))
    return np.asarray(kept, np.int64)


def segment_mask(turns, speaker: str, n_frames: int, fps: float) -> np.ndarray:
    """Boolean (n_frames,) mask of frames inside `speaker`'s turns ("npc", "player", "silence")."""
    mask = np.zeros(n_frames, bool)
    for turn in turns:
        if turn.speaker == speaker:
            a = int(round(turn.start_s * fps))
            b = int(round(turn.end_s * fps))
            mask[max(0, a) : max(0, min(n_frames, b))] = True
    return mask


def event_rate(onsets: np.ndarray, mask: np.ndarray, fps: float) -> tuple[float, float]:
    """(events inside mask, seconds inside mask)."""
    seconds = float(mask.sum()) / fps
    inside = int(mask[onsets].sum()) if len(onsets) else 0
    return float(inside), seconds
