"""The sheets `lpm-npc demo` writes: generated frames, and ground truth beside generated frames.

- `contact_sheet`: a grid of frames with captions (the demo's generated frames).
- `truth_moments`: the ground truth of the conversation the demo streamed -- the procedural
  world's performance (`synth.tracks.perform_tracks`, as `lpm-npc synth conversation --speak
  --listen --character` runs it) of the same character and the same two tracks, rendered by
  `synth.render` at the demo's frame size -- at the moments `pick_moments` chooses from it.
- `pick_moments`: frames to compare, chosen by kind from the truth's turns and motion: speaking
  (an NPC turn, the truth's jaw the widest open), listening (the player talks alone) and idle
  (shared silence), the latter two at the middles of their longest stretches.
- `truth_vs_generated_sheet`: one column per moment, the truth frame above the generated frame at
  the same frame index, each column labelled with the moment's kind and time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lpm_npc.config import FPS

if TYPE_CHECKING:
    from lpm_npc.synth.character import CharacterSpec

# A moment's kind and the director's per-frame state it is read from (`state_per_frame`).
MOMENT_STATES = {"speaking": "npc", "listening": "player", "idle": "silence"}


@dataclass(frozen=True)
class Moment:
    """One frame to compare: its kind (a key of MOMENT_STATES) and its index on the video clock."""

    kind: str
    frame: int

    @property
    def seconds(self) -> float:
        return self.frame / FPS


def _depth(mask: np.ndarray) -> np.ndarray:
    """Per frame, how deep it sits in its run of True (1 at a run's ends); -inf outside runs."""
    depth = np.full(len(mask), -np.inf)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        i = np.arange(start, stop)
        depth[start:stop] = np.minimum(i - start + 1, stop - i)
    return depth


def pick_moments(
    turns: Sequence,
    jaw_open: np.ndarray,
    *,
    per_kind: int = 2,
    min_gap: int = FPS,
) -> list[Moment]:
    """Up to `per_kind` frames of each kind from a conversation's truth, sorted by frame.

    `turns` are the script's `Turn`s (an NPC turn wins over an overlapping player turn, as in the
    performance), `jaw_open` the truth's per-frame jaw (its length is the clip's). Speaking picks
    the NPC frames with the widest jaw, listening and idle the frames deepest inside their runs;
    picks of one kind stay `min_gap` frames apart (ties go to the earlier frame).
    """
    from lpm_npc.synth.performance import state_per_frame

    jaw_open = np.asarray(jaw_open, np.float64)
    state = state_per_frame(turns, len(jaw_open))
    moments = []
    for kind, who in MOMENT_STATES.items():
        mask = state == who
        score = np.where(mask, jaw_open, -np.inf) if kind == "speaking" else _depth(mask)
        for _ in range(per_kind):
            best = int(np.argmax(score)) if len(score) else 0
            if not len(score) or not np.isfinite(score[best]):
                break
            moments.append(Moment(kind, best))
            score[max(0, best - min_gap + 1) : best + min_gap] = -np.inf
    return sorted(moments, key=lambda m: m.frame)


def truth_moments(
    spec: CharacterSpec,
    speak: np.ndarray,
    listen: np.ndarray,
    turns: Sequence,
    *,
    seed: int,
    size: int,
    n_frames: int,
    prompt: str = "",
) -> tuple[list[Moment], np.ndarray]:
    """The truth of a streamed conversation at its picked moments: (moments, frames (K, S, S, 3)).

    `spec` is the character (`synth.conversation.resolve_character` of the registered sheet); the
    tracks are as heard, `turns` as scripted; moments are picked among the first `n_frames`.
    """
    from lpm_npc.synth.motion import Motion
    from lpm_npc.synth.render import render_frames
    from lpm_npc.synth.tracks import perform_tracks

    truth = perform_tracks(speak, listen, turns, seed=seed, prompt=prompt, spec=spec)
    n = min(n_frames, truth.motion.n_frames)
    moments = pick_moments(truth.script.turns, truth.motion.jaw_open[:n])
    rows = [m.frame for m in moments]
    picked = Motion.from_arrays({k: v[rows] for k, v in truth.motion.to_arrays().items()})
    return moments, render_frames(spec, picked, size)


def _font(size: int):  # noqa: ANN202
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def contact_sheet(frames, times, labels, path: Path, columns: int = 4, cell: int = 192) -> None:  # noqa: ANN001
    """Frames in a grid, each captioned "<t> s  <label>" (just the label where t is None)."""
    from PIL import Image, ImageDraw

    rows = (len(frames) + columns - 1) // columns
    canvas = Image.new("RGB", (columns * cell, rows * (cell + 18)), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    for i, (frame, t, label) in enumerate(zip(frames, times, labels, strict=True)):
        x, y = (i % columns) * cell, (i // columns) * (cell + 18)
        canvas.paste(Image.fromarray(frame).resize((cell, cell), Image.Resampling.NEAREST), (x, y))
        caption = label if t is None else f"{t:5.2f} s  {label}"
        draw.text((x + 4, y + cell + 3), caption, fill=(230, 230, 230))
    canvas.save(path)


def truth_vs_generated_sheet(
    moments: Sequence[Moment],
    truth: np.ndarray,
    generated: np.ndarray,
    path: Path,
    *,
    title: str = "",
    cell: int = 192,
) -> None:
    """One column per moment: the truth frame above the generated frame (same frame index)."""
    from PIL import Image, ImageDraw

    if not len(moments) == len(truth) == len(generated):
        raise ValueError(f"{len(moments)} moments, {len(truth)} truth, {len(generated)} generated")
    left, top, head, gap = 96, 30, 22, 4
    width = left + len(moments) * (cell + gap)
    canvas = Image.new("RGB", (width, top + head + 2 * cell + gap + 6), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    small, big = _font(13), _font(15)
    draw.text((8, 8), title, fill=(230, 230, 230), font=big)
    for row, name in enumerate(("truth", "generated")):
        draw.text(
            (8, top + head + row * (cell + gap) + cell // 2 - 8),
            name,
            fill=(230, 230, 230),
            font=big,
        )
    colours = {"speaking": (255, 170, 90), "listening": (120, 200, 255), "idle": (180, 180, 180)}
    for col, (moment, a, b) in enumerate(zip(moments, truth, generated, strict=True)):
        x = left + col * (cell + gap)
        caption = f"{moment.kind}  {moment.seconds:.2f} s  (frame {moment.frame})"
        draw.text(
            (x + 2, top + 3), caption, fill=colours.get(moment.kind, (230, 230, 230)), font=small
        )
        for row, frame in enumerate((a, b)):
            image = Image.fromarray(np.asarray(frame)).resize(
                (cell, cell), Image.Resampling.NEAREST
            )
            canvas.paste(image, (x, top + head + row * (cell + gap)))
    canvas.save(path)
