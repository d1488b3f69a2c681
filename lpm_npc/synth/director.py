"""Conversation director: scripts a two-party conversation and its ground-truth motion.

`direct_conversation(seed, seconds, prompt=..., spec=...)` lays out turns (NPC, player, shared
silences, occasional overlaps), synthesizes the speak track (babble in the NPC's voice) and the
listen track (babble in the player's voice), and writes per-frame `Motion`:
- NPC speaking: lip-sync from `visemes_from_audio(speak)`, beat head motion on stressed syllables,
  brow raises on emphasised ones;
- player speaking (the NPC listens): nods (head_pitch pulses) shortly after the player's phrase
  ends, brow raises after rising (question) phrases, gaze held on the player, more blinks;
- silences: idle breathing, blinks, gaze shifts;
- the prompt (`prompts.parse_prompt`) sets expression weights, motion amplitude, head pose, gaze,
  blink and speech rates.
Both tracks are float32 16 kHz with len = n_frames * 666 where n_frames = round(seconds*16000)//666.
Everything is deterministic from the seed: each component draws from its own random stream, so a
prompt changes amplitudes and biases without reshuffling the timing. This module renders nothing.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.ndimage import gaussian_filter1d

from lpm_npc.config import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from lpm_npc.synth.motion import EXPRESSIONS, Motion
from lpm_npc.synth.prompts import Style, parse_prompt, random_prompt
from lpm_npc.synth.speech import VOICES, Voice, synthesize
from lpm_npc.synth.visemes import visemes_from_audio

if TYPE_CHECKING:
    from lpm_npc.synth.character import CharacterSpec

SPEAKERS = ("npc", "player", "silence")
_MIN_SECONDS = 0.5
_MAX_SECONDS = 3600.0

# Random streams, one per component (see module docstring).
_S_PROMPT, _S_SCRIPT, _S_VOICE, _S_AUDIO, _S_HEAD, _S_BLINK, _S_GAZE, _S_EVENTS = range(8)

# Blinks per second by state: listeners blink more than speakers (attention, dry eyes).
_BLINK_RATE = {"npc": 0.22, "player": 0.55, "silence": 0.3}
_BLINK_SHAPE = np.array([0.45, 0.95, 1.0, 0.7, 0.3], np.float32)
_NOD_FRAMES = 11  # one nod: down and back up in ~0.45 s


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


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFF_FFFF_FFFF, stream])


def voice_for_character(spec: CharacterSpec | None, seed: int) -> Voice:
    """The NPC's voice: fixed per character (from its seed) so a character always sounds alike.

    A hand-built spec (seed -1) is keyed by its attributes; no spec keys by the conversation seed.
    """
    if spec is not None:
        key = spec.seed if spec.seed >= 0 else zlib.crc32(repr(spec).encode())
    else:
        key = int(seed)
    names = sorted(VOICES)
    return VOICES[names[int(_rng(key, _S_VOICE).integers(len(names)))]]


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


def _pulse(n: int, frames: np.ndarray, shape: np.ndarray, amps: np.ndarray) -> np.ndarray:
    """Sum of copies of `shape` starting at each frame (scaled by amps), clipped to length n."""
    out = np.zeros(n + len(shape), np.float32)
    for f, a in zip(frames.astype(int), amps, strict=True):
        if 0 <= f < n:
            out[f : f + len(shape)] += a * shape
    return out[:n]


def _smooth_noise(rng: np.random.Generator, n: int, sigma_frames: float) -> np.ndarray:
    """Zero-mean, unit-std smooth noise (slow drift)."""
    x = gaussian_filter1d(rng.standard_normal(n + 64), sigma_frames, mode="wrap")[32 : 32 + n]
    return (x / (x.std() + 1e-9)).astype(np.float32)


def _state_per_frame(turns: list[Turn], n: int) -> np.ndarray:
    """Per-frame state: "npc" wins over "player" (an overlapping NPC is talking, not listening)."""
    state = np.full(n, "silence", dtype=object)
    for speaker in ("player", "npc"):
        for turn in turns:
            if turn.speaker == speaker:
                state[int(turn.start_s * FPS) : int(np.ceil(turn.end_s * FPS))] = speaker
    return state


def _blinks(rng: np.random.Generator, state: np.ndarray, style: Style) -> np.ndarray:
    n = len(state)
    rates = np.array([_BLINK_RATE[s] for s in state]) * style.blink_rate
    hazard = rng.random(n) < rates / FPS
    onsets = []
    last = -100
    for f in np.flatnonzero(hazard):
        if f - last >= 8:  # refractory: eyes must open between blinks
            onsets.append(f)
            last = f
    return np.clip(_pulse(n, np.array(onsets), _BLINK_SHAPE, np.ones(len(onsets))), 0.0, 1.0)


def _gaze(
    rng: np.random.Generator, state: np.ndarray, style: Style
) -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-constant fixations with quick saccades; listening holds gaze on the player."""
    n = len(state)
    gx = np.zeros(n, np.float32)
    gy = np.zeros(n, np.float32)
    f = 0
    wander = style.gaze_wander
    while f < n:
        s = state[f]
        if s == "player":  # look at the player (camera), tiny micro-saccades
            dur, amp = rng.uniform(0.8, 2.0), 0.05
        elif s == "npc":  # speakers glance away now and then
            dur, amp = rng.uniform(0.7, 2.2), 0.25 * wander
        else:  # idle: free gaze shifts
            dur, amp = rng.uniform(0.5, 1.8), 0.5 * wander
        length = max(3, int(dur * FPS / max(wander, 0.3) ** 0.5))
        gx[f : f + length] = rng.uniform(-1, 1) * amp
        gy[f : f + length] = rng.uniform(-0.6, 0.6) * amp
        f += length
    gx = gaussian_filter1d(gx, 0.7) + style.gaze_x
    gy = gaussian_filter1d(gy, 0.7) + style.gaze_y
    return gx, gy


