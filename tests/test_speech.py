"""Babble synthesis, viseme analysis, WAV and MP4 I/O."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.ndimage import uniform_filter1d

from lpm_npc import cli
from lpm_npc.config import SAMPLE_RATE, SAMPLES_PER_FRAME
from lpm_npc.synth.audio_io import read_wav, write_wav
from lpm_npc.synth.speech import VOICES, babble, synthesize
from lpm_npc.synth.video_io import read_mp4, read_mp4_audio, write_mp4
from lpm_npc.synth.visemes import visemes_from_audio

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "audio"


def _f0_autocorr(pcm: np.ndarray, centre: int) -> float:
    """Pitch of a 64 ms window by autocorrelation (70-400 Hz)."""
    win = pcm[max(centre - 512, 0) : centre + 512].astype(np.float64)
    win = win - win.mean()
    ac = np.correlate(win, win, "full")[len(win) - 1 :]
    lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 70
    lag = lo + int(np.argmax(ac[lo:hi]))
    return SAMPLE_RATE / lag


def _frame_rms(pcm: np.ndarray) -> np.ndarray:
    n = len(pcm) // SAMPLES_PER_FRAME
    return np.sqrt((pcm[: n * SAMPLES_PER_FRAME].reshape(n, -1) ** 2).mean(axis=1))


def test_babble_is_deterministic_and_seed_dependent():
    a = synthesize(5, 3.0, "alto")
    b = synthesize(5, 3.0, "alto")
    c = synthesize(6, 3.0, "alto")
    assert np.array_equal(a.pcm, b.pcm)
    assert a.syllables == b.syllables
    assert not np.array_equal(a.pcm, c.pcm)
    assert np.array_equal(babble(5, 3.0, "alto"), a.pcm)


def test_babble_is_fast_and_well_formed():
    start = time.perf_counter()
    pcm = babble(0, 6.0, "tenor")
    assert time.perf_counter() - start < 1.0
    assert pcm.dtype == np.float32 and pcm.shape == (6 * SAMPLE_RATE,)
    assert np.all(np.isfinite(pcm)) and np.abs(pcm).max() <= 1.0


@pytest.mark.parametrize("voice", sorted(VOICES))
def test_babble_is_speech_like(voice):
    utt = synthesize(11, 6.0, voice)
    timing = utt.frame_timing()
    # Voiced most of the time but not always; several phrases with pauses between them.
    assert 0.25 < timing.voiced.mean() < 0.85
    assert len(utt.phrases) >= 2
    assert timing.phrase_end.sum() == len(utt.phrases)
    rms = _frame_rms(utt.pcm)
    quiet = rms < 0.02 * rms.max()
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, quiet.astype(int), 0])))[::2]
    assert runs.max() >= 5, "expected at least one pause >= 200 ms"
    # Syllable rate close to the voice's rate (pauses excluded).
    spoken_s = sum(p.end - p.start for p in utt.phrases) / SAMPLE_RATE
    assert 0.5 * VOICES[voice].rate < len(utt.syllables) / spoken_s < 1.3 * VOICES[voice].rate
    # Measured pitch of vowel centres stays near the voice's pitch.
    f0 = [_f0_autocorr(utt.pcm, (s.vowel_start + s.end) // 2) for s in utt.syllables]
    median = float(np.median(f0))
    assert 0.75 * VOICES[voice].f0_hz < median < 1.35 * VOICES[voice].f0_hz, median


def test_voices_are_distinct_in_pitch():
    medians = []
    for name in sorted(VOICES, key=lambda v: VOICES[v].f0_hz):
        utt = synthesize(3, 4.0, name)
        medians.append(np.median([_f0_autocorr(utt.pcm, (s.vowel_start + s.end) // 2)
                                  for s in utt.syllables]))  # fmt: skip
    assert all(b > a for a, b in zip(medians, medians[1:], strict=False)), medians


def test_rising_phrases_end_higher():
    rises, falls = [], []
    for seed in range(6):
        utt = synthesize(seed, 8.0, "baritone")
        for phrase in utt.phrases:
            syls = [s for s in utt.syllables if phrase.start <= s.start < phrase.end]
            delta = syls[-1].f0_hz / syls[0].f0_hz
            (rises if phrase.rising else falls).append(delta)
    assert rises and falls
    assert np.mean(rises) > 1.15 > np.mean(falls)


def test_visemes_track_babble_vowels_and_close_in_pauses():
    by_vowel: dict[str, list[tuple[float, float]]] = {}
    for seed in range(3):
        utt = synthesize(seed, 8.0, "baritone")
        vis = visemes_from_audio(utt.pcm)
        assert vis.n_frames == len(utt.pcm) // SAMPLES_PER_FRAME
        for s in utt.syllables:
            a, b = s.vowel_start // SAMPLES_PER_FRAME, s.end // SAMPLES_PER_FRAME
            if b > a:
                by_vowel.setdefault(s.vowel, []).append(
                    (vis.lip_round[a:b].mean(), vis.lip_spread[a:b].mean())
                )
        rms = _frame_rms(utt.pcm)
        silent = uniform_filter1d(rms, 7) < 1e-4
        assert silent.any() and vis.jaw_open[silent].max() < 0.05
    mean = {v: np.mean(x, axis=0) for v, x in by_vowel.items()}
    assert min(mean["u"][0], mean["o"][0]) > max(mean["i"][0], mean["e"][0])
    assert min(mean["i"][1], mean["e"][1]) > max(mean["u"][1], mean["o"][1])


def test_visemes_of_silence_are_closed():
    vis = visemes_from_audio(np.zeros(SAMPLE_RATE, np.float32))
    assert vis.n_frames == SAMPLE_RATE // SAMPLES_PER_FRAME
    assert vis.jaw_open.max() == 0 and vis.lip_round.max() == 0 and vis.lip_spread.max() == 0
    with pytest.raises(ValueError, match="NaN"):
        visemes_from_audio(np.array([0.0, np.nan] * 1000, np.float32))


@pytest.fixture(scope="module")
def espeak_sentence(tmp_path_factory):
    if not shutil.which("espeak-ng") or not shutil.which("sox"):
        pytest.skip(
            "espeak-ng and sox are needed for the TTS viseme test (apt-get install espeak-ng sox)"
        )
    d = tmp_path_factory.mktemp("tts")
    raw, wav = d / "raw.wav", d / "s.wav"
    text = "Hello there, traveller. The road to the village is long. Shall I show you the way?"
    subprocess.run(["espeak-ng", "-v", "en", "-s", "150", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(wav)], check=True)
    return wav


def test_visemes_follow_tts_loudness_envelope(espeak_sentence):
    pcm = read_wav(espeak_sentence)
    vis = visemes_from_audio(pcm)
    envelope = uniform_filter1d(_frame_rms(pcm), 3)
    corr = float(np.corrcoef(vis.jaw_open, envelope)[0, 1])
    assert corr > 0.7, corr
    silent = envelope < 0.01 * envelope.max()
    assert silent.sum() >= 3, "the sentence should contain pauses"
    assert vis.jaw_open[silent].max() < 0.05
    assert vis.jaw_open.max() > 0.6


def test_visemes_follow_committed_tts_sample():
    """The committed espeak-ng sentence runs everywhere, also where espeak-ng is not installed."""
    pcm = read_wav(SAMPLES / "tts_sentence.wav")
    vis = visemes_from_audio(pcm)
    envelope = uniform_filter1d(_frame_rms(pcm), 3)
    assert np.corrcoef(vis.jaw_open, envelope)[0, 1] > 0.7
    silent = envelope < 0.01 * envelope.max()
    assert silent.sum() >= 3 and vis.jaw_open[silent].max() < 0.05
    for name in ("babble_speak.wav", "babble_listen.wav"):
        assert len(read_wav(SAMPLES / name)) == 6 * SAMPLE_RATE


def test_visemes_cli_json(tmp_path, capsys):
    path = write_wav(tmp_path / "b.wav", babble(2, 2.0, "soprano"))
    assert cli.main(["synth", "visemes", "--audio", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fps"] == 24
    n = 2 * SAMPLE_RATE // SAMPLES_PER_FRAME
    for key in ("jaw_open", "lip_round", "lip_spread"):
        assert len(out[key]) == n and 0 <= min(out[key]) and max(out[key]) <= 1
    assert max(out["jaw_open"]) > 0.5


def test_read_wav_validates(tmp_path, capsys):
    pcm = babble(1, 1.0, "low")
    good = write_wav(tmp_path / "good.wav", pcm)
    back = read_wav(good)
    assert back.dtype == np.float32 and len(back) == len(pcm)
    assert np.abs(back - pcm).max() < 1e-3  # PCM16 quantisation

    sf.write(tmp_path / "r22.wav", pcm[:8000], 22050)
    with pytest.raises(ValueError, match="sample_rate.*16000"):
        read_wav(tmp_path / "r22.wav")
    assert abs(len(read_wav(tmp_path / "r22.wav", resample=True)) - 8000 * 16000 / 22050) < 2
    assert cli.main(["synth", "visemes", "--audio", str(tmp_path / "r22.wav")]) == 2
    assert "sample_rate" in capsys.readouterr().err

    sf.write(tmp_path / "st.wav", np.stack([pcm, pcm], axis=1), SAMPLE_RATE)
    with pytest.raises(ValueError, match="channels.*1"):
        read_wav(tmp_path / "st.wav")
    assert read_wav(tmp_path / "st.wav", resample=True).shape == pcm.shape

    (tmp_path / "cut.wav").write_bytes(good.read_bytes()[:5000])
    with pytest.raises(ValueError, match="cut.wav.*truncated"):
        read_wav(tmp_path / "cut.wav")
    (tmp_path / "junk.wav").write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(ValueError, match="junk.wav"):
        read_wav(tmp_path / "junk.wav")
    bad = pcm.copy()
    bad[10] = np.nan
    sf.write(tmp_path / "nan.wav", bad, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(ValueError, match="nan.wav.*NaN"):
        read_wav(tmp_path / "nan.wav")
    with pytest.raises(FileNotFoundError):
        read_wav(tmp_path / "missing.wav")


def test_mp4_roundtrip_with_audio(tmp_path):
    t = np.arange(24)[:, None, None, None]
    yy, xx = np.mgrid[0:32, 0:48]
    frames = np.broadcast_to(
        np.stack([xx * 5, yy * 7, np.full_like(xx, 128)], -1)[None], (24, 32, 48, 3)
    ).copy()
    frames = ((frames + t * 3) % 256).astype(np.uint8)
    audio = babble(0, 1.0, "alto")
    path = write_mp4(tmp_path / "v.mp4", frames, 24, audio=audio)
    back, fps = read_mp4(path)
    assert back.shape == frames.shape and fps == 24
    assert np.abs(back.astype(int) - frames).mean() < 6
    pcm, rate = read_mp4_audio(path)
    assert rate == SAMPLE_RATE and abs(len(pcm) - len(audio)) < 2048
    n = min(len(pcm), len(audio))
    assert np.corrcoef(pcm[:n], audio[:n])[0, 1] > 0.9
    with pytest.raises(ValueError, match="even"):
        write_mp4(tmp_path / "odd.mp4", np.zeros((2, 31, 32, 3), np.uint8), 24)
