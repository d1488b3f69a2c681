"""Visemes from any speech audio: per-video-frame jaw_open, lip_round, lip_spread.

Works on the babble of `speech.py` and equally on real TTS or recorded speech, because it only uses
generic acoustic cues, normalised per utterance:
- jaw_open follows the loudness envelope (RMS of the 80-4000 Hz band, where voiced speech lives,
  so hissing fricatives barely open the jaw), scaled by a robust per-utterance reference level
  (95th percentile) and gated to 0 below a noise floor, so silence keeps the mouth closed;
- lip_spread follows "frontness" (energy above 1.5 kHz vs 450-1100 Hz: a high F2, as in i, e);
  lip_round follows back-and-not-open vowels (low F2 and low F1, as in o, u). Both band ratios
  are z-scored over the utterance's speech frames with median/MAD, so they adapt to each voice.
All three are smoothed over ~2 frames. Frame k covers samples [k*hop, (k+1)*hop) with
hop = 16000 // fps (666 at 24 fps); T = len(pcm) // hop. This module does not synthesise audio
and does not know about characters or rendering.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.special import expit

from lpm_npc.config import FPS, SAMPLE_RATE
from lpm_npc.synth.audio_io import resample_pcm, validate_pcm

_WINDOW = 1024  # analysis window (64 ms) centred on each video frame
_GATE_BELOW_REF_DB = 32.0  # frames this far below the utterance's loud level count as silence
_ABS_FLOOR_DB = -62.0  # and anything below this level (dBFS) is silence whatever the reference


@dataclass(frozen=True)
class Visemes:
    """Mouth shape per video frame, each (T,) float32 in [0, 1]."""

    jaw_open: np.ndarray
    lip_round: np.ndarray
    lip_spread: np.ndarray
    fps: int = FPS

    @property
    def n_frames(self) -> int:
        return int(self.jaw_open.shape[0])

    def to_json(self, decimals: int = 4) -> dict:
        """`{"fps": 24, "jaw_open": [...], "lip_round": [...], "lip_spread": [...]}`."""
        return {
            "fps": self.fps,
            **{
                name: np.round(getattr(self, name).astype(float), decimals).tolist()
                for name in ("jaw_open", "lip_round", "lip_spread")
            },
        }


def _frame_spectra(pcm: np.ndarray, hop: int, n_frames: int) -> np.ndarray:
    """Power spectra (T, _WINDOW // 2 + 1) of Hann windows centred on each frame."""
    pad = _WINDOW // 2
    padded = np.pad(pcm, (pad, pad + _WINDOW))
    centres = np.arange(n_frames) * hop + hop // 2
    idx = centres[:, None] + np.arange(_WINDOW)[None, :]  # window k starts at centre - pad
    windows = padded[idx] * np.hanning(_WINDOW)[None, :].astype(np.float32)
    return np.abs(np.fft.rfft(windows, axis=1)) ** 2


def _robust_z(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 MAD), statistics over the masked frames only."""
    med = float(np.median(x[mask]))
    mad = float(np.median(np.abs(x[mask] - med))) * 1.4826 + 1e-3
    return (x - med) / mad


def visemes_from_audio(pcm: np.ndarray, sample_rate: int = SAMPLE_RATE, fps: int = FPS) -> Visemes:
    """Analyse mono float PCM and return per-frame visemes on the video clock."""
    pcm = validate_pcm(pcm)
    if not 1 <= fps <= 240:
        raise ValueError(f"fps must be in [1, 240], got {fps}")
    if sample_rate != SAMPLE_RATE:
        pcm = resample_pcm(pcm, sample_rate, SAMPLE_RATE)
    hop = SAMPLE_RATE // fps
    n_frames = len(pcm) // hop
    empty = np.zeros(n_frames, np.float32)
    if n_frames == 0:
        return Visemes(empty, empty.copy(), empty.copy(), fps)

    power = _frame_spectra(pcm, hop, n_frames)
    freqs = np.fft.rfftfreq(_WINDOW, 1.0 / SAMPLE_RATE)
    speech_band = (freqs >= 80) & (freqs <= 4000)
    # Parseval: mean power of the windowed band, as RMS in dBFS (Hann window power = 0.375).
    band_power = power[:, speech_band].sum(axis=1) * 2.0 / (_WINDOW**2 * 0.375)
    rms = np.sqrt(band_power)
    level_db = 10.0 * np.log10(band_power + 1e-12)
    ref_db = float(np.percentile(level_db, 95))
    floor_db = max(ref_db - _GATE_BELOW_REF_DB, _ABS_FLOOR_DB)
    speaking = level_db > floor_db
    if not speaking.any():
        return Visemes(empty, empty.copy(), empty.copy(), fps)

    # Jaw: loudness relative to the utterance's loud level, with the gate floor mapped to 0.
    rms_ref = float(np.percentile(rms[speaking], 95))
    rms_floor = 10.0 ** (floor_db / 20.0)
    jaw = np.clip((rms - rms_floor) / max(rms_ref - rms_floor, 1e-9), 0.0, 1.0) ** 0.85
    jaw = np.where(speaking, jaw, 0.0)

    # Round vs spread from band-energy ratios, robustly z-scored over the speech frames:
    # "front" = energy above 1.5 kHz vs 450-1100 Hz (high F2: i, e -> spread); "open" =
    # 450-1100 Hz vs 200-450 Hz (high F1: a). Rounded vowels are back and not open (o, u).
    def band(lo: float, hi: float) -> np.ndarray:
        return power[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) + 1e-12

    e_low, e_mid, e_high = band(200, 450), band(450, 1100), band(1500, 3200)
    front = _robust_z(np.log(e_high) - np.log(e_mid), speaking)
    openness = _robust_z(np.log(e_mid) - np.log(e_low), speaking)
    activity = np.clip(jaw * 3.0, 0.0, 1.0)  # lips relax to neutral as the mouth closes
    lip_spread = activity * expit(2.0 * (front - 0.3))
    lip_round = activity * expit(2.0 * (-front - 0.5 * openness - 0.3))

    def smooth(x: np.ndarray) -> np.ndarray:
        return np.clip(gaussian_filter1d(x, 0.8 * fps / FPS, mode="nearest"), 0.0, 1.0)

    jaw_s = smooth(jaw)
    # Keep silence exactly closed: smoothing must not leak speech into gated frames far away.
    near_speech = gaussian_filter1d(speaking.astype(float), 1.0, mode="nearest") > 0.05
    jaw_s = np.where(near_speech, jaw_s, 0.0)
    return Visemes(
        jaw_s.astype(np.float32),
        np.where(near_speech, smooth(lip_round), 0.0).astype(np.float32),
        np.where(near_speech, smooth(lip_spread), 0.0).astype(np.float32),
        fps,
    )
