"""Prosody from any speech audio: activity, pitch, phrases, stressed syllables and turns.

All analysis is on the video clock (frame k covers samples [k*666, (k+1)*666), 64 ms windows
centred on each frame, like `visemes.py`) and uses generic cues only, so babble, TTS and recorded
speech are read alike:
- `voice_activity`: the 80-4000 Hz band level above a floor relative to the track's loud level
  (95th percentile - 30 dB, never below -55 dBFS), with consonant gaps (<= 3 frames) closed;
- `pitch_track`: autocorrelation pitch (60-420 Hz) of active frames, taper-corrected, with an
  octave check; 0 where unvoiced;
- `phrases_from_audio`: active runs split by pauses; a phrase is "rising" when its last voiced
  frames sit > 3 semitones above an earlier low and above the phrase's median (a final rise);
- `stress_from_audio`: loudness peaks with 4 dB prominence in the loudest 40% of the track's peaks;
- `turns_from_audio`: each track's phrases merged across pauses < 1 s (unless the other track
  talks in the pause), silence where neither talks;
- `cues_from_audio`: the `SpeechCues` the performance reacts to.
This module does not synthesise audio and does not direct motion.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_closing, median_filter
from scipy.signal import find_peaks

from lpm_npc.config import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from lpm_npc.synth.script import PhraseEnd, SpeechCues, Turn, normalize_turns

_WINDOW = 1024
_F0_RANGE_HZ = (60.0, 420.0)
_VOICED_MIN_CORR = 0.45  # normalised autocorrelation peak that counts as voiced
_GATE_BELOW_REF_DB = 30.0
_ABS_FLOOR_DB = -55.0
_GAP_FRAMES = 3  # silences this short are consonant closures, not pauses
_MIN_PHRASE_FRAMES = 3  # shorter active runs are clicks or breaths
_TURN_MERGE_S = 1.0  # pauses shorter than this keep a speaker's turn going
_RISE_SEMITONES = 3.0


def _windows(pcm: np.ndarray, n_frames: int) -> np.ndarray:
    pad = _WINDOW // 2
    padded = np.pad(pcm.astype(np.float32), (pad, pad + _WINDOW))
    centres = np.arange(n_frames) * SAMPLES_PER_FRAME + SAMPLES_PER_FRAME // 2
    return padded[centres[:, None] + np.arange(_WINDOW)[None, :]]


def band_level_db(pcm: np.ndarray) -> np.ndarray:
    """(T,) level of the 80-4000 Hz band per frame, dBFS."""
    n = len(pcm) // SAMPLES_PER_FRAME
    if n == 0:
        return np.zeros(0, np.float32)
    spectra = np.abs(np.fft.rfft(_windows(pcm, n) * np.hanning(_WINDOW), axis=1)) ** 2
    freqs = np.fft.rfftfreq(_WINDOW, 1.0 / SAMPLE_RATE)
    band = spectra[:, (freqs >= 80) & (freqs <= 4000)].sum(axis=1) * 2.0 / (_WINDOW**2 * 0.375)
    return (10.0 * np.log10(band + 1e-12)).astype(np.float32)


def voice_activity(pcm: np.ndarray, level_db: np.ndarray | None = None) -> np.ndarray:
    """(T,) bool: someone speaks on this track in the frame (see the module docstring)."""
    level = band_level_db(pcm) if level_db is None else level_db
    if len(level) == 0:
        return np.zeros(0, bool)
    floor = max(float(np.percentile(level, 95)) - _GATE_BELOW_REF_DB, _ABS_FLOOR_DB)
    active = level > floor
    closed = binary_closing(np.pad(active, _GAP_FRAMES), np.ones(_GAP_FRAMES + 1, bool))
    return closed[_GAP_FRAMES:-_GAP_FRAMES]


def pitch_track(pcm: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
    """(T,) float32 f0 in Hz per frame, 0 where unvoiced or inactive."""
    n = len(pcm) // SAMPLES_PER_FRAME
    f0 = np.zeros(n, np.float32)
    active = voice_activity(pcm) if active is None else active
    frames = np.flatnonzero(active[:n])
    if len(frames) == 0:
        return f0
    taper = np.hanning(_WINDOW).astype(np.float32)
    windows = _windows(pcm, n)[frames] * taper
    windows -= windows.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(windows, 2 * _WINDOW, axis=1)
    acf = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :_WINDOW]
    taper_acf = np.fft.irfft(np.abs(np.fft.rfft(taper, 2 * _WINDOW)) ** 2)[:_WINDOW]
    norm = acf / (acf[:, :1] + 1e-12) / (taper_acf / taper_acf[0])[None, :]
    lo = int(SAMPLE_RATE / _F0_RANGE_HZ[1])
    hi = int(SAMPLE_RATE / _F0_RANGE_HZ[0])
    lags = np.arange(lo, hi + 1)
    best = lags[np.argmax(norm[:, lo : hi + 1], axis=1)]
    rows = np.arange(len(frames))
    peak = norm[rows, best]
    for k in (3, 2):  # octave check: a sub-multiple lag nearly as periodic is the true period
        sub = np.round(best / k).astype(int)
        better = (sub >= lo) & (norm[rows, np.clip(sub, 0, _WINDOW - 1)] > 0.85 * peak)
        best = np.where(better, sub, best)
    peak = norm[rows, best]
    voiced = peak > _VOICED_MIN_CORR
    f0[frames[voiced]] = SAMPLE_RATE / best[voiced]
    # A 3-frame median over voiced frames removes single-frame octave slips.
    smooth = median_filter(f0, size=3, mode="nearest")
    return np.where(f0 > 0, np.where(smooth > 0, smooth, f0), 0.0).astype(np.float32)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def _is_rising(f0: np.ndarray) -> bool:
    """The phrase ends well above an earlier low point and above its own median (a final rise;
    declarative phrases decline, so their end is their low)."""
    voiced = f0[f0 > 0]
    if len(voiced) < 6:
        return False
    semis = median_filter(12.0 * np.log2(voiced / np.median(voiced)), size=3, mode="nearest")
    tail = float(np.median(semis[-3:]))
    return bool(tail - semis[:-3].min() > _RISE_SEMITONES and tail > 0.0)


def phrases_from_audio(
    pcm: np.ndarray, active: np.ndarray | None = None, f0: np.ndarray | None = None
) -> list[tuple[int, int, bool]]:
    """[(first frame, last frame, rising)] of each phrase on one track."""
    active = voice_activity(pcm) if active is None else active
    f0 = pitch_track(pcm, active) if f0 is None else f0
    return [
        (int(a), int(b) - 1, _is_rising(f0[a:b]))
        for a, b in _runs(active)
        if b - a >= _MIN_PHRASE_FRAMES
    ]


def stress_from_audio(
    pcm: np.ndarray, level_db: np.ndarray | None = None, active: np.ndarray | None = None
) -> np.ndarray:
    """(K,) int64 frames where a stressed (loud, prominent) syllable starts."""
    level = band_level_db(pcm) if level_db is None else level_db
    active = voice_activity(pcm, level) if active is None else active
    if not active.any():
        return np.zeros(0, np.int64)
    masked = np.where(active, level, level.min())
    peaks, _ = find_peaks(masked, prominence=4.0, distance=4)
    peaks = peaks[active[peaks]]
    if len(peaks) == 0:
        return np.zeros(0, np.int64)
    loud = masked[peaks] >= np.percentile(masked[peaks], 60)
    return np.maximum(peaks[loud] - 1, 0).astype(np.int64)  # the vowel starts before its peak


def turns_from_audio(speak: np.ndarray, listen: np.ndarray) -> list[Turn]:
    """Turns covering the clip from both tracks' activity (see the module docstring)."""
    n = min(len(speak), len(listen)) // SAMPLES_PER_FRAME
    duration = n * SAMPLES_PER_FRAME / SAMPLE_RATE
    activity = {"npc": voice_activity(speak)[:n], "player": voice_activity(listen)[:n]}
    merge = int(round(_TURN_MERGE_S * FPS))
    turns: list[Turn] = []
    for speaker, other in (("npc", "player"), ("player", "npc")):
        runs = [(a, b) for a, b in _runs(activity[speaker]) if b - a >= _MIN_PHRASE_FRAMES]
        merged: list[list[int]] = []
        for a, b in runs:
            if (
                merged
                and a - merged[-1][1] < merge
                and not activity[other][merged[-1][1] : a].any()
            ):
                merged[-1][1] = b
            else:
                merged.append([a, b])
        turns += [Turn(speaker, a / FPS, min(b / FPS, duration)) for a, b in merged]
    return normalize_turns(turns, duration)


def cues_from_audio(speak: np.ndarray, listen: np.ndarray) -> SpeechCues:
    """Stressed syllables of both tracks and every phrase end, analysed from the audio."""
    stress: dict[str, np.ndarray] = {}
    ends: list[PhraseEnd] = []
    for speaker, pcm in (("npc", speak), ("player", listen)):
        level = band_level_db(pcm)
        active = voice_activity(pcm, level)
        stress[speaker] = stress_from_audio(pcm, level, active)
        for _, last, rising in phrases_from_audio(pcm, active):
            ends.append(PhraseEnd(speaker, last / FPS, rising))
    return SpeechCues(
        npc_stress=stress["npc"],
        player_stress=stress["player"],
        phrase_ends=tuple(sorted(ends, key=lambda p: (p.time_s, p.speaker))),
    )
