"""WAV input/output for the media clock: 16 kHz mono float32 PCM in [-1, 1].

`read_wav` validates what it is handed (sample rate, channel count, truncation, non-finite
samples) and names the offending field and the allowed value; with `resample=True` it converts
any rate and channel count to the clock instead (polyphase resampling, channel mean).
`write_wav` writes 16 kHz mono PCM16. This module does not analyse or synthesise audio.
"""

from __future__ import annotations

import logging
import struct
from math import gcd
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from lpm_npc.config import SAMPLE_RATE

log = logging.getLogger(__name__)

# A RIFF size field this large means "unknown" (streamed WAV headers written before the length was
# known); such files cannot be checked for truncation by their header.
_STREAMING_SIZE = 0x7FFF_0000


def _check_riff_not_truncated(path: Path) -> None:
    """Raise ValueError when a RIFF/WAVE file's data chunk claims more bytes than the file holds.

    libsndfile silently reads whatever is there, so a half-copied file would pass unnoticed.
    """
    raw = path.read_bytes()
    if raw[:4] not in (b"RIFF", b"RIFX") or raw[8:12] != b"WAVE":
        return  # not a WAV container: soundfile validates other formats itself
    pos = 12
    while pos + 8 <= len(raw):
        chunk_id = raw[pos : pos + 4]
        (size,) = struct.unpack("<I", raw[pos + 4 : pos + 8])
        if chunk_id == b"data":
            if size < _STREAMING_SIZE and pos + 8 + size > len(raw):
                raise ValueError(
                    f"{path}: truncated WAV file: data chunk declares {size} bytes but only "
                    f"{len(raw) - pos - 8} are present"
                )
            return
        pos += 8 + size + (size & 1)  # chunks are word aligned
    raise ValueError(f"{path}: corrupt WAV file: no data chunk found")


def resample_pcm(pcm: np.ndarray, from_rate: int, to_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Resample 1-D (or (N, C)) audio along axis 0 with a polyphase filter."""
    if from_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {from_rate}")
    if from_rate == to_rate:
        return pcm.astype(np.float32, copy=False)
    g = gcd(int(from_rate), int(to_rate))
    return resample_poly(pcm, to_rate // g, from_rate // g, axis=0).astype(np.float32)


def read_wav(path: str | Path, *, resample: bool = False) -> np.ndarray:
    """Read a WAV file as float32 mono 16 kHz PCM in [-1, 1].

    Without `resample`, the file must already be 16 kHz mono: otherwise ValueError names
    `sample_rate` or `channels` and the allowed value. With `resample=True`, other rates are
    resampled with `scipy.signal.resample_poly` and multichannel audio is averaged to mono. Truncated or corrupt files and NaN/inf samples raise
    ValueError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    _check_riff_not_truncated(path)
    import soundfile as sf  # lazy: training machines without libsndfile never read WAVs

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as error:
        raise ValueError(f"{path}: corrupt or unsupported audio file: {error}") from error
    channels = data.shape[1]
    if not resample:
        if rate != SAMPLE_RATE:
            raise ValueError(
                f"{path}: sample_rate is {rate} Hz; allowed: {SAMPLE_RATE} "
                "(pass resample=True or --resample to convert)"
            )
        if channels != 1:
            raise ValueError(
                f"{path}: channels is {channels}; allowed: 1 "
                "(mono; pass resample=True or --resample to mix down)"
            )
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{path}: samples contain NaN or inf; allowed: finite values in [-1, 1]")
    pcm = data.mean(axis=1) if channels > 1 else data[:, 0]
    if rate != SAMPLE_RATE:
        log.debug("resampling %s from %d Hz to %d Hz", path, rate, SAMPLE_RATE)
        pcm = resample_pcm(pcm, rate, SAMPLE_RATE)
    return np.clip(pcm, -1.0, 1.0).astype(np.float32)


def validate_pcm(pcm: np.ndarray, name: str = "pcm") -> np.ndarray:
    """Check that `pcm` is 1-D finite audio and return it as float32 (no copy if already so)."""
    pcm = np.asarray(pcm)
    if pcm.ndim != 1:
        raise ValueError(f"{name} must be 1-D mono samples, got shape {pcm.shape}")
    if not np.issubdtype(pcm.dtype, np.floating):
        raise ValueError(f"{name} must be float PCM in [-1, 1], got dtype {pcm.dtype}")
    if not np.all(np.isfinite(pcm)):
        raise ValueError(f"{name} contains NaN or inf; allowed: finite values in [-1, 1]")
    return pcm.astype(np.float32, copy=False)


def write_wav(path: str | Path, pcm: np.ndarray) -> Path:
    """Write float PCM (clipped to [-1, 1]) as 16 kHz mono PCM16 WAV; returns the path."""
    pcm = validate_pcm(pcm)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import soundfile as sf

    sf.write(str(path), np.clip(pcm, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return path
