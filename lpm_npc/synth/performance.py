"""The NPC's performance: per-frame `Motion` from the tracks, the turns and the speech cues.

`perform(...)` writes what the character does in each state (turns decide the state; an NPC turn
wins over an overlapping player turn):
- speaking: lip-sync from `visemes_from_audio(speak)`, a small head beat (and yaw flick) on
  stressed syllables, about half of them with a brow raise (emphasis), glances away;
- listening (the player speaks): nods near the player's phrase ends (4.8-14 degree pitch dips,
  sometimes a double nod), small nods on some stressed syllables, brow raises after rising
  (question-like) phrases and now and then after others, brief backchannel smiles, gaze held on
  the player (the camera), a steadier head and more blinks, some of them with a nod;
- shared silence: breathing, blinks, slow gaze shifts and slow head drift well below a nod.
Reactions keep their timing inside the player's turn: at a turn's end the nod lands over the last
syllable rather than after it (as listeners' backchannels overlap the speaker's last word).
Nothing is a metronome: each reaction's chance, delay, depth and length are drawn, and each
character has its own `Temperament` (keyed by the character, so it listens alike in every
conversation). The prompt's `Style` scales amplitudes and rates. Every component draws from its own
random stream of the seed (`stream_rng`), so a prompt changes amplitudes without reshuffling timing.
This module neither synthesises nor analyses audio beyond visemes, and renders nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from lpm_npc.config import FPS
from lpm_npc.synth.motion import EXPRESSIONS, Motion
from lpm_npc.synth.prompts import Style
from lpm_npc.synth.script import SpeechCues, Turn
from lpm_npc.synth.visemes import visemes_from_audio

# Random streams, one per component (the director's babble streams use 0-3).
S_PROMPT, S_SCRIPT, S_VOICE, S_AUDIO, S_HEAD, S_BLINK, S_GAZE, S_EVENTS, S_LISTEN, S_TEMPER = range(
    10
)

# Blinks per second by state: listeners blink more than speakers (attention, dry eyes).
_BLINK_RATE = {"npc": 0.22, "player": 0.6, "silence": 0.3}
_BLINK_SHAPE = np.array([0.45, 0.95, 1.0, 0.7, 0.3], np.float32)
_NOD_MIN_DEG, _NOD_MAX_DEG = 4.8, 14.0  # a nod is always a clear dip, never a twitch
_DETECT_MARGIN = 7  # frames: a reaction starts this far before its turn's end at the latest


def stream_rng(seed: int, stream: int) -> np.random.Generator:
    """The random stream `stream` of a conversation seed."""
    return np.random.default_rng([int(seed) & 0xFFFF_FFFF_FFFF, stream])


@dataclass(frozen=True)
class Temperament:
    """How one character listens; drawn once per character (`temperament`)."""

    nod_prob: float  # chance of a nod at a player's phrase end
    nod_deg: float  # typical nod depth, degrees
    nod_delay_s: float  # typical delay of a nod after a phrase end
    double_nod: float  # chance that a nod is a double nod
    accent_nod: float  # chance of a small nod on a stressed player syllable
    brow_prob: float  # chance of a brow raise after a rising phrase
    brow_flash: float  # chance of a brow raise after a falling phrase
    smile_prob: float  # chance of a backchannel smile at a phrase end


def temperament(key: int) -> Temperament:
    """The listening temperament of character `key` (deterministic)."""
    rng = stream_rng(key, S_TEMPER)
    return Temperament(
        nod_prob=float(rng.uniform(0.72, 0.95)),
        nod_deg=float(rng.uniform(6.0, 9.5)),
        nod_delay_s=float(rng.uniform(0.06, 0.22)),
        double_nod=float(rng.uniform(0.1, 0.35)),
        accent_nod=float(rng.uniform(0.08, 0.22)),
        brow_prob=float(rng.uniform(0.75, 0.98)),
        brow_flash=float(rng.uniform(0.05, 0.2)),
        smile_prob=float(rng.uniform(0.2, 0.5)),
    )


def _pulse(n: int, frames: Sequence[int], shapes: Sequence[np.ndarray]) -> np.ndarray:
    """Sum of `shapes[i]` placed at `frames[i]`, clipped to length n."""
    longest = max((len(s) for s in shapes), default=0)
    out = np.zeros(n + longest, np.float32)
    for f, shape in zip(frames, shapes, strict=True):
        if 0 <= f < n:
            out[f : f + len(shape)] += shape
    return out[:n]


def _sin(length: int, power: float = 1.0) -> np.ndarray:
    return (np.sin(np.linspace(0.0, np.pi, int(length))) ** power).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, n: int, sigma_frames: float) -> np.ndarray:
    """Zero-mean, unit-std smooth noise (slow drift)."""
    x = gaussian_filter1d(rng.standard_normal(n + 64), sigma_frames, mode="wrap")[32 : 32 + n]
    return (x / (x.std() + 1e-9)).astype(np.float32)


def state_per_frame(turns: Sequence[Turn], n: int) -> np.ndarray:
    """Per-frame state: "npc" wins over "player" (an overlapping NPC is talking, not listening)."""
    state = np.full(n, "silence", dtype=object)
    for speaker in ("player", "npc"):
        for turn in turns:
            if turn.speaker == speaker:
                state[int(turn.start_s * FPS) : int(np.ceil(turn.end_s * FPS))] = speaker
    return state


@dataclass
class _Listening:
    """What the listening reactions add to the motion."""

    pitch: np.ndarray  # (T,) degrees, nods
    brow: np.ndarray  # (T,) brow raises
    smile: np.ndarray  # (T,) backchannel smile weight
    blink_onsets: list[int]  # blinks that go with nods


def _listen(
    rng: np.random.Generator,
    n: int,
    turns: Sequence[Turn],
    cues: SpeechCues,
    style: Style,
    temper: Temperament,
) -> _Listening:
    """Nods, brow raises, smiles and blinks reacting to the player (see the module docstring)."""
    spans = [
        (int(round(t.start_s * FPS)), int(round(t.end_s * FPS)))
        for t in turns
        if t.speaker == "player"
    ]

    def place(cue: int, delay: int) -> tuple[int, int]:
        """(start, latest start) of a reaction to `cue`, kept inside the player's turn."""
        start = cue + delay
        for a, b in spans:
            if a <= cue <= b:
                latest = b - _DETECT_MARGIN - int(rng.integers(0, 3))
                return max(min(start, latest), a, cue - 10), latest
        return start, n

    gain = style.nod_gain
    nod_prob = float(np.clip(temper.nod_prob * (0.7 + 0.3 * gain), 0.45, 0.97))
    pitch_frames: list[int] = []
    pitch_shapes: list[np.ndarray] = []
    brow_frames: list[int] = []
    brow_shapes: list[np.ndarray] = []
    smile_frames: list[int] = []
    smile_shapes: list[np.ndarray] = []
    blinks: list[int] = []

    def nod(start: int, latest: int, depth: float) -> None:
        length = int(rng.integers(9, 15))
        pitch_frames.append(start)
        pitch_shapes.append(depth * _sin(length, 2.0))
        second = int(rng.integers(max(7, length - 4), length + 3))
        if rng.random() < temper.double_nod and start + second <= latest:
            pitch_frames.append(start + second)
            pitch_shapes.append(
                max(_NOD_MIN_DEG, depth * float(rng.uniform(0.6, 0.85))) * _sin(second - 1, 2.0)
            )
        if rng.random() < 0.35:
            blinks.append(start + int(rng.integers(1, 4)))

    ends = [p for p in cues.phrase_ends if p.speaker == "player"]
    nodded: list[int] = []
    for end in ends:
        e = int(round(end.time_s * FPS))
        # Draw every choice for every phrase end, so one phrase's outcome never shifts the next.
        u_nod, u_brow, u_smile = rng.random(3)
        delay = int(round(temper.nod_delay_s * FPS * rng.uniform(0.3, 2.2)))
        depth = temper.nod_deg * (0.75 + 0.25 * gain) * float(rng.uniform(0.8, 1.3))
        depth = float(np.clip(depth, _NOD_MIN_DEG, _NOD_MAX_DEG))
        brow_amp = float(rng.uniform(0.35, 0.7) if end.rising else rng.uniform(0.25, 0.4))
        brow_len = int(rng.integers(12, 21) if end.rising else rng.integers(8, 13))
        brow_delay = int(rng.integers(0, 5))
        smile_amp, smile_len = float(rng.uniform(0.2, 0.45)), int(rng.integers(18, 37))
        smile_delay = int(rng.integers(2, 9))
        if u_nod < nod_prob:
            start, latest = place(e, delay)
            nod(start, latest, depth)
            nodded.append(start)
        if u_brow < (temper.brow_prob if end.rising else temper.brow_flash):
            brow_frames.append(place(e, brow_delay)[0])
            brow_shapes.append(brow_amp * _sin(brow_len))
        if u_smile < temper.smile_prob:
            smile_frames.append(e + smile_delay)
            smile_shapes.append(smile_amp * _sin(smile_len))

    # Small nods on some stressed player syllables, away from the phrase-end nods.
    nodded_arr = np.asarray(nodded, np.int64)
    for stress in np.asarray(cues.player_stress, np.int64):
        u = rng.random()
        delay = int(rng.integers(1, 5))
        depth = float(rng.uniform(_NOD_MIN_DEG, 6.5))
        if u >= temper.accent_nod:
            continue
        if len(nodded_arr) and np.abs(nodded_arr - stress).min() < 12:
            continue
        if not any(a <= stress < b for a, b in spans):
            continue
        start, latest = place(int(stress), delay)
        nod(start, latest, depth)
        nodded_arr = np.append(nodded_arr, start)

    return _Listening(
        pitch=_pulse(n, pitch_frames, pitch_shapes),
        brow=_pulse(n, brow_frames, brow_shapes),
        smile=_pulse(n, smile_frames, smile_shapes),
        blink_onsets=blinks,
    )


