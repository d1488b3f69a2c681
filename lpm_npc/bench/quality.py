"""LPM-Bench-synth: quality of a checkpoint on characters it never saw, scored by the judge, at
every rung of the ceiling ladder.

Cases (`bench.quality_cases`): held-out characters (`synth.dataset.held_out_character_seeds`:
seeds >= 1,000,000, never drawn by training) with conversations, TTS sentences and prompted clips
scripted by `synth.director` / `synth.tracks`. Frames are read by the judge shipped with the
checkpoint (`judge.safetensors`). Suites (`config.QUALITY_SUITES`): `quick` (2 characters, 12 s
conversations, 40 s drift horizon; minutes on 2 CPU cores) and `full` (6 characters, 30 s, the
10-minute drift session).

Rungs (`"rungs"` of the report), each measured on the same cases in the same run:
- `truth`: renders of the director's scripts (the world's ceiling, e.g. the judge's own lip-sync);
- `vae`: those renders encoded and decoded by the checkpoint's VAE (`judge.roundtrip`);
- `teacher`: the Base LPM (`teacher.safetensors`, `bench.quality_teacher`): independent
  bidirectional clips of `gap_frames` frames, `teacher_steps` Euler steps; it draws the
  conversations, the TTS sentences and the first `gap_frames` frames of each prompted clip;
- `student`: the shipped Online LPM through the real StreamingGenerator (`bench.offline`).
A metric a rung cannot apply is None (JSON null): the truth and the vae rungs have no references
(`single_ref_drift_db`); the teacher is a clip model with no long session (`identity_drift_db`,
`single_ref_drift_db`) and does not draw the no-listen ablation (its cost would double the rung).
A checkpoint without a teacher gets a null teacher rung and a note.

Metrics (means over the suite's characters / clips):
- `lipsync_corr_babble`: Pearson correlation, per session at lag 0, between the judge's jaw_open on
  the frames and the jaw_open that `synth.visemes.visemes_from_audio` derives from the SPEAK track,
  over whole directed conversations (babble speech, player turns and silences).
- `lipsync_corr_tts`: the same with espeak-ng TTS sentences as the SPEAK track and a silent LISTEN
  track (the committed `samples/audio/tts_sentence.wav` when espeak-ng is not installed).
- `listen_reaction_ratio`: judge-detected reaction events (nods: head_pitch above its 1 s running
  median by > 3 deg; brow raises: brow_raise above its running median by > 0.15; onsets at least
  0.3 s apart) per second during the player's turns, divided by the same rate during shared
  silence; each rate gets +0.05 events/s so the ratio stays finite. Events and seconds are pooled
  over characters. > 1 means the character reacts to the player more than it fidgets in silence.
- `no_listen_reaction_ratio`: the same with the LISTEN track zeroed (the turn timing still comes
  from the script, so it measures what the listen audio adds).
- `identity_psnr_db`: PSNR (dB, uint8, whole frame) of each conversation's frames against the
  truth render of the same script, mean over characters (the truth rung scores itself: the
  `psnr_db` cap, 148.1 dB).
- `mouth_psnr_db`: the same inside the mouth box of each truth frame (`synth.face_boxes`).
- `identity_drift_db`: PSNR against truth over the first `drift_window_s` minus over the last
  window of a `drift_seconds` session (full: minute 1 vs minute 10; quick: the first vs last 8 s
  of 40 s, reported in `notes`). Positive = the picture drifted away.
- `single_ref_drift_db`: `identity_drift_db` with only the front view as reference.
- `text_control_acc`: for each held-out character and prompt word (cheerful, sad, angry,
  surprised, skeptical), the judge's expression probabilities averaged over the clip; correct when
  the prompted expression has the highest mean probability among the prompted expressions
  (`judge.calibrate.expression_accuracy`; chance = 1 / 5).
Top-level keys are the student's; `student_teacher_gap_db` = teacher minus student
`identity_psnr_db` (positive = distillation lost quality; NaN with a note without a teacher);
`*_truth` keys repeat the truth rung. The definitions are fixed in advance and never tuned to a
model. This module does not train.
"""

from __future__ import annotations

import logging
import math
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lpm_npc.bench.offline import RenderJob, render_jobs
from lpm_npc.bench.quality_cases import (
    BenchCases,
    RungFrames,
    build_cases,
    truth_frames,
    vae_frames,
)
from lpm_npc.bench.quality_metrics import (
    box_psnr_db,
    event_onsets,
    event_rate,
    pearson,
    psnr_db,
    segment_mask,
)
from lpm_npc.bench.quality_teacher import TeacherRenderer
from lpm_npc.config import FPS, QUALITY_SUITES, QualityConfig
from lpm_npc.judge.calibrate import expression_accuracy, prompted_expression

log = logging.getLogger(__name__)

