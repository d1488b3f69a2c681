"""Babble speech synthesizer: speech-like 16 kHz audio with ground-truth syllable/phrase timing.

Source-filter synthesis, vectorised with numpy/scipy:
- a glottal pulse train (Rosenberg flow pulses, differentiated for lip radiation) driven by a pitch
  contour (phrase declination, accents on stressed syllables, a final rise on questions, jitter),
  plus aspiration noise for breathy voices;
- vowel formants (F1..F3 of seven vowels, scaled per voice) applied as a time-varying spectral
  envelope in the STFT domain, gliding between syllables;
- consonant onsets/codas: plosives (closure + burst), fricatives (band-limited noise) and nasals
  (quiet low-formant voicing);
- syllable rhythm from the voice's rate, phrases of 1-10 syllables (mostly 2-10) separated by pauses.

`synthesize` returns an `Utterance` (pcm + syllables + phrases); `Utterance.frame_timing()` gives
per-video-frame ground truth (voicing, pitch, stress onsets, phrase ends, rising phrases) that the
director uses for nods, beats and brows. `babble` returns only the pcm. This module does not read
or write files and does not derive visemes (see `visemes.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.signal import butter, istft, sosfilt, stft

from lpm_npc.config import SAMPLE_RATE, SAMPLES_PER_FRAME


@dataclass(frozen=True)
class Voice:
    """One speaker's vocal identity."""

    name: str  # key in VOICES
    f0_hz: float  # median pitch, Hz
    pitch_range: float  # phrase-level pitch excursion, semitones
    formant_scale: float  # vocal-tract scaling of formant frequencies (1 = adult male)
    rate: float  # syllables per second
    breathiness: float  # aspiration noise mixed into the voice source, 0..1
    jitter: float  # slow random f0 perturbation, fraction of f0


VOICES: dict[str, Voice] = {
    "low": Voice("low", 98.0, 5.0, 0.92, 4.0, 0.05, 0.012),
    "baritone": Voice("baritone", 122.0, 6.0, 1.0, 4.6, 0.08, 0.010),
    "tenor": Voice("tenor", 150.0, 7.0, 1.05, 5.2, 0.10, 0.010),
    "alto": Voice("alto", 190.0, 7.0, 1.13, 4.4, 0.18, 0.010),
    "soprano": Voice("soprano", 235.0, 8.0, 1.18, 5.0, 0.15, 0.008),
    "child": Voice("child", 290.0, 9.0, 1.3, 4.2, 0.12, 0.015),
}