def _blinks(
    rng: np.random.Generator, state: np.ndarray, style: Style, extra: Sequence[int]
) -> np.ndarray:
    n = len(state)
    rates = np.array([_BLINK_RATE[s] for s in state]) * style.blink_rate
    hazard = np.flatnonzero(rng.random(n) < rates / FPS)
    candidates = np.unique(np.concatenate([hazard, np.asarray(extra, np.int64)]))
    onsets: list[int] = []
    for f in candidates:
        if not onsets or f - onsets[-1] >= 8:  # refractory: eyes must open between blinks
            onsets.append(int(f))
    return np.clip(_pulse(n, onsets, [_BLINK_SHAPE] * len(onsets)), 0.0, 1.0)


def _gaze(
    rng: np.random.Generator, state: np.ndarray, style: Style
) -> tuple[np.ndarray, np.ndarray]:
    """Fixations with saccades: held on the player while listening, slow and free in silence."""
    n = len(state)
    gx = np.zeros(n, np.float32)
    gy = np.zeros(n, np.float32)
    f = 0
    wander = style.gaze_wander
    changes = np.append(np.flatnonzero(state[1:] != state[:-1]) + 1, n)
    while f < n:
        s = state[f]
        if s == "player":  # look at the player (camera), tiny micro-saccades
            dur, amp = rng.uniform(0.8, 2.0), 0.05
        elif s == "npc":  # speakers glance away now and then
            dur, amp = rng.uniform(0.7, 2.2), 0.25 * wander
        else:  # idle: slow, free gaze shifts
            dur, amp = rng.uniform(1.0, 2.8), 0.45 * wander
        length = max(3, int(dur * FPS / max(wander, 0.3) ** 0.5))
        # A new state starts a new fixation (the listener turns to the speaker at once).
        next_change = changes[np.searchsorted(changes, f, side="right")]
        length = min(length, int(next_change) - f)
        gx[f : f + length] = rng.uniform(-1, 1) * amp
        gy[f : f + length] = rng.uniform(-0.6, 0.6) * amp
        f += length
    idle = gaussian_filter1d((state == "silence").astype(np.float32), 3.0)
    slow_x, slow_y = gaussian_filter1d(gx, 2.0), gaussian_filter1d(gy, 2.0)
    gx = idle * slow_x + (1 - idle) * gaussian_filter1d(gx, 0.7) + style.gaze_x
    gy = idle * slow_y + (1 - idle) * gaussian_filter1d(gy, 0.7) + style.gaze_y
    return gx.astype(np.float32), gy.astype(np.float32)


