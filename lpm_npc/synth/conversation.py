"""Conversation clips on disk: direct a conversation, render it, and write a clip folder.

A clip folder holds five files:
- `speak.wav`, `listen.wav`: 16 kHz mono PCM16, the NPC's and the player's tracks, equal length;
- `motion.npz`: `Motion.to_arrays()`, one row per video frame;
- `script.json`: turns, phrase ends, prompt, voices, conversation seed and character seed;
- `video.mp4`: the rendered frames at 24 fps (H.264) with both tracks mixed in as AAC audio.
The character is `CharacterSpec.from_seed(seed)` unless a designer sheet is given, whose `seed`
picks the spec. `make_conversation_clip` directs babble (`director.py`); `make_tracks_clip`
performs given speak/listen WAVs (any rate or channel count, converted to 16 kHz mono; the
shorter padded with silence) with turns from a `--turns` file or from the audio
(`tracks.perform_tracks`). This module neither synthesises audio nor directs motion itself and
knows nothing of the CLI.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from lpm_npc.config import FPS, SAMPLE_RATE, SheetLimits
from lpm_npc.synth.audio_io import write_wav
from lpm_npc.synth.director import Conversation, direct_conversation
from lpm_npc.synth.video_io import write_mp4

if TYPE_CHECKING:
    from lpm_npc.synth.character import CharacterSpec

log = logging.getLogger(__name__)

CLIP_FILES = ("speak.wav", "listen.wav", "motion.npz", "script.json", "video.mp4")
_RENDER_CHUNK = 48  # frames rendered per call: bounds memory and drives the progress bar


@dataclass(frozen=True)
class ClipSummary:
    """What was written: the folder, its files and the clip's shape."""

    out_dir: Path
    files: tuple[str, ...]
    n_frames: int
    seconds: float
    size: int
    prompt: str
    seed: int
    character_seed: int

    def to_json(self) -> dict:
        return {
            "out_dir": str(self.out_dir),
            "files": list(self.files),
            "n_frames": self.n_frames,
            "seconds": self.seconds,
            "size": self.size,
            "fps": FPS,
            "sample_rate": SAMPLE_RATE,
            "prompt": self.prompt,
            "seed": self.seed,
            "character_seed": self.character_seed,
        }


def mix_tracks(speak: np.ndarray, listen: np.ndarray) -> np.ndarray:
    """Both tracks summed into one, scaled down only if the sum would clip."""
    mixed = speak.astype(np.float32) + listen.astype(np.float32)
    peak = float(np.abs(mixed).max()) if len(mixed) else 0.0
    return mixed / peak if peak > 1.0 else mixed


def render_conversation(
    spec: CharacterSpec, conversation: Conversation, size: int, *, progress: bool = False
) -> np.ndarray:
    """Render every frame of the conversation: uint8 (T, size, size, 3)."""
    from lpm_npc.synth.render import render_frames

    motion = conversation.motion
    chunks = []
    starts = range(0, motion.n_frames, _RENDER_CHUNK)
    for start in tqdm(starts, desc="render", unit="chunk", disable=not progress, leave=False):
        chunks.append(render_frames(spec, motion.slice(start, start + _RENDER_CHUNK), size))
    return np.concatenate(chunks, axis=0)


def resolve_character(
    seed: int, character_dir: str | Path | None
) -> tuple[CharacterSpec, int, str | None]:
    """(CharacterSpec, character_seed, sheet name or None) for a conversation."""
    from lpm_npc.synth.character import CharacterSpec

    if character_dir is None:
        return CharacterSpec.from_seed(seed), int(seed), None
    from lpm_npc.synth.sheet import load_sheet

    sheet = load_sheet(Path(character_dir), SheetLimits())
    if sheet.seed is None:
        # A hand-made sheet cannot be re-rendered procedurally; the conversation seed stands in.
        log.warning("sheet %s has no seed; rendering CharacterSpec.from_seed(%d)", sheet.name, seed)
        return CharacterSpec.from_seed(seed), int(seed), sheet.name
    return CharacterSpec.from_seed(int(sheet.seed)), int(sheet.seed), sheet.name


