"""Putting a decoder-only vae stage's decoder and a judge stage's judge into an exported checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lpm_npc.config import ModelConfig
from lpm_npc.engine.weights import load_lpm
from lpm_npc.judge.net import JudgeNet
from lpm_npc.judge.reader import load_judge, save_judge
from lpm_npc.model.lpm import LPM
from lpm_npc.train.update import main, update_checkpoint

CFG = ModelConfig.from_name("test")


def _checkpoint(root: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    state = {
        k: (v.half() if v.is_floating_point() else v).contiguous()
        for k, v in LPM(CFG).state_dict().items()
    }
    ckpt = root / "ckpt"
    ckpt.mkdir()
    save_file(state, str(ckpt / "model.safetensors"))
    (ckpt / "config.json").write_text(json.dumps({"preset": "test", "overrides": {}}))
    recipe = {"model_stage": "refiner", "export_dtype": "float16", "preset": "test"}
    (ckpt / "recipe.json").write_text(json.dumps(recipe))
    save_judge(ckpt / "judge.safetensors", JudgeNet(image_size=32, width=8, crop_size=32))
    return ckpt, state


def _stage_file(root: Path, state: dict, *, touch: str) -> Path:
    stage = {k: v.float().contiguous() for k, v in state.items()}
    with torch.no_grad():
        for key in [k for k in stage if k.startswith(touch)]:
            stage[key] = stage[key] + 0.25
    path = root / "vae" / "final.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(stage, str(path))
    (path.parent / "result.json").write_text(json.dumps({"stage": "vae", "steps": 7}))
    return path


def test_the_new_decoder_replaces_only_the_decoder(tmp_path):
    ckpt, state = _checkpoint(tmp_path)
    decoder = _stage_file(tmp_path, state, touch="vae.decoder.")
    recipe = update_checkpoint(ckpt, tmp_path / "new", decoder=decoder)
    new = load_file(str(tmp_path / "new" / "model.safetensors"))
    stage = load_file(str(decoder))
    for key, value in state.items():
        assert new[key].dtype == value.dtype
        expected = stage[key].to(value.dtype) if key.startswith("vae.decoder.") else value
        assert torch.equal(new[key], expected), key
    assert [u["part"] for u in recipe["updates"]] == ["vae.decoder"]
    assert recipe["updates"][0]["stage"] == {"stage": "vae", "steps": 7}
    written = json.loads((tmp_path / "new" / "recipe.json").read_text())
    assert written["updates"] == recipe["updates"] and "updates_added" not in written
    _, model = load_lpm(tmp_path / "new")  # loads as a checkpoint
    assert torch.equal(model.vae.decoder.inp.weight, stage["vae.decoder.inp.weight"].half().float())
    assert load_file(str(ckpt / "model.safetensors")).keys() == state.keys()  # source untouched


def test_a_changed_encoder_is_refused_and_nothing_is_written(tmp_path, capsys):
    ckpt, state = _checkpoint(tmp_path)
    stage = _stage_file(tmp_path, state, touch="vae.encoder.")
    with pytest.raises(ValueError, match="vae.encoder.*differs"):
        update_checkpoint(ckpt, tmp_path / "new", decoder=stage)
    assert not (tmp_path / "new").exists()
    with pytest.raises(SystemExit) as info:  # the command: exit 2 and one line, no traceback
        main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "new"), "--decoder", str(stage)])
    assert info.value.code == 2 and "differs" in capsys.readouterr().err
    with pytest.raises(FileExistsError):
        update_checkpoint(ckpt, ckpt, decoder=stage)
    with pytest.raises(ValueError, match="nothing to update"):
        update_checkpoint(ckpt, tmp_path / "new")


def test_a_judge_stage_becomes_the_checkpoint_judge(tmp_path):
    ckpt, _ = _checkpoint(tmp_path)
    torch.manual_seed(1)
    net = JudgeNet(image_size=32, width=8, crop_size=32)
    path = tmp_path / "judge" / "final.safetensors"
    path.parent.mkdir()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    update_checkpoint(ckpt, tmp_path / "new", judge=path)
    judged = load_file(str(tmp_path / "new" / "judge.safetensors"))
    for key, value in net.state_dict().items():
        assert torch.equal(judged[key], value.half() if value.is_floating_point() else value)
    load_judge(tmp_path / "new")  # readable by bench and `lpm-npc judge`


def test_a_widened_decoder_goes_in_with_its_config_and_only_with_it(tmp_path, capsys):
    from lpm_npc.model.vae_widen import widen_state

    ckpt, state = _checkpoint(tmp_path)
    ch = CFG.vae_channels
    widths = (ch[0], 2 * ch[1], ch[2], ch[3])
    wide = LPM(CFG.with_overrides(vae_decoder_channels=widths))
    floats = {k: v.float() for k, v in state.items()}
    grown, keys = widen_state(wide.vae.decoder, floats, "vae.decoder.")
    assert keys
    path = tmp_path / "vae" / "final.safetensors"
    path.parent.mkdir()
    save_file({k: v.contiguous() for k, v in grown.items()}, str(path))
    args = ["--checkpoint", str(ckpt), "--out", str(tmp_path / "new"), "--decoder", str(path)]
    with pytest.raises(SystemExit) as info:  # without the widths: refused, named
        main(args)
    assert info.value.code == 2 and "--decoder-channels" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    recipe = update_checkpoint(ckpt, tmp_path / "new", decoder=path, decoder_channels=widths)
    assert recipe["updates"][0]["vae_decoder_channels"] == list(widths)
    cfg, model = load_lpm(tmp_path / "new")
    assert cfg.vae_decoder_channels == widths
    assert model.vae.decoder.out.weight.shape[1] == widths[1]
    with pytest.raises(ValueError, match="expected"):  # widths that do not fit the tensors
        update_checkpoint(ckpt, tmp_path / "x", decoder=path, decoder_channels=(ch[0], 3, 5, 7))
