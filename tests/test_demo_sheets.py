"""`lpm_npc.commands.demo_sheets`: which truth frames the demo's truth-vs-generated sheet shows."""

from __future__ import annotations

import numpy as np
from PIL import Image

from lpm_npc.commands.demo_sheets import Moment, pick_moments, truth_vs_generated_sheet
from lpm_npc.synth.script import Turn


def _script() -> list[Turn]:
    # 24 fps: silence 0-11, npc 12-35, player 36-59 (npc overlaps it from 54), silence 60-71.
    return [
        Turn("silence", 0.0, 0.5),
        Turn("npc", 0.5, 1.5),
        Turn("player", 1.5, 2.5),
        Turn("npc", 2.25, 2.5),
        Turn("silence", 2.5, 3.0),
    ]


def test_pick_moments_chooses_by_kind_from_the_truth() -> None:
    jaw = np.zeros(72)
    jaw[[14, 20, 30]] = [0.5, 0.9, 0.7]  # widest jaw at 20, next at 30 (14 is too close to 20)
    jaw[56] = 1.0  # widest of all, but the player's turn there overlaps the NPC's: speaking
    picks = pick_moments(_script(), jaw, min_gap=8)
    assert picks == sorted(picks, key=lambda m: m.frame)
    by_kind = {
        k: [m.frame for m in picks if m.kind == k] for k in ("speaking", "listening", "idle")
    }
    assert by_kind["speaking"] == [20, 56]
    # Listening: the middle of the player-only run 36-53, then its deepest frame 8 or more away.
    assert by_kind["listening"] == [44, 52]
    assert by_kind["idle"] == [5, 65]  # the middles of both silences (ties: the earlier frame)


def test_pick_moments_with_a_missing_kind_picks_what_is_there() -> None:
    picks = pick_moments([Turn("npc", 0.0, 1.0)], np.linspace(0, 1, 24), per_kind=2, min_gap=4)
    assert picks == [Moment("speaking", 19), Moment("speaking", 23)]


def test_sheet_puts_truth_above_generated(tmp_path) -> None:
    moments = [Moment("speaking", 3), Moment("idle", 30)]
    truth = np.full((2, 64, 64, 3), 255, np.uint8)  # white
    generated = np.zeros((2, 64, 64, 3), np.uint8)  # black
    path = tmp_path / "sheet.png"
    truth_vs_generated_sheet(moments, truth, generated, path, title="t", cell=64)
    image = np.asarray(Image.open(path))
    column = image[:, 96 + 32]  # the middle of the first column
    white = np.flatnonzero((column == 255).all(axis=1))
    black = np.flatnonzero((column == 0).all(axis=1))
    assert len(white) >= 64 and len(black) >= 64 and white.max() < black.max()


def test_demo_script_turns_and_the_no_truth_flag() -> None:
    from lpm_npc.cli import build_parser
    from lpm_npc.commands.demo import build_script

    script = build_script(1, 0.5)
    assert [t.speaker for t in script.turns] == ["npc", "player", "npc", "player"]
    assert script.turns[3].start_s == script.interrupt_at / 16000  # the barge-in
    assert script.turns[2].start_s < script.turns[3].start_s < script.turns[2].end_s
    assert build_parser().parse_args(["demo", "--no-truth"]).no_truth
    assert not build_parser().parse_args(["demo"]).no_truth