def write_clip(
    out_dir: str | Path,
    conversation: Conversation,
    frames: np.ndarray,
    *,
    character_seed: int,
    sheet_name: str | None = None,
) -> Path:
    """Write the five clip files of a rendered conversation into `out_dir`."""
    out = Path(out_dir)
    if frames.shape[0] != conversation.motion.n_frames:
        raise ValueError(
            f"frames has {frames.shape[0]} frames; must equal motion.n_frames "
            f"({conversation.motion.n_frames})"
        )
    out.mkdir(parents=True, exist_ok=True)
    write_wav(out / "speak.wav", conversation.speak)
    write_wav(out / "listen.wav", conversation.listen)
    np.savez(out / "motion.npz", **conversation.motion.to_arrays())
    script = conversation.script.to_json()
    script.update(
        character_seed=int(character_seed),
        character_sheet=sheet_name,
        fps=FPS,
        sample_rate=SAMPLE_RATE,
        n_frames=int(conversation.motion.n_frames),
    )
    (out / "script.json").write_text(json.dumps(script, indent=2))
    write_mp4(
        out / "video.mp4", frames, FPS, audio=mix_tracks(conversation.speak, conversation.listen)
    )
    return out


def _check_size(size: int) -> None:
    from lpm_npc.synth.render import MAX_SIZE, MIN_SIZE

    if not MIN_SIZE <= size <= MAX_SIZE or size % 2:
        raise ValueError(f"size must be an even number in [{MIN_SIZE}, {MAX_SIZE}], got {size}")


def _render_and_write(
    conversation: Conversation,
    spec: CharacterSpec,
    size: int,
    out_dir: str | Path,
    *,
    character_seed: int,
    sheet_name: str | None,
    progress: bool,
) -> ClipSummary:
    frames = render_conversation(spec, conversation, size, progress=progress)
    out = write_clip(
        out_dir, conversation, frames, character_seed=character_seed, sheet_name=sheet_name
    )
    return ClipSummary(
        out_dir=out,
        files=CLIP_FILES,
        n_frames=conversation.motion.n_frames,
        seconds=len(conversation.speak) / SAMPLE_RATE,
        size=size,
        prompt=conversation.script.prompt,
        seed=int(conversation.script.seed),
        character_seed=character_seed,
    )


def make_tracks_clip(
    speak_path: str | Path | None,
    listen_path: str | Path | None,
    size: int,
    out_dir: str | Path,
    *,
    turns_path: str | Path | None = None,
    character_dir: str | Path | None = None,
    seed: int = 0,
    prompt: str | None = None,
    progress: bool = False,
) -> ClipSummary:
    """Perform, render and write the ground truth of given tracks (see the module docstring).

    A missing track (None) is silence. Unreadable WAVs raise ValueError or FileNotFoundError
    naming the file.
    """
    from lpm_npc.synth.audio_io import read_wav
    from lpm_npc.synth.script import turns_from_json
    from lpm_npc.synth.tracks import perform_tracks

    _check_size(size)
    if speak_path is None and listen_path is None:
        raise ValueError("need --speak or --listen (a WAV file); got neither")
    tracks = [None if p is None else read_wav(p, resample=True) for p in (speak_path, listen_path)]
    turns = None if turns_path is None else turns_from_json(turns_path)
    spec, character_seed, sheet_name = resolve_character(seed, character_dir)
    names = [
        f"file:{Path(p).name}" if p is not None else "silent" for p in (speak_path, listen_path)
    ]
    try:
        conversation = perform_tracks(
            tracks[0],
            tracks[1],
            turns,
            seed=seed,
            prompt=prompt,
            spec=spec,
            npc_voice=names[0],
            player_voice=names[1],
        )
    except ValueError as error:  # name the file the bad value came from
        if turns_path is not None and str(error).startswith("turns["):
            raise ValueError(f"{turns_path}: {error}") from error
        if str(error).startswith("tracks last"):
            files = ", ".join(str(p) for p in (speak_path, listen_path) if p is not None)
            raise ValueError(f"{files}: {error}") from error
        raise
    return _render_and_write(
        conversation,
        spec,
        size,
        out_dir,
        character_seed=character_seed,
        sheet_name=sheet_name,
        progress=progress,
    )


def make_conversation_clip(
    seed: int,
    seconds: float,
    size: int,
    out_dir: str | Path,
    *,
    character_dir: str | Path | None = None,
    prompt: str | None = None,
    progress: bool = False,
) -> ClipSummary:
    """Direct, render and write one conversation clip (see the module docstring)."""
    _check_size(size)
    spec, character_seed, sheet_name = resolve_character(seed, character_dir)
    conversation = direct_conversation(seed, seconds, prompt=prompt, spec=spec)
    return _render_and_write(
        conversation,
        spec,
        size,
        out_dir,
        character_seed=character_seed,
        sheet_name=sheet_name,
        progress=progress,
    )
