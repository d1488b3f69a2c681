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
