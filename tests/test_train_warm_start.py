"""`lpm-npc train --init-from`: warm starts read an exported (fp16) student and refuse misuse."""

import pytest
import torch
from safetensors.torch import save_file

from lpm_npc.cli import main
from lpm_npc.train.recipe import warm_start_weights


def test_warm_start_casts_exported_fp16_back_to_fp32(tmp_path):
    path = tmp_path / "judge.safetensors"
    save_file({"w": torch.randn(3, 4).half(), "steps": torch.tensor([7])}, str(path))
    state = warm_start_weights(path)
    assert state["w"].dtype == torch.float32
    assert state["steps"].dtype == torch.int64 and int(state["steps"]) == 7


def test_warm_start_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="init-from"):
        warm_start_weights(tmp_path / "absent.safetensors")


def test_init_from_with_all_is_a_user_error(tmp_path, capsys):
    code = main(["train", "--all", "--out", str(tmp_path / "run"), "--init-from", "x.safetensors"])
    assert code == 2
    assert "--init-from" in capsys.readouterr().err


def _finished_base(run, state) -> None:
    import json

    stage = run / "base"
    stage.mkdir(parents=True)
    save_file(state, str(stage / "final.safetensors"))
    result = {
        "stage": "base",
        "steps": 3,
        "samples": 24,
        "seconds": 1.0,
        "samples_per_s": 24.0,
        "first_loss": 1.0,
        "final_loss": 0.5,
        "stopped_by": "steps",
        "resumed_from_step": 0,
        "world_size": 1,
        "device": "cpu",
    }
    (stage / "result.json").write_text(json.dumps(result))


def test_export_records_the_warm_start_and_the_train_overrides(tmp_path):
    import json
    from pathlib import Path

    from lpm_npc.commands.train import _train_config
    from lpm_npc.config import ModelConfig
    from lpm_npc.digest import file_sha256
    from lpm_npc.train.adopt import adopt_judge
    from lpm_npc.train.export import export_checkpoint
    from lpm_npc.train.recipe import record_warm_start

    run = tmp_path / "run"
    _finished_base(run, {"backbone.w": torch.randn(2, 2), "vae.w": torch.randn(2)})
    adopt_judge(Path("samples/checkpoints/tiny"), run)
    init = tmp_path / "init.safetensors"
    save_file({"backbone.w": torch.zeros(2, 2)}, str(init))
    record_warm_start(run, "base", init)
    train = _train_config("tiny", ["mouth_loss_weight=16"])
    export_checkpoint(run, tmp_path / "export", train, ModelConfig.from_name("tiny"))
    recipe = json.loads((tmp_path / "export" / "recipe.json").read_text())
    assert recipe["warm_starts"] == {"base": {"from": str(init), "sha256": file_sha256(init)}}
    assert recipe["train_config"]["mouth_loss_weight"] == 16.0
    assert "judge" not in recipe.get("warm_starts", {})


def test_train_override_parses_typed_values_and_names_bad_ones():
    from lpm_npc.commands.train import _train_config

    train = _train_config("tiny", ["mouth_loss_weight=16", "anchor_references=false"])
    assert train.mouth_loss_weight == 16.0 and isinstance(train.mouth_loss_weight, float)
    assert train.anchor_references is False
    assert train.stage("base").minutes == _train_config("tiny", []).stage("base").minutes
    for bad, words in (
        ("mouth_loss_weight=loud", "takes a number"),
        ("stages=[]", "come from --preset"),
        ("no_such_field=1", "FIELD=VALUE"),
        ("anchor_references=maybe", "true or false"),
        ("train_references=2.5", "takes an integer"),
    ):
        with pytest.raises(ValueError, match=words):
            _train_config("tiny", [bad])


def test_train_override_error_is_a_clean_cli_error(tmp_path, capsys):
    code = main(["train", "--export-only", "--out", str(tmp_path), "--train-override", "nope=1"])
    assert code == 2
    assert "--train-override" in capsys.readouterr().err
