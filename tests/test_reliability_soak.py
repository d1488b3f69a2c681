"""`bench soak`: the seq bookkeeping exactly, and a few seconds of a real soak."""

import json

from lpm_npc.bench.soak import FrameTally
from lpm_npc.cli import main as cli_main


def test_frame_tally_counts_lost_out_of_order_and_duplicated_frames() -> None:
    tally = FrameTally()
    for seq in [4, 5, 6, 9, 8, 8, 10]:  # 7 never came; 8 late; 8 twice
        tally.add(seq)
    assert tally.report() == {
        "frames_expected": 7,  # seqs 4..10
        "frames_received": 6,
        "frames_lost": 1,
        "out_of_order": 1,
        "duplicated": 1,
    }
    assert FrameTally().report()["frames_expected"] == 0


def test_frame_tally_keeps_an_hour_of_seqs_in_bits() -> None:
    tally = FrameTally()
    for seq in range(100_000, 186_400):  # an hour at 24 fps, starting late
        tally.add(seq)
    tally.add(150_000)
    report = tally.report()
    assert report["frames_received"] == report["frames_expected"] == 86_400
    assert report["duplicated"] == 1 and report["frames_lost"] == 0
    assert len(tally.bits) <= 2 * 186_400 // 8 + 1


def test_a_short_soak_reports_totals_sessions_and_minutes(capsys) -> None:
    args = ["bench", "soak", "--sessions", "2", "--minutes", "0.05", "--utterance-seconds", "1"]
    args += ["--preset", "test-tiny", "--random-weights", "--threads", "1", "--json"]
    assert cli_main(args) == 0
    report = json.loads(capsys.readouterr().out)
    totals = report["totals"]
    assert set(totals) == {
        "frames_expected",
        "frames_received",
        "frames_lost",
        "out_of_order",
        "duplicated",
        "rss_start_mb",
        "rss_end_mb",
        "errors",
    }
    assert totals["frames_received"] > 0 and totals["errors"] == {}
    assert totals["out_of_order"] == 0 and totals["duplicated"] == 0
    assert [s["client"] for s in report["per_session"]] == [0, 1]
    assert report["per_minute"] and report["per_minute"][0]["latency_ms_p50"] > 0
    assert set(report["per_minute"][0]) == {
        "minute",
        "frames",
        "latency_ms_p50",
        "latency_ms_p95",
        "rss_mb",
    }
