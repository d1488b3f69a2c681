"""The bench's held-out cases, and the frames each rung of the ceiling ladder draws for them.

`build_cases(suite, size)` scripts everything from the suite and held-out character seeds:
- `convs`: one babble conversation per character (`synth.director.direct_conversation`);
- `quiet`: the same speak track and turns with the LISTEN track zeroed, performed by the director
  (`synth.tracks.perform_tracks`), i.e. the truth of the no-listen ablation;
- `tts` / `tts_truth`: a TTS sentence per character and its performance (silent listen track);
- `text`: per character and prompt word a `text_seconds` clip directed with that prompt;
- `long_conv` / `spans`: the identity-drift session of character 0 and its first / last window.
`RungFrames` holds what one rung drew for those cases (a field is None when the rung does not
draw it, so its metrics are None). `truth_frames` renders the truth rung; `vae_frames` round-trips
truth frames through a VAE. The teacher and student rungs are drawn in `bench.quality`.
This module measures nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lpm_npc.config import FPS, QualityConfig


@dataclass(frozen=True)
class BenchCases:
    """Scripts and truth geometry of one bench run (see the module docstring)."""

    seeds: list[int]
    specs: list  # CharacterSpec per character
    sheets: list  # ReferenceSheet per character
    convs: list  # Conversation per character
    quiet: list  # Conversation per character (listen zeroed, same turns)
    tts: list[np.ndarray]  # TTS pcm per character
    tts_truth: list  # Conversation per character
    text: list  # Conversation per (character, prompt), prompt-major within a character
    long_conv: object  # Conversation of the drift session (character 0)
    spans: dict[int, tuple[int, int]]  # drift windows: 0 = first, 1 = last, frame ranges
    mouth: list[np.ndarray]  # (T, 4) mouth boxes of each conversation's truth render


@dataclass
class RungFrames:
    """uint8 (T, S, S, 3) frames one rung drew per case; None = not drawn by this rung."""

    conv: list[np.ndarray] | None = None
    quiet: list[np.ndarray] | None = None
    tts: list[np.ndarray] | None = None
    text: list[np.ndarray] | None = None
    drift: dict[int, np.ndarray] | None = None
    drift_single: dict[int, np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)


def build_cases(suite: QualityConfig, size: int, tts: list[np.ndarray]) -> BenchCases:
    """Script the held-out cases of `suite` at frame side `size` (`tts`: one pcm per character)."""
    from lpm_npc.synth.character import CharacterSpec
    from lpm_npc.synth.dataset import HELD_OUT_SEED_START, held_out_character_seeds
    from lpm_npc.synth.director import direct_conversation
    from lpm_npc.synth.face_boxes import face_boxes
    from lpm_npc.synth.sheet import render_sheet
    from lpm_npc.synth.tracks import perform_tracks

    s = suite
    seeds = held_out_character_seeds(s.n_characters, start=HELD_OUT_SEED_START + 1000 * s.seed)
    if len(tts) != len(seeds):
        raise ValueError(f"tts: need {len(seeds)} tracks, got {len(tts)}")
    specs = [CharacterSpec.from_seed(seed) for seed in seeds]
    convs = [
        direct_conversation(seed + 7 * s.seed, s.conversation_seconds, spec=spec)
        for seed, spec in zip(seeds, specs)
    ]
    quiet = [
        perform_tracks(
            c.speak,
            np.zeros_like(c.listen),
            c.script.turns,
            seed=c.script.seed,
            prompt=c.script.prompt,
            spec=spec,
        )
        for c, spec in zip(convs, specs)
    ]
    tts_truth = [
        perform_tracks(pcm, None, seed=seed + 17, prompt="", spec=spec)
        for pcm, seed, spec in zip(tts, seeds, specs)
    ]
    text = [
        direct_conversation(seed + 11, s.text_seconds, prompt=prompt, spec=spec)
        for seed, spec in zip(seeds, specs)
        for prompt in s.text_prompts
    ]
    long_conv = direct_conversation(seeds[0] + 13, s.drift_seconds, spec=specs[0])
    win, total = int(s.drift_window_s * FPS), int(s.drift_seconds * FPS)
    return BenchCases(
        seeds=seeds,
        specs=specs,
        sheets=[render_sheet(spec, size) for spec in specs],
        convs=convs,
        quiet=quiet,
        tts=tts,
        tts_truth=tts_truth,
        text=text,
        long_conv=long_conv,
        spans={0: (0, win), 1: (total - win, total)},
        mouth=[face_boxes(spec, c.motion, size).mouth for spec, c in zip(specs, convs)],
    )


def truth_frames(cases: BenchCases, size: int) -> RungFrames:
    """The truth rung: every script rendered (the drift session's two windows only)."""
    from lpm_npc.synth.render import render_frames

    n_prompts = len(cases.text) // len(cases.specs)
    spec0 = cases.specs[0]
    return RungFrames(
        conv=[render_frames(sp, c.motion, size) for sp, c in zip(cases.specs, cases.convs)],
        quiet=[render_frames(sp, c.motion, size) for sp, c in zip(cases.specs, cases.quiet)],
        tts=[render_frames(sp, c.motion, size) for sp, c in zip(cases.specs, cases.tts_truth)],
        text=[
            render_frames(cases.specs[k // n_prompts], c.motion, size)
            for k, c in enumerate(cases.text)
        ],
        drift={
            k: render_frames(spec0, cases.long_conv.motion.slice(a, b), size)
            for k, (a, b) in cases.spans.items()
        },
    )


def vae_frames(truth: RungFrames, vae) -> RungFrames:
    """The vae rung: every truth frame encoded and decoded by `vae` (`judge.roundtrip`)."""
    from lpm_npc.judge.roundtrip import round_trip_frames

    def each(frames: list[np.ndarray] | None) -> list[np.ndarray] | None:
        return None if frames is None else [round_trip_frames(vae, f) for f in frames]

    return RungFrames(
        conv=each(truth.conv),
        quiet=each(truth.quiet),
        tts=each(truth.tts),
        text=each(truth.text),
        drift=None
        if truth.drift is None
        else {k: round_trip_frames(vae, f) for k, f in truth.drift.items()},
    )