__all__ = ["RUNGS", "RUNG_METRICS", "QualityReport", "prompted_expression", "run_quality"]

TTS_SENTENCES: tuple[str, ...] = (
    "Welcome, traveller. The road north is long. Shall I show you the way?",
    "I have not seen the blacksmith since the storm. Ask at the mill.",
    "Gold first, then the map. That is how it works around here.",
)
RUNGS: tuple[str, ...] = ("truth", "vae", "teacher", "student")
RUNG_METRICS: tuple[str, ...] = (
    "lipsync_corr_babble",
    "lipsync_corr_tts",
    "listen_reaction_ratio",
    "no_listen_reaction_ratio",
    "identity_psnr_db",
    "mouth_psnr_db",
    "identity_drift_db",
    "single_ref_drift_db",
    "text_control_acc",
)


@dataclass(frozen=True)
class QualityReport:
    """Every LPM-Bench-synth number of one run (see the module docstring); top level = student."""

    suite: str
    lipsync_corr_babble: float
    lipsync_corr_tts: float
    listen_reaction_ratio: float
    identity_psnr_db: float
    mouth_psnr_db: float
    identity_drift_db: float
    text_control_acc: float
    student_teacher_gap_db: float
    single_ref_drift_db: float
    no_listen_reaction_ratio: float
    lipsync_corr_babble_truth: float
    listen_reaction_ratio_truth: float
    text_control_acc_truth: float
    rungs: dict[str, dict[str, float | None]]  # rung -> RUNG_METRICS (None = not applicable)
    seconds: float  # wall-clock of the whole run
    notes: tuple[str, ...]


def tts_tracks(n: int) -> list[np.ndarray]:
    """`n` TTS sentences with espeak-ng, or the committed sample when it is not installed."""
    from lpm_npc.synth.audio_io import read_wav

    exe = shutil.which("espeak-ng")
    out: list[np.ndarray] = []
    if exe:
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(n):
                path = Path(tmp) / f"s{i}.wav"
                sentence = TTS_SENTENCES[i % len(TTS_SENTENCES)]
                subprocess.run(
                    [exe, "-v", "en", "-s", "150", "-w", str(path), sentence],
                    check=True,
                    capture_output=True,
                    timeout=60,
                )
                out.append(read_wav(path, resample=True))
        return out
    sample = Path(__file__).resolve().parents[2] / "samples" / "audio" / "tts_sentence.wav"
    if not sample.is_file():
        raise FileNotFoundError(
            "no espeak-ng and no samples/audio/tts_sentence.wav for the TTS test"
        )
    return [read_wav(sample)] * n


class _Scorer:
    """The judge and the event detector applied to one rung's frames."""

    def __init__(self, judge, suite: QualityConfig, cases: BenchCases, truth: RungFrames) -> None:
        self.judge, self.suite, self.cases, self.truth = judge, suite, cases, truth
        self._readings: dict[int, tuple[np.ndarray, object]] = {}

    def read(self, frames: np.ndarray):
        # Readings are memoised per array: several metrics read the same frames.
        key = id(frames)
        if key not in self._readings or self._readings[key][0] is not frames:
            self._readings[key] = (frames, self.judge.read(frames))
        return self._readings[key][1]

    def reaction_counts(self, frames: np.ndarray, turns) -> np.ndarray:
        """[player events, player s, silence events, silence s] of one session."""
        s = self.suite
        reading = self.read(frames)
        n = len(frames)
        player = segment_mask(turns, "player", n, FPS)
        silence = segment_mask(turns, "silence", n, FPS)
        out = np.zeros(4)
        for signal, threshold in (
            (reading.head_pitch, s.nod_threshold_deg),
            (reading.brow_raise, s.brow_threshold),
        ):
            onsets = event_onsets(signal, threshold, FPS, s.baseline_s, s.refractory_s)
            pe, ps = event_rate(onsets, player, FPS)
            se, ss = event_rate(onsets, silence, FPS)
            out += [pe, ps / 2, se, ss / 2]  # seconds counted once across the two event kinds
        return out

    def ratio(self, sessions: list[np.ndarray]) -> float:
        counts = sum(
            (self.reaction_counts(f, c.script.turns) for f, c in zip(sessions, self.cases.convs)),
            np.zeros(4),
        )
        floor = self.suite.rate_floor
        player_rate = counts[0] / max(counts[1], 1e-9) + floor
        silence_rate = counts[2] / max(counts[3], 1e-9) + floor
        return float(player_rate / silence_rate)

    def lipsync(self, sessions: list[np.ndarray], speak: list[np.ndarray]) -> float:
        from lpm_npc.synth.visemes import visemes_from_audio

        return float(
            np.mean(
                [
                    pearson(self.read(f).jaw_open, visemes_from_audio(pcm).jaw_open)
                    for f, pcm in zip(sessions, speak)
                ]
            )
        )

    def drift(self, windows: dict[int, np.ndarray]) -> float:
        truth = self.truth.drift
        psnr = {k: psnr_db(f, truth[k][: len(f)]) for k, f in windows.items()}
        return psnr[0] - psnr[1]

    def measure(self, rung: RungFrames) -> dict[str, float | None]:
        """RUNG_METRICS of one rung; None where it drew nothing for the metric."""
        cases, truth = self.cases, self.truth
        out: dict[str, float | None] = dict.fromkeys(RUNG_METRICS)
        if rung.conv is not None:
            out["lipsync_corr_babble"] = self.lipsync(rung.conv, [c.speak for c in cases.convs])
            out["listen_reaction_ratio"] = self.ratio(rung.conv)
            whole, mouth = [], []
            for f, t, boxes in zip(rung.conv, truth.conv, cases.mouth):
                n = min(len(f), len(t))
                whole.append(psnr_db(f[:n], t[:n]))
                mouth.append(box_psnr_db(f[:n], t[:n], boxes[:n]))
            out["identity_psnr_db"] = float(np.mean(whole))
            out["mouth_psnr_db"] = float(np.mean(mouth))
        if rung.quiet is not None:
            out["no_listen_reaction_ratio"] = self.ratio(rung.quiet)
        if rung.tts is not None:
            out["lipsync_corr_tts"] = self.lipsync(rung.tts, cases.tts)
        if rung.text is not None:
            probs = [self.read(f).expression_probs for f in rung.text]
            out["text_control_acc"] = expression_accuracy(probs, self.suite.text_prompts)
        if rung.drift is not None:
            out["identity_drift_db"] = self.drift(rung.drift)
        if rung.drift_single is not None:
            out["single_ref_drift_db"] = self.drift(rung.drift_single)
        return out