# Adult formant targets (F1, F2, F3), Hz; `openness` scales loudness (open vowels are louder).
VOWELS: dict[str, tuple[float, float, float]] = {
    "a": (730.0, 1090.0, 2440.0),
    "ae": (660.0, 1720.0, 2410.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (280.0, 2250.0, 2900.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (310.0, 870.0, 2240.0),
    "schwa": (500.0, 1500.0, 2500.0),
}
_NASAL_FORMANTS = (280.0, 1100.0, 2500.0)
_BANDWIDTHS = (90.0, 110.0, 170.0, 250.0)  # formant bandwidths, Hz
_F4_HZ = 3500.0  # fixed fourth formant (adult), scaled with the voice

# Consonant kinds: noise band index (see _NOISE_BANDS) or None, and typical duration, s.
_CONSONANTS: dict[str, tuple[int | None, float]] = {
    "plosive": (0, 0.065),  # closure then a broadband burst
    "s": (1, 0.11),
    "sh": (2, 0.10),
    "f": (3, 0.09),
    "nasal": (None, 0.07),
}
_NOISE_BANDS = ((500.0, 5000.0), (4000.0, 7600.0), (2000.0, 4500.0), (1000.0, 7000.0))
_NOISE_GAIN = (0.5, 0.35, 0.35, 0.15)

_NFFT = 512
_HOP = 128


@dataclass(frozen=True)
class Syllable:
    """One syllable; sample indices into the utterance."""

    start: int  # first sample (consonant onset or vowel start)
    vowel_start: int  # first sample of the vowel nucleus
    end: int  # one past the last sample of the vowel (a fricative coda may follow)
    vowel: str  # key in VOWELS
    stressed: bool  # carries a pitch accent and extra loudness/length
    f0_hz: float  # pitch at the vowel centre


@dataclass(frozen=True)
class Phrase:
    """A run of syllables between pauses; sample indices into the utterance."""

    start: int
    end: int
    rising: bool  # question-like final rise (the listener may raise its brows)
    n_syllables: int


@dataclass(frozen=True)
class FrameTiming:
    """Per-video-frame ground truth of an utterance (frames of SAMPLES_PER_FRAME samples)."""

    voiced: np.ndarray  # (T,) bool, a vowel nucleus overlaps the frame
    f0_hz: np.ndarray  # (T,) float32, pitch of the voiced frame, 0 when unvoiced
    stress_onset: np.ndarray  # (T,) bool, a stressed vowel starts in the frame
    phrase_end: np.ndarray  # (T,) bool, a phrase ends in the frame
    rising_end: np.ndarray  # (T,) bool, a rising (question) phrase ends in the frame


@dataclass(frozen=True)
class Utterance:
    """Synthesized babble with its ground-truth timing."""

    pcm: np.ndarray  # (N,) float32 in [-1, 1], 16 kHz
    voice: Voice
    syllables: tuple[Syllable, ...]
    phrases: tuple[Phrase, ...]

    def frame_timing(self, n_frames: int | None = None) -> FrameTiming:
        """Per-frame timing on the video clock; `n_frames` defaults to len(pcm) // 666."""
        n = len(self.pcm) // SAMPLES_PER_FRAME if n_frames is None else n_frames
        voiced = np.zeros(n, bool)
        f0 = np.zeros(n, np.float32)
        stress = np.zeros(n, bool)
        phrase_end = np.zeros(n, bool)
        rising = np.zeros(n, bool)
        for syl in self.syllables:
            a, b = syl.vowel_start // SAMPLES_PER_FRAME, -(-syl.end // SAMPLES_PER_FRAME)
            voiced[a:b] = True
            f0[a:b] = syl.f0_hz
            if syl.stressed and a < n:
                stress[a] = True
        for phrase in self.phrases:
            k = min((phrase.end - 1) // SAMPLES_PER_FRAME, n - 1)
            if k >= 0:
                phrase_end[k] = True
                rising[k] = phrase.rising
        return FrameTiming(voiced, f0, stress, phrase_end, rising)


def get_voice(voice: str | Voice | None, rng: np.random.Generator | None = None) -> Voice:
    """Resolve a voice name (or a Voice, or None = random from `rng`)."""
    if isinstance(voice, Voice):
        return voice
    if voice is None:
        rng = rng or np.random.default_rng(0)
        return VOICES[sorted(VOICES)[int(rng.integers(len(VOICES)))]]
    if voice not in VOICES:
        raise ValueError(f"voice must be one of {sorted(VOICES)}, got {voice!r}")
    return VOICES[voice]


def _plan(
    rng: np.random.Generator, n: int, voice: Voice, rate_scale: float, pitch_scale: float
) -> tuple[list[Syllable], list[Phrase], list[tuple[str, int, int]]]:
    """Lay out phrases, syllables and consonants on the sample axis (ends within n)."""
    sr = SAMPLE_RATE
    syllables: list[Syllable] = []
    phrases: list[Phrase] = []
    consonants: list[tuple[str, int, int]] = []  # (kind, start, end)
    vowels = list(VOWELS)
    kinds = list(_CONSONANTS)
    f0_base = voice.f0_hz * pitch_scale
    syl_s = 1.0 / (voice.rate * rate_scale)
    t = int(rng.uniform(0.03, 0.15) * sr)
    max_syl = 10
    while True:
        n_syl = int(rng.integers(1, max_syl + 1)) if max_syl < 10 else int(rng.integers(2, 11))
        rising = bool(rng.random() < 0.3)
        stressed = rng.random(n_syl) < 0.3
        stressed[int(rng.integers(n_syl))] = True
        # Estimate the phrase length first so that a phrase never gets cut by the end.
        durs = syl_s * rng.uniform(0.75, 1.25, n_syl) * np.where(stressed, 1.3, 1.0)
        durs[-1] *= 1.4  # phrase-final lengthening
        if t + int(durs.sum() * sr) >= n - int(0.05 * sr):
            if n_syl == 1:
                break
            max_syl = n_syl - 1  # try a shorter phrase to fill the remaining time
            continue
        phrase_start = t
        for i in range(n_syl):
            syl_start = t
            dur = int(durs[i] * sr)
            kind = kinds[int(rng.integers(len(kinds)))] if rng.random() < 0.75 else None
            cons_len = int(_CONSONANTS[kind][1] * rng.uniform(0.8, 1.2) * sr) if kind else 0
            cons_len = min(cons_len, dur // 2)
            if kind:
                consonants.append((kind, t, t + cons_len))
            vowel_start = t + cons_len
            end = syl_start + dur
            if rng.random() < 0.15 and end - vowel_start > 0.12 * sr:  # fricative coda
                coda = int(0.06 * sr)
                consonants.append((("s", "f", "sh")[int(rng.integers(3))], end - coda, end))
                end_vowel = end - coda
            else:
                end_vowel = end
            # Pitch: declination across the phrase, accent on stress, final rise on questions.
            pos = i / max(n_syl - 1, 1)
            semis = voice.pitch_range * (0.5 - pos) * 0.6
            semis += 2.5 if stressed[i] else 0.0
            if rising and i >= n_syl - 2:
                semis += voice.pitch_range * (0.6 if i == n_syl - 1 else 0.3) + 3.0
            f0 = f0_base * 2.0 ** (semis / 12.0)
            syllables.append(
                Syllable(
                    syl_start,
                    vowel_start,
                    end_vowel,
                    vowels[int(rng.integers(len(vowels)))],
                    bool(stressed[i]),
                    float(f0),
                )
            )
            t = end
        phrases.append(Phrase(phrase_start, t, rising, n_syl))
        max_syl = 10
        t += int(rng.uniform(0.25, 0.75) * sr)  # pause between phrases
        if t >= n - int(0.3 * sr):
            break
    return syllables, phrases, consonants


@lru_cache(maxsize=len(_NOISE_BANDS))
def _noise_filter(band: int) -> np.ndarray:
    """Second-order sections of the band-pass that shapes consonant noise band `band`."""
    lo, hi = _NOISE_BANDS[band]
    return butter(
        4, [lo, min(hi, SAMPLE_RATE / 2 - 100)], btype="band", fs=SAMPLE_RATE, output="sos"
    )


def _rosenberg_source(f0: np.ndarray, rng: np.random.Generator, voice: Voice) -> np.ndarray:
    """Differentiated Rosenberg glottal flow pulses at the instantaneous pitch f0 (per sample)."""
    phase = np.cumsum(f0 / SAMPLE_RATE) + rng.random()
    frac = phase % 1.0
    t_open, t_close = 0.4, 0.16  # open and closing quotients of the glottal cycle
    flow = np.where(
        frac < t_open,
        0.5 * (1.0 - np.cos(np.pi * frac / t_open)),
        np.where(
            frac < t_open + t_close,
            np.cos(0.5 * np.pi * (frac - t_open) / t_close),
            0.0,
        ),
    )
    source = np.diff(flow, prepend=flow[0])
    source /= np.abs(source).max() + 1e-9
    aspiration = rng.standard_normal(len(f0)) * (0.2 + flow) * voice.breathiness * 0.5
    return source + aspiration


def _formant_envelope(freqs: np.ndarray, formants: np.ndarray, scale: float) -> np.ndarray:
    """|H(f)| of cascaded second-order resonators; formants (K, frames) -> (F, frames).

    A fixed F4 and a +6 dB/octave correction above 1 kHz stand in for the higher poles a
    three-formant cascade lacks; without them front vowels (i, e) lose their bright F2-F3 region.
    """
    f = freqs[:, None]
    formants = np.concatenate([formants, np.full((1, formants.shape[1]), _F4_HZ * scale)])
    env = np.repeat(np.sqrt(1.0 + (freqs / 1000.0) ** 2)[:, None], formants.shape[1], axis=1)
    for k in range(formants.shape[0]):
        fk = formants[k][None, :]
        bk = _BANDWIDTHS[k] * scale
        env *= fk**2 / np.sqrt((fk**2 - f**2) ** 2 + (f * bk) ** 2)
    return env


def synthesize(
    seed: int,
    seconds: float,
    voice: str | Voice | None = None,
    *,
    rate_scale: float = 1.0,
    pitch_scale: float = 1.0,
    loudness: float = 0.5,
) -> Utterance:
    """Synthesize `seconds` of babble (phrases and pauses) deterministically from `seed`.

    `rate_scale` / `pitch_scale` modulate the voice (style: energetic speech is faster and higher);
    `loudness` is the peak amplitude of the result.
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    if not 0.25 <= rate_scale <= 4.0 or not 0.25 <= pitch_scale <= 4.0:
        raise ValueError("rate_scale and pitch_scale must be in [0.25, 4]")
    if not 0.0 < loudness <= 1.0:
        raise ValueError(f"loudness must be in (0, 1], got {loudness}")
    rng = np.random.default_rng([int(seed), 0x5BEEC])
    voice = get_voice(voice, rng)
    n = int(round(seconds * SAMPLE_RATE))
    syllables, phrases, consonants = _plan(rng, n, voice, rate_scale, pitch_scale)
    pcm = np.zeros(n, np.float32)
    if not syllables:
        return Utterance(pcm, voice, (), ())

    # Pitch contour: interpolate between vowel-centre targets, with slow jitter.
    centres = np.array([(s.vowel_start + s.end) / 2 for s in syllables])
    f0_knots = np.array([s.f0_hz for s in syllables])
    samples = np.arange(n)
    f0 = np.interp(samples, centres, f0_knots)
    wobble = np.interp(
        samples, np.linspace(0, n, max(n // 400, 2)), rng.standard_normal(max(n // 400, 2))
    )
    f0 *= 1.0 + voice.jitter * wobble

    # Voicing amplitude: raised-cosine nucleus per syllable, louder when stressed / open vowel.
    voiced_amp = np.zeros(n)
    for s in syllables:
        length = s.end - s.vowel_start
        if length <= 4:
            continue
        ramp = min(int(0.025 * SAMPLE_RATE), length // 3)
        env = np.ones(length)
        env[:ramp] = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        env[-ramp:] = env[:ramp][::-1]
        gain = (1.0 if s.stressed else 0.65) * (0.6 + 0.6 * VOWELS[s.vowel][0] / 730.0)
        voiced_amp[s.vowel_start : s.end] = np.maximum(
            voiced_amp[s.vowel_start : s.end], env * gain
        )

    # Consonants: noise gains per band; nasals are quiet voicing.
    noise_gain = np.zeros((len(_NOISE_BANDS), n))
    nasal_spans: list[tuple[int, int]] = []
    for kind, a, b in consonants:
        band, _ = _CONSONANTS[kind]
        if kind == "nasal":
            voiced_amp[a:b] = np.maximum(voiced_amp[a:b], 0.25)
            nasal_spans.append((a, b))
        elif kind == "plosive":
            burst = min(int(0.015 * SAMPLE_RATE), b - a)
            noise_gain[band, b - burst : b] = np.hanning(burst + 2)[1:-1]  # closure is silence
        else:
            length = b - a
            noise_gain[band, a:b] = np.hanning(length + 2)[1:-1]

    source = _rosenberg_source(f0, rng, voice) * voiced_amp

    # Time-varying formant filter in the STFT domain (vowel targets glide between syllables).
    freqs, times, spec = stft(
        source, SAMPLE_RATE, nperseg=_NFFT, noverlap=_NFFT - _HOP, boundary="even"
    )
    knot_t = list(centres / SAMPLE_RATE)
    knot_f = [VOWELS[s.vowel] for s in syllables]
    for a, b in nasal_spans:
        knot_t.append((a + b) / 2 / SAMPLE_RATE)
        knot_f.append(_NASAL_FORMANTS)
    order = np.argsort(knot_t)
    knot_t_arr = np.asarray(knot_t)[order]
    knot_f_arr = np.asarray(knot_f)[order] * voice.formant_scale
    formants = np.stack([np.interp(times, knot_t_arr, knot_f_arr[:, k]) for k in range(3)])
    env = _formant_envelope(freqs, formants, voice.formant_scale)
    _, voiced = istft(spec * env, SAMPLE_RATE, nperseg=_NFFT, noverlap=_NFFT - _HOP)
    voiced = voiced[:n]
    loud = voiced_amp > 0.5
    if loud.any():  # normalise the voiced part so consonant noise levels are relative to it
        voiced = voiced / (np.percentile(np.abs(voiced[loud]), 99) + 1e-9)

    noise = rng.standard_normal(n)
    for k in range(len(_NOISE_BANDS)):
        if not noise_gain[k].any():
            continue
        band = sosfilt(_noise_filter(k), noise)
        band /= np.std(band) + 1e-9
        voiced = voiced + _NOISE_GAIN[k] * noise_gain[k] * band * 0.35

    peak = np.abs(voiced).max()
    pcm = (voiced * (loudness / peak if peak > 0 else 0.0)).astype(np.float32)
    return Utterance(pcm, voice, tuple(syllables), tuple(phrases))


def babble(seed: int, seconds: float, voice: str | Voice | None = None) -> np.ndarray:
    """`seconds` of speech-like float32 16 kHz audio in `voice` (random from the seed if None)."""
    return synthesize(seed, seconds, voice).pcm
