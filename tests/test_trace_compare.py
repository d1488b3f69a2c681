"""`trace compare` names the first differing frame (a changed checkpoint) and writes JSON + HTML;
`trace export` writes a video; `trace inspect --json` reports the batch sizes."""

import json
from pathlib import Path

import torch

from lpm_npc.cli import main
from lpm_npc.engine.weights import default_checkpoint_dir

GOLDEN = Path(__file__).resolve().parents[1] / "samples" / "traces"


def _changed_checkpoint(tmp_path: Path) -> Path:
    """The default checkpoint with a decoder weight nudged (frames change from seq 0)."""
    from safetensors.torch import load_file, save_file

    source = default_checkpoint_dir()
    changed = tmp_path / "changed"
    changed.mkdir()
    for name in ("config.json", "recipe.json", "judge.safetensors"):
        (changed / name).write_bytes((source / name).read_bytes())
    weights = load_file(str(source / "model.safetensors"))
    key = next(k for k in weights if k.startswith("vae.") and weights[k].ndim >= 2)
    weights[key] = weights[key] + torch.full_like(weights[key], 1e-2)
    save_file(weights, str(changed / "model.safetensors"))
    return changed


def test_compare_against_a_changed_checkpoint_names_the_first_differing_frame(tmp_path, capsys):
    trace = str(GOLDEN / "monologue.lpmtrace")
    out = tmp_path / "report"
    changed = str(_changed_checkpoint(tmp_path))
    assert main(["trace", "compare", trace, "--checkpoint", changed, "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    report = json.loads((out / "compare.json").read_text())
    assert report["first_differing_frame"] == printed["first_differing_frame"] == 0
    assert report["differing"] > 0 and report["frames"] == 40
    seconds = report["per_second"]
    assert [row["second"] for row in seconds] == [0, 1]
    assert all(row["identity_psnr_db"] is not None for row in seconds)
    page = (out / "compare.html").read_text()
    assert "first differing frame: seq 0" in page and page.count("<img") >= 2 * 7
    assert "<svg" in page


def test_compare_a_trace_with_itself_finds_no_difference(tmp_path):
    trace = str(GOLDEN / "monologue.lpmtrace")
    out = tmp_path / "same"
    assert main(["trace", "compare", trace, trace, "--out", str(out)]) == 0
    report = json.loads((out / "compare.json").read_text())
    assert report["differing"] == 0 and report["first_differing_frame"] is None
    assert "identical frames" in (out / "compare.html").read_text()


def test_export_and_inspect(tmp_path, capsys):
    from lpm_npc.synth.video_io import read_mp4

    video = tmp_path / "barge_in.mp4"
    assert main(["trace", "export", str(GOLDEN / "barge_in.lpmtrace"), "--out", str(video)]) == 0
    frames, fps = read_mp4(video)
    assert len(frames) == 48 and fps == 24
    capsys.readouterr()
    assert main(["trace", "inspect", str(GOLDEN / "barge_in.lpmtrace"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["batch_sizes"] == [1, 2] and summary["frames"] == 48 and not summary["truncated"]
