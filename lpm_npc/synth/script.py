"""What happens in a conversation: turns, phrase ends, speech cues, and the directed result.

`Turn`, `PhraseEnd`, `Script` and `Conversation` are the records the director writes (re-exported
by `synth.director`); `SpeechCues` are the timing cues the performance reacts to (stressed
syllables and phrase ends, from the babble synthesizer's ground truth or from audio analysis).
`normalize_turns(turns, duration)` checks turns against a clip and fills the stretches nobody
talks in with "silence" turns; `turns_from_json` reads the `--turns` file (a list of
`{"speaker", "start_s", "end_s"}` or a script.json-like `{"turns": [...]}`), naming the bad entry
and field. This module neither analyses audio nor directs motion.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lpm_npc.synth.motion import Motion

SPEAKERS = ("npc", "player", "silence")


@dataclass(frozen=True)
class Turn:
    """One stretch of the script: who talks from start_s to end_s ("silence" = nobody)."""

    speaker: str  # one of SPEAKERS
    start_s: float
    end_s: float


@dataclass(frozen=True)
class PhraseEnd:
    """Where a speaker finished a phrase (ground truth for nods and brow raises)."""

    speaker: str  # "npc" or "player"
    time_s: float
    rising: bool  # question-like rising pitch


@dataclass(frozen=True)
class SpeechCues:
    """Timing cues of both tracks that the performance reacts to (video-clock frames)."""

    npc_stress: np.ndarray  # (K,) int64 frames where a stressed NPC syllable starts (beats)
    player_stress: np.ndarray  # (L,) int64 frames where a stressed player syllable starts
    phrase_ends: tuple[PhraseEnd, ...]  # both speakers, sorted by time


@dataclass(frozen=True)
class Script:
    """What happens in a conversation, in seconds on the shared clock."""

    seed: int
    prompt: str
    turns: tuple[Turn, ...]
    phrase_ends: tuple[PhraseEnd, ...]
    npc_voice: str
    player_voice: str

    def to_json(self) -> dict:
        return {
            "seed": self.seed,
            "prompt": self.prompt,
            "npc_voice": self.npc_voice,
            "player_voice": self.player_voice,
            "turns": [
                {"speaker": t.speaker, "start_s": round(t.start_s, 4), "end_s": round(t.end_s, 4)}
                for t in self.turns
            ],
            "phrase_ends": [
                {"speaker": p.speaker, "time_s": round(p.time_s, 4), "rising": p.rising}
                for p in self.phrase_ends
            ],
        }


@dataclass(frozen=True)
class Conversation:
    """A directed conversation: aligned tracks, per-frame motion and the script."""

    speak: np.ndarray  # (N,) float32, the NPC's voice (N = motion.n_frames * 666)
    listen: np.ndarray  # (N,) float32, the player's voice
    motion: Motion
    script: Script


def normalize_turns(turns: list[Turn] | tuple[Turn, ...], duration: float) -> list[Turn]:
    """Spoken turns clipped to [0, duration], sorted, with silence turns filling the gaps.

    Given silence turns are dropped and recomputed, so the result covers [0, duration] exactly
    once outside spoken turns (NPC and player turns may overlap each other).
    """
    spoken: list[Turn] = []
    for i, turn in enumerate(turns):
        if turn.speaker not in SPEAKERS:
            raise ValueError(f"turns[{i}].speaker is {turn.speaker!r}; allowed: {SPEAKERS}")
        if not (np.isfinite(turn.start_s) and np.isfinite(turn.end_s)):
            raise ValueError(f"turns[{i}]: start_s and end_s must be finite numbers")
        if not 0.0 <= turn.start_s < turn.end_s:
            raise ValueError(
                f"turns[{i}]: need 0 <= start_s < end_s, got {turn.start_s} .. {turn.end_s}"
            )
        if turn.start_s >= duration:
            raise ValueError(
                f"turns[{i}].start_s is {turn.start_s}; allowed: below the tracks' length "
                f"{duration:.3f} s"
            )
        if turn.speaker != "silence":
            spoken.append(Turn(turn.speaker, float(turn.start_s), min(float(turn.end_s), duration)))
    out: list[Turn] = []
    covered = 0.0
    for turn in sorted(spoken, key=lambda t: (t.start_s, t.end_s)):
        if turn.start_s > covered + 1e-6:
            out.append(Turn("silence", covered, turn.start_s))
        out.append(turn)
        covered = max(covered, turn.end_s)
    if covered < duration - 1e-6:
        out.append(Turn("silence", covered, duration))
    return out


def turns_from_json(path: str | Path) -> list[Turn]:
    """Read a `--turns` file (see the module docstring); ValueError names the bad entry."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"turns file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON: {error}") from error
    if isinstance(data, dict):
        data = data.get("turns")
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of turns or an object with a 'turns' list")
    turns = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: turns[{i}] must be an object")
        for key in ("speaker", "start_s", "end_s"):
            if key not in entry:
                raise ValueError(f"{path}: turns[{i}] lacks '{key}'")
        try:
            start, end = float(entry["start_s"]), float(entry["end_s"])
        except (TypeError, ValueError):
            raise ValueError(f"{path}: turns[{i}]: start_s and end_s must be numbers") from None
        turns.append(Turn(str(entry["speaker"]), start, end))
    return turns