def run_quality(
    checkpoint: str | Path | None = None,
    suite: str = "quick",
    *,
    device: str = "cpu",
    progress: bool = False,
) -> QualityReport:
    """Run LPM-Bench-synth on `checkpoint` (default: the embedded tiny one), every rung."""
    from lpm_npc.engine.generator import StreamingGenerator
    from lpm_npc.engine.weights import default_checkpoint_dir
    from lpm_npc.judge.reader import load_judge

    if suite not in QUALITY_SUITES:
        raise ValueError(f"--suite must be one of {sorted(QUALITY_SUITES)}, got {suite!r}")
    s = QUALITY_SUITES[suite]
    started = time.perf_counter()
    ckpt = Path(checkpoint) if checkpoint is not None else default_checkpoint_dir()
    generator = StreamingGenerator.from_checkpoint(ckpt, device=device)
    size = generator.cfg.image_size
    notes: list[str] = []
    cases = build_cases(s, size, tts_tracks(s.n_characters))
    truth = truth_frames(cases, size)
    scorer = _Scorer(load_judge(ckpt, device=device), s, cases, truth)
    frames = {
        "truth": truth,
        "vae": vae_frames(truth, generator.model.vae),
        "teacher": teacher_frames(generator, ckpt, cases, s, notes),
        "student": student_frames(generator, cases, s, progress),
    }
    rungs = {name: scorer.measure(frames[name]) for name in RUNGS}
    if frames["teacher"].conv is None:
        rungs["teacher"] = dict.fromkeys(RUNG_METRICS)
    if s.drift_seconds < 600:
        notes.append(
            f"identity drift over a {s.drift_seconds:g} s horizon (first vs last {s.drift_window_s:g} s), "
            "not minute 1 vs minute 10: run --suite full for that"
        )
    student, top = rungs["student"], rungs["truth"]
    teacher_psnr = rungs["teacher"]["identity_psnr_db"]
    gap = math.nan if teacher_psnr is None else teacher_psnr - float(student["identity_psnr_db"])
    return QualityReport(
        suite=suite,
        **{k: float(student[k]) for k in RUNG_METRICS},  # type: ignore[arg-type]
        student_teacher_gap_db=gap,
        lipsync_corr_babble_truth=float(top["lipsync_corr_babble"]),
        listen_reaction_ratio_truth=float(top["listen_reaction_ratio"]),
        text_control_acc_truth=float(top["text_control_acc"]),
        rungs=rungs,
        seconds=round(time.perf_counter() - started, 1),
        notes=tuple(notes),
    )