def _beats(
    rng: np.random.Generator, n: int, state: np.ndarray, stress: np.ndarray, gain: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(head_pitch, head_yaw, brow) beat gestures on the NPC's stressed syllables."""
    stress = np.asarray(stress, np.int64)
    amp = rng.uniform(1.5, 3.0, len(stress)).astype(np.float32) * gain
    side = rng.choice([-1.0, 1.0], len(stress)).astype(np.float32)
    emphasis = rng.random(len(stress)) < 0.5
    length = rng.integers(6, 9, len(stress))
    # A beat belongs to the NPC's own turn: it must end before the turn does.
    inside = np.array(
        [0 <= f and f + 7 <= n and bool(np.all(state[f : f + 7] == "npc")) for f in stress], bool
    )
    frames = [int(f) for f in stress[inside]]
    pitch = _pulse(n, frames, [a * _sin(k) for a, k in zip(amp[inside], length[inside])])
    yaw = _pulse(
        n, frames, [a * s * _sin(k) for a, s, k in zip(amp[inside], side[inside], length[inside])]
    )
    keep = inside & emphasis
    brow = _pulse(n, [int(f) for f in stress[keep]], [0.4 * _sin(10)] * int(keep.sum()))
    return pitch, yaw, brow


def perform(
    seed: int,
    n: int,
    turns: Sequence[Turn],
    cues: SpeechCues,
    speak: np.ndarray,
    style: Style,
    temper: Temperament,
) -> Motion:
    """Per-frame motion for `n` frames (see the module docstring for the behaviours)."""
    state = state_per_frame(turns, n)
    ev_rng = stream_rng(seed, S_EVENTS)
    head_rng = stream_rng(seed, S_HEAD)
    t = np.arange(n, dtype=np.float32) / FPS
    listening = (state == "player").astype(np.float32)
    speaking = (state == "npc").astype(np.float32)
    idle = (state == "silence").astype(np.float32)
    g = style.motion_gain

    # Lip-sync from the speak track itself, so TTS-driven and babble-driven clips behave alike.
    vis = visemes_from_audio(speak)
    jaw = np.clip(vis.jaw_open[:n] * style.jaw_gain, 0, 1)
    lip_round = np.clip(vis.lip_round[:n] * style.jaw_gain, 0, 1)
    lip_spread = np.clip(vis.lip_spread[:n] * style.jaw_gain, 0, 1)

    beat_pitch, beat_yaw, brow = _beats(ev_rng, n, state, cues.npc_stress, g)
    reactions = _listen(stream_rng(seed, S_LISTEN), n, turns, cues, style, temper)

    # Drift: lively while speaking, steadier while listening, slow and small in silence (a
    # fraction of a nod, so idle never reads as a reaction).
    calm = 1.0 - 0.5 * gaussian_filter1d(listening, 6)
    pitch_amp = gaussian_filter1d(
        speaking * 1.8 * g + listening * 0.8 * min(g, 1.5) + idle * 0.6 * min(g, 1.3), 8
    )
    period = 4.0 / style.breath_rate
    breath_phase = 2 * np.pi * t / period + (seed % 7)
    head_yaw = beat_yaw + _smooth_noise(head_rng, n, 18) * 4.0 * g * calm + style.head_yaw_deg
    head_pitch = (
        beat_pitch
        + reactions.pitch
        + _smooth_noise(head_rng, n, 30) * pitch_amp
        - 0.4 * idle * np.sin(breath_phase)  # the head lifts a little on each breath in
        + style.head_pitch_deg
    )
    head_roll = _smooth_noise(head_rng, n, 26) * 1.8 * g + style.head_roll_deg
    torso = _smooth_noise(head_rng, n, 40) * 0.25 * g
    brow = brow + reactions.brow + 0.03 * _smooth_noise(head_rng, n, 40) * idle

    # Laughing: bursts of the laugh expression with the head thrown back.
    laugh = np.zeros(n, np.float32)
    if style.laugh_bursts > 0:
        rate = style.laugh_bursts * (0.4 + speaking + listening)
        onsets = [int(f) for f in np.flatnonzero(ev_rng.random(n) < rate / FPS)]
        laugh = np.clip(_pulse(n, onsets, [_sin(20)] * len(onsets)), 0, 1)
        head_pitch = head_pitch - 5.0 * laugh
        jaw = np.maximum(jaw, 0.5 * laugh)

    blink = _blinks(stream_rng(seed, S_BLINK), state, style, reactions.blink_onsets)
    lid = style.lid_droop
    blink_left = np.clip(lid + (1 - lid) * blink, 0, 1)
    blink_right = np.clip(blink_left + 0.03 * np.roll(blink, 1), 0, 1)  # slight asymmetry
    gaze_x, gaze_y = _gaze(stream_rng(seed, S_GAZE), state, style)

    breath = 0.5 + (0.25 + 0.2 * (1.0 - speaking)) * np.sin(breath_phase)

    expression = np.repeat(style.expression_weights()[None, :], n, axis=0)
    si, li = EXPRESSIONS.index("smile"), EXPRESSIONS.index("laugh")
    expression[:, si] = np.clip(expression[:, si] + reactions.smile, 0.0, 1.0)
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
