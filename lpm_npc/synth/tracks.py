"""A performance from given tracks: the NPC's ground-truth motion for any speak/listen audio.

`perform_tracks(speak, listen, turns=None, seed=..., prompt=..., spec=...)` is the one code path
behind every conversation: `director.direct_conversation` calls it with babble it synthesised
(and the synthesizer's exact cues), the `synth conversation --speak/--listen` command with
recorded or TTS audio. It
- converts both tracks to the media clock (any `sample_rate` is resampled to 16 kHz), pads the
  shorter one with silence and both to whole video frames (N = n_frames * 666);
- takes the turns as given (`normalize_turns` fills the silences) or finds them in the audio
  (`prosody.turns_from_audio`);
- takes speech cues as given or analyses them (`prosody.cues_from_audio`: phrase ends from pauses,
  rising phrases from the pitch track, stressed syllables from loudness peaks);
- performs (`performance.perform`) with the prompt's style and the character's temperament.
Deterministic: the same tracks, turns, seed, prompt and character give the same bytes. This module
neither synthesises audio nor renders.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import numpy as np

from lpm_npc.config import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from lpm_npc.synth.audio_io import resample_pcm, validate_pcm
from lpm_npc.synth.performance import S_PROMPT, perform, stream_rng, temperament
from lpm_npc.synth.prompts import parse_prompt, random_prompt
from lpm_npc.synth.prosody import cues_from_audio, turns_from_audio
from lpm_npc.synth.script import Conversation, Script, SpeechCues, Turn, normalize_turns

if TYPE_CHECKING:
    from lpm_npc.synth.character import CharacterSpec

MIN_SECONDS = 0.5
MAX_SECONDS = 3600.0


def character_key(spec: CharacterSpec | None, seed: int) -> int:
    """What keys a character's voice and temperament: its seed; a hand-built spec (seed -1) its
    attributes; no spec the conversation seed."""
    if spec is not None:
        return spec.seed if spec.seed >= 0 else zlib.crc32(repr(spec).encode())
    return int(seed)


def align_tracks(
    speak: np.ndarray | None, listen: np.ndarray | None, sample_rate: int = SAMPLE_RATE
) -> tuple[np.ndarray, np.ndarray]:
    """Both tracks at 16 kHz, the shorter (or a missing one) padded with silence, and both
    padded to whole video frames."""
    if speak is None and listen is None:
        raise ValueError("need at least one of the speak and listen tracks")
    tracks = []
    for name, pcm in (("speak", speak), ("listen", listen)):
        if pcm is None:
            tracks.append(np.zeros(0, np.float32))
            continue
        pcm = validate_pcm(pcm, name)
        if sample_rate != SAMPLE_RATE:
            pcm = resample_pcm(pcm, sample_rate, SAMPLE_RATE)
        tracks.append(np.clip(pcm, -1.0, 1.0).astype(np.float32))
    n_frames = -(-max(len(t) for t in tracks) // SAMPLES_PER_FRAME)
    seconds = max(len(t) for t in tracks) / SAMPLE_RATE
    # Frames are counted as the director counts them (round(seconds * 16000) // 666).
    if not int(MIN_SECONDS * SAMPLE_RATE) // SAMPLES_PER_FRAME <= n_frames or seconds > MAX_SECONDS:
        raise ValueError(f"tracks last {seconds:.3f} s; allowed: {MIN_SECONDS} .. {MAX_SECONDS} s")
    n_samples = n_frames * SAMPLES_PER_FRAME
    speak_track, listen_track = (np.pad(t, (0, n_samples - len(t))) for t in tracks)
    return speak_track, listen_track


def perform_tracks(
    speak: np.ndarray | None,
    listen: np.ndarray | None,
    turns: list[Turn] | tuple[Turn, ...] | None = None,
    *,
    seed: int = 0,
    prompt: str | None = None,
    spec: CharacterSpec | None = None,
    cues: SpeechCues | None = None,
    sample_rate: int = SAMPLE_RATE,
    npc_voice: str = "given",
    player_voice: str = "given",
) -> Conversation:
    """The NPC's performance of a conversation whose audio is given (see the module docstring).

    `speak` is the NPC's voice, `listen` the player's (either may be None = silent); `turns`
    None = found in the audio; `prompt` None = a random prompt from `seed`, "" = neutral; `spec`
    keys the character's listening temperament; `cues` None = analysed from the audio; the voice
    names are recorded in the script.
    """
    seed = int(seed)
    speak_track, listen_track = align_tracks(speak, listen, sample_rate)
    n = len(speak_track) // SAMPLES_PER_FRAME
    duration = n * SAMPLES_PER_FRAME / SAMPLE_RATE
    if prompt is None:
        prompt = random_prompt(stream_rng(seed, S_PROMPT))
    style = parse_prompt(prompt)
    if turns is None:
        script_turns = turns_from_audio(speak_track, listen_track)
    else:
        script_turns = normalize_turns(turns, duration)
    if cues is None:
        cues = cues_from_audio(speak_track, listen_track)
    motion = perform(
        seed,
        n,
        script_turns,
        cues,
        speak_track,
        style,
        temperament(character_key(spec, seed)),
    )
    phrase_ends = tuple(p for p in cues.phrase_ends if 0.0 <= p.time_s < n / FPS)
    script = Script(seed, prompt, tuple(script_turns), phrase_ends, npc_voice, player_voice)
    return Conversation(speak_track, listen_track, motion, script)