def teacher_frames(
    generator, ckpt: Path, cases: BenchCases, s: QualityConfig, notes: list[str]
) -> RungFrames:
    """The teacher rung (see the module docstring); empty with a note without a teacher."""
    from lpm_npc.model.references import select_references
    from lpm_npc.synth.sheet import sheet_to_array

    renderer = TeacherRenderer(
        generator, ckpt, s.gap_frames, steps=s.teacher_steps or generator.cfg.teacher_steps
    )
    if not renderer.available:
        notes.append(f"teacher rung and student_teacher_gap_db are empty: {renderer.reason}")
        return RungFrames()
    size, limit = generator.cfg.image_size, generator.cfg.max_references
    characters = []
    for i, sheet in enumerate(cases.sheets):
        images, roles = sheet_to_array(sheet, size)
        # The same references the student keeps (`StreamingGenerator.prepare`).
        keep = select_references([tuple(r) for r in roles], limit)
        characters.append((i, images[keep], [tuple(roles[k]) for k in keep]))
    n_prompts = len(s.text_prompts)
    with renderer:
        conv = [
            renderer.render(characters[i], c.speak, c.listen, c.script.prompt, c.motion.n_frames, i)
            for i, c in enumerate(cases.convs)
        ]
        tts = [
            renderer.render(characters[i], c.speak, c.listen, "", c.motion.n_frames, 100 + i)
            for i, c in enumerate(cases.tts_truth)
        ]
        text = [
            renderer.render(
                characters[k // n_prompts],
                c.speak,
                c.listen,
                c.script.prompt,
                s.gap_frames,
                200 + k,
            )
            for k, c in enumerate(cases.text)
        ]
    return RungFrames(conv=conv, tts=tts, text=text)


def student_frames(generator, cases: BenchCases, s: QualityConfig, progress: bool) -> RungFrames:
    """The student rung: every case through the StreamingGenerator (`bench.offline`)."""
    from lpm_npc.synth.sheet import sheet_to_array

    def render(jobs: list[RenderJob], seconds: float | None = None) -> list[np.ndarray]:
        frames, stats = render_jobs(generator, jobs, seconds=seconds, progress=progress)
        log.info("rendered %d x %.1f s (RTF %.2f)", len(jobs), stats.media_s, stats.rtf)
        return frames

    size = generator.cfg.image_size
    prepared = [
        generator.prepare(*sheet_to_array(sheet, size), name=sheet.name) for sheet in cases.sheets
    ]
    convs, n = cases.convs, len(cases.convs)
    jobs = [
        RenderJob(p, c.speak, c.listen, c.script.prompt, i)
        for i, (p, c) in enumerate(zip(prepared, convs))
    ]
    jobs += [
        RenderJob(p, c.speak, np.zeros_like(c.listen), c.script.prompt, i)
        for i, (p, c) in enumerate(zip(prepared, convs))
    ]
    both = render(jobs)
    tts = render(
        [
            RenderJob(p, pcm, np.zeros_like(pcm), "", i)
            for i, (p, pcm) in enumerate(zip(prepared, cases.tts))
        ]
    )
    n_prompts = len(s.text_prompts)
    text = render(
        [
            RenderJob(
                prepared[k // n_prompts],
                c.speak,
                np.zeros_like(c.speak),
                c.script.prompt,
                k // n_prompts,
            )
            for k, c in enumerate(cases.text)
        ],
        seconds=s.text_seconds,
    )
    full, single = drift_sessions(generator, prepared[0], cases, s.drift_seconds, progress)
    return RungFrames(
        conv=both[:n], quiet=both[n:], tts=tts, text=text, drift=full, drift_single=single
    )


def drift_sessions(
    generator, prepared, cases: BenchCases, seconds: float, progress: bool
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """The drift session of character 0 with its full sheet and with the front view only; only the
    frames of the two windows are kept (a 10-minute session need not fit in memory)."""
    from lpm_npc.synth.sheet import sheet_to_array

    size = generator.cfg.image_size
    images, roles = sheet_to_array(cases.sheets[0], size)
    front = [i for i, r in enumerate(roles) if tuple(r) == ("view", "front")][:1] or [0]
    single = generator.prepare(images[front], [tuple(roles[front[0]])], name="single")
    kept: list[dict[int, list[np.ndarray]]] = [{0: [], 1: []}, {0: [], 1: []}]
    per_chunk = generator.cfg.frames_per_chunk

    def keep(job: int, chunk: int, chunk_frames: np.ndarray) -> None:
        for key, (a, b) in cases.spans.items():
            for j, frame in enumerate(chunk_frames):
                if a <= chunk * per_chunk + j < b:
                    kept[job][key].append(frame)

    long_conv = cases.long_conv
    render_jobs(
        generator,
        [
            RenderJob(prepared, long_conv.speak, long_conv.listen, long_conv.script.prompt, 0),
            RenderJob(single, long_conv.speak, long_conv.listen, long_conv.script.prompt, 0),
        ],
        seconds=seconds,
        collect=False,
        on_chunk=keep,
        progress=progress,
    )
    full = {k: np.stack(v) for k, v in kept[0].items()}
    single_ref = {k: np.stack(v) for k, v in kept[1].items()}
    return full, single_ref
