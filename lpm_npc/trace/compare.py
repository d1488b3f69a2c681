"""`trace compare`: diff two performances of one dialogue and write a JSON report and an HTML page.

`compare_traces(a, b=None, *, checkpoint=None, out_dir, base_checkpoint=None) -> report`:
- side A is trace `a` replayed on `base_checkpoint` (default: the default checkpoint); side B is
  trace `b` replayed on the same checkpoint, or (with `checkpoint`) trace `a` replayed on that
  other checkpoint — "yesterday's dialogue on today's model";
- frames are matched by seq; the first differing frame is the smallest seq whose sha256 differs
  (or that only one side has);
- per second (24 frames) both sides are read by the judge (`judge.reader.load_judge` of the base
  checkpoint, one judge for both, so the readings are comparable): lip-sync (Pearson correlation
  of the judge's jaw opening with the SPEAK track's loudness per frame), motion (mean absolute
  frame-to-frame change of head yaw + pitch, degrees) and identity PSNR (dB, side B's frames
  against side A's);
- `out_dir/compare.json` holds the report; `out_dir/compare.html` shows side-by-side contact
  sheets (every `SHEET_STRIDE`-th frame and the first differing one, marked) and the per-second
  metrics as inline SVG plots. Nothing is fetched from the network; the page is self-contained.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from lpm_npc.config import FPS, SAMPLES_PER_FRAME
from lpm_npc.trace.format import Trace, frame_digest, pcm_from_bytes, png_bytes, read_trace
from lpm_npc.trace.replayer import psnr_db, replay

SHEET_STRIDE = 6  # contact sheets show every 6th frame (4 per second at 24 fps)
THUMB = 64  # px side of contact-sheet images


def _frames(trace: Trace, generator: Any) -> dict[int, np.ndarray]:
    frames: dict[int, np.ndarray] = {}
    replay(trace, generator, on_frame=lambda seq, frame, ok: frames.__setitem__(seq, frame))
    return frames


def _loudness(trace: Trace) -> dict[int, float]:
    """RMS of the SPEAK samples each frame shows, by seq."""
    out = {}
    for chunk in trace.chunks:
        speak = pcm_from_bytes(chunk["speak"])
        per_frame = len(speak) // SAMPLES_PER_FRAME
        base = int(chunk["start_sample"]) // SAMPLES_PER_FRAME
        for i in range(per_frame):
            part = speak[i * SAMPLES_PER_FRAME : (i + 1) * SAMPLES_PER_FRAME]
            out[base + i] = float(np.sqrt(np.mean(part**2)))
    return out


def _corr(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def per_second_metrics(
    seqs: list[int],
    frames_a: dict[int, np.ndarray],
    frames_b: dict[int, np.ndarray],
    loudness: dict[int, float],
    judge: Any,
) -> list[dict[str, Any]]:
    """One row per second of the common frames (see the module docstring)."""
    common = [s for s in seqs if s in frames_a and s in frames_b]
    if not common:
        return []
    reading = {
        side: judge.read(np.stack([frames[s] for s in common]))
        for side, frames in (("a", frames_a), ("b", frames_b))
    }
    rows = []
    for second in sorted({s // FPS for s in common}):
        idx = np.array([i for i, s in enumerate(common) if s // FPS == second])
        row: dict[str, Any] = {"second": second}
        loud = np.array([loudness.get(common[i], 0.0) for i in idx])
        for side in ("a", "b"):
            r = reading[side]
            row[f"lip_sync_{side}"] = _corr(r.jaw_open[idx], loud)
            head = np.abs(np.diff(r.head_yaw[idx])) + np.abs(np.diff(r.head_pitch[idx]))
            row[f"motion_{side}"] = float(head.mean()) if len(head) else None
        psnrs = [psnr_db(frames_a[common[i]], frames_b[common[i]]) for i in idx]
        finite = [p for p in psnrs if np.isfinite(p)]
        row["identity_psnr_db"] = float(np.mean(finite)) if finite else None  # None: identical
        rows.append(row)
    return rows


def compare_traces(
    a: str | Path,
    b: str | Path | None = None,
    *,
    checkpoint: str | Path | None = None,
    out_dir: str | Path,
    base_checkpoint: str | Path | None = None,
) -> dict[str, Any]:
    """Compare (see the module docstring); returns the report written to compare.json."""
    from lpm_npc.engine.generator import StreamingGenerator
    from lpm_npc.engine.weights import default_checkpoint_dir
    from lpm_npc.judge.reader import load_judge

    if (b is None) == (checkpoint is None):
        raise ValueError("compare: give trace b or checkpoint (exactly one)")
    base = Path(base_checkpoint) if base_checkpoint else default_checkpoint_dir()
    trace_a = read_trace(a)
    generator = StreamingGenerator.from_checkpoint(base)
    frames_a = _frames(trace_a, generator)
    if b is not None:
        trace_b = read_trace(b)
        frames_b = _frames(trace_b, generator)
        label_b = str(b)
    else:
        trace_b = trace_a
        frames_b = _frames(trace_a, StreamingGenerator.from_checkpoint(checkpoint))
        label_b = f"{a} on {checkpoint}"
    seqs = sorted(set(frames_a) | set(frames_b))
    differing = [
        s
        for s in seqs
        if s not in frames_a
        or s not in frames_b
        or frame_digest(frames_a[s]) != frame_digest(frames_b[s])
    ]
    first = differing[0] if differing else None
    metrics = per_second_metrics(seqs, frames_a, frames_b, _loudness(trace_a), load_judge(base))
    report = {
        "a": str(a),
        "b": label_b,
        "frames": len(seqs),
        "differing": len(differing),
        "first_differing_frame": first,
        "first_differing_pts_ms": None if first is None else first * 1000.0 / FPS,
        "per_second": metrics,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(report, indent=2))
    (out / "compare.html").write_text(_html(report, seqs, frames_a, frames_b, first))
    return report


def _img(frame: np.ndarray | None, marked: bool) -> str:
    if frame is None:
        return '<td class="missing">missing</td>'
    from PIL import Image

    small = np.asarray(Image.fromarray(frame).resize((THUMB, THUMB), Image.BILINEAR))
    data = base64.b64encode(png_bytes(small)).decode()
    style = ' class="diff"' if marked else ""
    return f'<td{style}><img src="data:image/png;base64,{data}"></td>'


def _plot(rows: list[dict[str, Any]], key: str, title: str) -> str:
    """An inline SVG line plot of `key`_a and `key`_b (or `key` alone) per second."""
    width, height = 320, 120
    series = (
        [(f"{key}_a", "#1f77b4"), (f"{key}_b", "#d62728")]
        if f"{key}_a" in (rows[0] if rows else {})
        else [(key, "#2ca02c")]
    )
    values = [r[k] for r in rows for k, _ in series if r.get(k) is not None]
    if not values:
        return f"<div><b>{html.escape(title)}</b>: no data (identical or too short)</div>"
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    lines = []
    for name, color in series:
        points = [
            (i * width / max(1, len(rows) - 1), height - (r[name] - lo) / span * height)
            for i, r in enumerate(rows)
            if r.get(name) is not None
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        lines.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
    return (
        f"<div><b>{html.escape(title)}</b> ({lo:.3g} .. {hi:.3g}; blue A, red B)<br>"
        f'<svg width="{width}" height="{height}" style="border:1px solid #ccc">{"".join(lines)}'
        "</svg></div>"
    )


def _html(
    report: dict[str, Any],
    seqs: list[int],
    frames_a: dict[int, np.ndarray],
    frames_b: dict[int, np.ndarray],
    first: int | None,
) -> str:
    shown = [s for s in seqs if s % SHEET_STRIDE == 0 or s == first]
    head = "".join(f"<th>{s}</th>" for s in shown)
    row_a = "".join(_img(frames_a.get(s), s == first) for s in shown)
    row_b = "".join(_img(frames_b.get(s), s == first) for s in shown)
    verdict = (
        "identical frames"
        if first is None
        else f"{report['differing']} of {report['frames']} frames differ; first differing frame: "
        f"seq {first} ({report['first_differing_pts_ms']:.0f} ms)"
    )
    rows = report["per_second"]
    plots = "".join(
        _plot(rows, key, title)
        for key, title in (
            ("lip_sync", "lip-sync (jaw vs loudness, r)"),
            ("motion", "head motion (deg/frame)"),
            ("identity_psnr_db", "identity PSNR B vs A (dB)"),
        )
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>lpm-npc trace compare</title>
<style>body{{font-family:sans-serif}} td.diff img{{outline:3px solid red}}
table{{border-collapse:collapse}} td,th{{padding:2px;font-size:11px}}</style></head>
<body><h1>Trace compare</h1>
<p>A: {html.escape(report["a"])}<br>B: {html.escape(report["b"])}</p>
<p id="verdict"><b>{html.escape(verdict)}</b></p>
<div style="overflow-x:auto"><table><tr><th>seq</th>{head}</tr>
<tr><th>A</th>{row_a}</tr><tr><th>B</th>{row_b}</tr></table></div>
<h2>Per second</h2><div style="display:flex;gap:16px;flex-wrap:wrap">{plots}</div>
</body></html>
"""