def _speech_events(
    utterances: list[tuple[str, int, object]], n: int
) -> dict[str, list[tuple[int, bool]]]:
    """Frames of NPC stress onsets and of phrase ends per speaker (with their rising flag)."""
    events: dict[str, list[tuple[int, bool]]] = {"npc_stress": [], "npc_end": [], "player_end": []}
    for speaker, offset, utt in utterances:
        for syl in utt.syllables:
            if speaker == "npc" and syl.stressed:
                events["npc_stress"].append(
                    ((offset + syl.vowel_start) // SAMPLES_PER_FRAME, False)
                )
        for phrase in utt.phrases:
            frame = (offset + phrase.end - 1) // SAMPLES_PER_FRAME
            if frame < n:
                events[f"{speaker}_end"].append((frame, phrase.rising))
    return events


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
    if not _MIN_SECONDS <= seconds <= _MAX_SECONDS:
        raise ValueError(f"seconds must be in [{_MIN_SECONDS}, {_MAX_SECONDS}], got {seconds}")
    seed = int(seed)
    if prompt is None:
        prompt = random_prompt(_rng(seed, _S_PROMPT))
    style = parse_prompt(prompt)
    n = int(round(seconds * SAMPLE_RATE)) // SAMPLES_PER_FRAME
    n_samples = n * SAMPLES_PER_FRAME
    duration = n_samples / SAMPLE_RATE

    turns = _plan_turns(_rng(seed, _S_SCRIPT), duration)
    npc_voice = voice_for_character(spec, seed)
    voice_rng = _rng(seed, _S_VOICE)
    others = [name for name in sorted(VOICES) if name != npc_voice.name]
    player_voice = VOICES[others[int(voice_rng.integers(len(others)))]]

    # Audio: one utterance per spoken turn, placed on its track.
    speak = np.zeros(n_samples, np.float32)
    listen = np.zeros(n_samples, np.float32)
    utterances = []
    audio_rng = _rng(seed, _S_AUDIO)
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

    motion = _perform(seed, n, turns, utterances, speak, style)
    events = _speech_events(utterances, n)
    phrase_ends = tuple(
        PhraseEnd(speaker, frame / FPS, rising)
        for speaker in ("npc", "player")
        for frame, rising in events[f"{speaker}_end"]
    )
    script = Script(
        seed, prompt, tuple(turns), tuple(sorted(phrase_ends, key=lambda p: p.time_s)),
        npc_voice.name, player_voice.name,
    )  # fmt: skip
    return Conversation(speak, listen, motion, script)


def _perform(
    seed: int,
    n: int,
    turns: list[Turn],
    utterances: list,
    speak: np.ndarray,
    style: Style,
) -> Motion:
    """Per-frame motion for the script (see the module docstring for the behaviours)."""
    state = _state_per_frame(turns, n)
    events = _speech_events(utterances, n)
    ev_rng = _rng(seed, _S_EVENTS)
    head_rng = _rng(seed, _S_HEAD)
    t = np.arange(n, dtype=np.float32) / FPS
    listening = (state == "player").astype(np.float32)
    speaking = (state == "npc").astype(np.float32)
    g = style.motion_gain

    # Lip-sync from the speak track itself, so TTS-driven and babble-driven clips behave alike.
    vis = visemes_from_audio(speak)
    jaw = np.clip(vis.jaw_open * style.jaw_gain, 0, 1)
    lip_round = np.clip(vis.lip_round * style.jaw_gain, 0, 1)
    lip_spread = np.clip(vis.lip_spread * style.jaw_gain, 0, 1)

    # Beats: a small downward head accent (and a yaw flick) on each stressed NPC syllable;
    # about half of them also get a brow raise (emphasis).
    beat = np.array([f for f, _ in events["npc_stress"]], int)
    beat_shape = np.sin(np.linspace(0, np.pi, 7)).astype(np.float32)
    beat_amp = ev_rng.uniform(1.5, 3.0, len(beat)).astype(np.float32)
    beat_side = ev_rng.choice([-1.0, 1.0], len(beat)).astype(np.float32)
    emphasis = ev_rng.random(len(beat)) < 0.5
    head_pitch = _pulse(n, beat, beat_shape, beat_amp * g)
    head_yaw = _pulse(n, beat, beat_shape, beat_amp * beat_side * g)
    brow = _pulse(n, beat[emphasis], np.sin(np.linspace(0, np.pi, 10)).astype(np.float32),
                  np.full(int(emphasis.sum()), 0.4, np.float32))  # fmt: skip

    # Listening: nods shortly after most player phrase ends, brow raise after rising ones.
    ends = events["player_end"]
    end_frames = np.array([f for f, _ in ends], int)
    nod_on = ev_rng.random(len(ends)) < 0.85
    nod_delay = ev_rng.integers(1, 5, len(ends))
    nod_amp = ev_rng.uniform(6.0, 10.0, len(ends)).astype(np.float32) * style.nod_gain
    nod_shape = np.sin(np.linspace(0, np.pi, _NOD_FRAMES)).astype(np.float32) ** 2
    nods = _pulse(n, (end_frames + nod_delay)[nod_on], nod_shape, nod_amp[nod_on])
    rising = np.array([r for _, r in ends], bool)
    brow += _pulse(n, end_frames[rising] + 1, np.sin(np.linspace(0, np.pi, 16)).astype(np.float32),
                   np.full(int(rising.sum()), 0.55, np.float32))  # fmt: skip

    # Idle drift: slow head wander, smaller and steadier while listening.
    calm = 1.0 - 0.5 * gaussian_filter1d(listening, 6)
    head_yaw = head_yaw + _smooth_noise(head_rng, n, 18) * 4.0 * g * calm + style.head_yaw_deg
    head_pitch = head_pitch + nods + _smooth_noise(head_rng, n, 22) * 1.8 * g + style.head_pitch_deg
    head_roll = _smooth_noise(head_rng, n, 26) * 1.8 * g + style.head_roll_deg
    torso = _smooth_noise(head_rng, n, 40) * 0.25 * g

    # Laughing: bursts of the laugh expression with the head thrown back.
    laugh = np.zeros(n, np.float32)
    if style.laugh_bursts > 0:
        rate = style.laugh_bursts * (0.4 + speaking + listening)
        onsets = np.flatnonzero(ev_rng.random(n) < rate / FPS)
        shape = np.sin(np.linspace(0, np.pi, 20)).astype(np.float32)
        laugh = np.clip(_pulse(n, onsets, shape, np.ones(len(onsets), np.float32)), 0, 1)
        head_pitch = head_pitch - 5.0 * laugh
        jaw = np.maximum(jaw, 0.5 * laugh)

    blink = _blinks(_rng(seed, _S_BLINK), state, style)
    lid = style.lid_droop
    blink_left = np.clip(lid + (1 - lid) * blink, 0, 1)
    blink_right = np.clip(blink_left + 0.03 * np.roll(blink, 1), 0, 1)  # slight asymmetry
    gaze_x, gaze_y = _gaze(_rng(seed, _S_GAZE), state, style)

    period = 4.0 / style.breath_rate
    idle = 1.0 - np.maximum(speaking, 0.0)
    breath = 0.5 + (0.25 + 0.2 * idle) * np.sin(2 * np.pi * t / period + (seed % 7))

    expression = np.repeat(style.expression_weights()[None, :], n, axis=0)
    li = EXPRESSIONS.index("laugh")
    expression[:, li] = np.maximum(expression[:, li], laugh)
    expression[:, 0] = np.clip(1.0 - expression[:, 1:].sum(axis=1), 0.0, 1.0)

    motion = Motion(
        jaw_open=jaw,
        lip_round=lip_round,
        lip_spread=lip_spread,
        blink_left=blink_left,
        blink_right=blink_right,
        brow_raise=brow + style.brow_raise,
        brow_furrow=np.full(n, style.brow_furrow, np.float32),
        head_yaw=head_yaw,
        head_pitch=head_pitch,
        head_roll=head_roll,
        gaze_x=gaze_x,
        gaze_y=gaze_y,
        torso_sway=torso,
        breath=breath,
        expression=expression,
    )
    return motion.clamp()
