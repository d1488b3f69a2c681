"""Conversation director: scripts a two-party babble conversation and its ground-truth motion.

`direct_conversation(seed, seconds, prompt=..., spec=...)` lays out turns (NPC, player, shared
silences, occasional overlaps), synthesizes the speak track (babble in the NPC's voice) and the
listen track (babble in the player's voice), and hands both, with the turns and the
synthesizer's exact cues (stressed syllables, phrase ends, rising phrases), to
`tracks.perform_tracks` -- the same code path that performs recorded or TTS audio. The behaviours
(lip-sync, beats, listening nods, brows, smiles, gaze, blinks, idle) are in `performance.py`; the
prompt (`prompts.parse_prompt`) sets expression weights, motion amplitude, head pose, gaze, blink
and speech rates.
Both tracks are float32 16 kHz with len = n_frames * 666 where n_frames = round(seconds*16000)//666.
Everything is deterministic from the seed: each component draws from its own random stream, so a
prompt changes amplitudes and biases without reshuffling the timing. This module renders nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lpm_npc.config import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from lpm_npc.synth.performance import S_AUDIO, S_PROMPT, S_SCRIPT, S_VOICE, stream_rng
from lpm_npc.synth.prompts import parse_prompt, random_prompt
from lpm_npc.synth.script import (
    SPEAKERS,
    Conversation,
    PhraseEnd,
    Script,
    SpeechCues,
    Turn,
)
from lpm_npc.synth.speech import VOICES, Utterance, Voice, synthesize
from lpm_npc.synth.tracks import MAX_SECONDS, MIN_SECONDS, character_key, perform_tracks

if TYPE_CHECKING:
    from lpm_npc.synth.character import CharacterSpec

__all__ = [
    "SPEAKERS",
    "Conversation",
    "PhraseEnd",
    "Script",
    "Turn",
    "direct_conversation",
    "voice_for_character",
]


def voice_for_character(spec: CharacterSpec | None, seed: int) -> Voice:
    """The NPC's voice: fixed per character (from its seed) so a character always sounds alike.

    A hand-built spec (seed -1) is keyed by its attributes; no spec keys by the conversation seed.
    """
    names = sorted(VOICES)
    key = character_key(spec, seed)
    return VOICES[names[int(stream_rng(key, S_VOICE).integers(len(names)))]]


def _plan_turns(rng: np.random.Generator, seconds: float) -> list[Turn]:
    """Alternate NPC / player turns with silences and occasional overlaps, covering [0, seconds]."""
    spoken: list[Turn] = []
    t = float(rng.uniform(0.15, 0.8))
    speaker = "npc" if rng.random() < 0.6 else "player"
    while t < seconds - 0.4:
        length = float(rng.uniform(1.4, 4.5))
        end = min(t + length, seconds)
        spoken.append(Turn(speaker, t, end))
        r = rng.random()
        if r < 0.12:
            gap = -float(rng.uniform(0.2, 0.5))  # the other one starts before this one ends
        elif r < 0.25:
            gap = float(rng.uniform(1.4, 2.8))  # a long shared silence
        else:
            gap = float(rng.uniform(0.25, 1.0))
        t = max(end + gap, spoken[-1].start_s + 0.5)
        speaker = "player" if speaker == "npc" else "npc"
    # Fill the gaps nobody talks in with explicit silence turns.
    turns: list[Turn] = []
    covered = 0.0
    for turn in sorted(spoken, key=lambda x: x.start_s):
        if turn.start_s > covered + 1e-6:
            turns.append(Turn("silence", covered, turn.start_s))
        turns.append(turn)
        covered = max(covered, turn.end_s)
    if covered < seconds - 1e-6:
        turns.append(Turn("silence", covered, seconds))
    return turns


def _babble_cues(utterances: list[tuple[str, int, Utterance]], n: int) -> SpeechCues:
    """The synthesizer's exact cues: stressed syllable onsets and phrase ends per speaker."""
    stress: dict[str, list[int]] = {"npc": [], "player": []}
    ends: list[PhraseEnd] = []
    for speaker, offset, utt in utterances:
        for syl in utt.syllables:
            frame = (offset + syl.vowel_start) // SAMPLES_PER_FRAME
            if syl.stressed and frame < n:
                stress[speaker].append(frame)
        for phrase in utt.phrases:
            frame = (offset + phrase.end - 1) // SAMPLES_PER_FRAME
            if frame < n:
                ends.append(PhraseEnd(speaker, frame / FPS, phrase.rising))
    return SpeechCues(
        npc_stress=np.asarray(sorted(stress["npc"]), np.int64),
        player_stress=np.asarray(sorted(stress["player"]), np.int64),
        phrase_ends=tuple(sorted(ends, key=lambda p: (p.time_s, p.speaker))),
    )


def direct_conversation(
    seed: int,
    seconds: float,
    *,
    prompt: str | None = None,
    spec: CharacterSpec | None = None,
) -> Conversation:
    """Script and perform `seconds` of conversation, deterministically from `seed`.

    `prompt` sets emotion and style (None = a random prompt from the seed; "" = neutral);
    `spec` (a CharacterSpec) fixes the NPC's voice per character.
    """
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise ValueError(f"seconds must be in [{MIN_SECONDS}, {MAX_SECONDS}], got {seconds}")
    seed = int(seed)
    if prompt is None:
        prompt = random_prompt(stream_rng(seed, S_PROMPT))
    style = parse_prompt(prompt)
    n = int(round(seconds * SAMPLE_RATE)) // SAMPLES_PER_FRAME
    n_samples = n * SAMPLES_PER_FRAME
    duration = n_samples / SAMPLE_RATE

    turns = _plan_turns(stream_rng(seed, S_SCRIPT), duration)
    npc_voice = voice_for_character(spec, seed)
    voice_rng = stream_rng(seed, S_VOICE)
    others = [name for name in sorted(VOICES) if name != npc_voice.name]
    player_voice = VOICES[others[int(voice_rng.integers(len(others)))]]

    # Audio: one utterance per spoken turn, placed on its track.
    speak = np.zeros(n_samples, np.float32)
    listen = np.zeros(n_samples, np.float32)
    utterances = []
    audio_rng = stream_rng(seed, S_AUDIO)
    for turn in turns:
        if turn.speaker == "silence":
            continue
        utt_seed = int(audio_rng.integers(2**31))
        start = int(turn.start_s * SAMPLE_RATE)
        length = min(int((turn.end_s - turn.start_s) * SAMPLE_RATE), n_samples - start)
        if length < SAMPLE_RATE // 4:
            continue
        if turn.speaker == "npc":
            utt = synthesize(
                utt_seed,
                length / SAMPLE_RATE,
                npc_voice,
                rate_scale=float(np.clip(style.speech_rate, 0.5, 2.0)),
                pitch_scale=float(np.clip(style.speech_pitch, 0.5, 2.0)),
            )
            track = speak
        else:
            utt = synthesize(utt_seed, length / SAMPLE_RATE, player_voice, loudness=0.45)
            track = listen
        track[start : start + len(utt.pcm)] += utt.pcm[: n_samples - start]
        utterances.append((turn.speaker, start, utt))
    np.clip(speak, -1.0, 1.0, out=speak)
    np.clip(listen, -1.0, 1.0, out=listen)

    return perform_tracks(
        speak,
        listen,
        turns,
        seed=seed,
        prompt=prompt,
        spec=spec,
        cues=_babble_cues(utterances, n),
        npc_voice=npc_voice.name,
        player_voice=player_voice.name,
    )
