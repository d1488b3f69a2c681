"""The listening ratio of the director's own motion truth, measured like LPM-Bench-synth.

`reaction_counts(motion, turns)` runs the bench's event detector (`bench.quality_metrics.
event_onsets` on head_pitch with `QualityConfig.nod_threshold_deg` and on brow_raise with
`brow_threshold`, same baseline and refractory) and returns [events while the player speaks,
seconds of player turns, events in shared silence, seconds of silence], seconds counted once across
the two event kinds, exactly as `bench.quality._Bench.reaction_counts` does on judge readings.
`listening_ratio(counts)` is (player rate + floor) / (silence rate + floor) with the bench's
`rate_floor`. `held_out_conversations(n)` directs the bench's held-out conversations (character
seeds from `synth.dataset.held_out_character_seeds`, conversation seed = character seed + 7 * suite
seed, the `full` suite's length, the seed's random prompt). This module renders nothing and never
changes the detector.

    python -m lpm_npc.synth.listening_check --conversations 20
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import numpy as np

from lpm_npc.bench.quality_metrics import event_onsets, event_rate, segment_mask
from lpm_npc.config import FPS, QUALITY_SUITES, QualityConfig
from lpm_npc.synth.motion import Motion
from lpm_npc.synth.script import Conversation, Turn


def reaction_counts(
    motion: Motion, turns: Sequence[Turn], suite: QualityConfig = QUALITY_SUITES["full"]
) -> np.ndarray:
    """[player events, player s, silence events, silence s] of one conversation's motion."""
    n = motion.n_frames
    player = segment_mask(turns, "player", n, FPS)
    silence = segment_mask(turns, "silence", n, FPS)
    out = np.zeros(4)
    for signal, threshold in (
        (motion.head_pitch, suite.nod_threshold_deg),
        (motion.brow_raise, suite.brow_threshold),
    ):
        onsets = event_onsets(signal, threshold, FPS, suite.baseline_s, suite.refractory_s)
        pe, ps = event_rate(onsets, player, FPS)
        se, ss = event_rate(onsets, silence, FPS)
        out += [pe, ps / 2, se, ss / 2]
    return out


def listening_ratio(counts: np.ndarray, suite: QualityConfig = QUALITY_SUITES["full"]) -> float:
    """(player events/s + floor) / (silence events/s + floor), the bench's definition."""
    player_rate = counts[0] / max(counts[1], 1e-9) + suite.rate_floor
    silence_rate = counts[2] / max(counts[3], 1e-9) + suite.rate_floor
    return float(player_rate / silence_rate)


def held_out_conversations(
    n: int, suite: QualityConfig = QUALITY_SUITES["full"], seconds: float | None = None
) -> list[Conversation]:
    """The bench's held-out conversations (see the module docstring), motion and audio only."""
    from lpm_npc.synth.character import CharacterSpec
    from lpm_npc.synth.dataset import HELD_OUT_SEED_START, held_out_character_seeds
    from lpm_npc.synth.director import direct_conversation

    seeds = held_out_character_seeds(n, start=HELD_OUT_SEED_START + 1000 * suite.seed)
    length = suite.conversation_seconds if seconds is None else seconds
    return [
        direct_conversation(seed + 7 * suite.seed, length, spec=CharacterSpec.from_seed(seed))
        for seed in seeds
    ]


def summarize(conversations: Sequence[Conversation]) -> dict:
    """Per-conversation ratios, their min and mean, and the pooled ratio."""
    per = [reaction_counts(c.motion, c.script.turns) for c in conversations]
    ratios = [listening_ratio(c) for c in per]
    pooled = np.sum(per, axis=0)
    return {
        "conversations": len(per),
        "ratio_min": round(float(np.min(ratios)), 3),
        "ratio_mean": round(float(np.mean(ratios)), 3),
        "ratio_pooled": round(listening_ratio(pooled), 3),
        "player_events_per_s": round(float(pooled[0] / max(pooled[1], 1e-9)), 3),
        "silence_events_per_s": round(float(pooled[2] / max(pooled[3], 1e-9)), 3),
        "per_conversation": [
            {"seed": c.script.seed, "prompt": c.script.prompt, "ratio": round(r, 3)}
            for c, r in zip(conversations, ratios, strict=True)
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=20, help="held-out conversations")
    parser.add_argument("--seconds", type=float, default=None, help="length (default: full suite)")
    args = parser.parse_args(argv)
    print(json.dumps(summarize(held_out_conversations(args.conversations, seconds=args.seconds))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
