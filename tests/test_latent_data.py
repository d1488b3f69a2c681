"""The latent dataset: exact causal encoding, windows, resume, refusal of another VAE, training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from lpm_npc.config import SAMPLES_PER_FRAME, ModelConfig, TrainConfig
from lpm_npc.model.lpm import LPM
from lpm_npc.train import latent_build
from lpm_npc.train.batch import collate_clips, region_weights
from lpm_npc.train.latent_build import BuildOptions, build_latent_dataset, encode_stream
from lpm_npc.train.latent_data import LatentDataError, LatentDataset, check_vae, read_manifest

CFG = ModelConfig.from_name("test")


def _vae_file(tmp: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = LPM(CFG)
    # Give the zero-initialised temporal mixes weights, so causality across pieces is exercised.
    with torch.no_grad():
        for name, p in model.vae.named_parameters():
            if "mix" in name:
                p.normal_(0.0, 0.05)
    path = tmp / f"vae{seed}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def _options(tmp: Path, vae: Path, **changes) -> BuildOptions:
    base = dict(
        out_dir=tmp / "data",
        vae_path=vae,
        preset="test",
        n_characters=2,
        conversations_per_character=2,
        seconds_per_conversation=2.5,
        workers=1,
    )
    base.update(changes)
    return BuildOptions(**base)


def _train_base(
    out: Path, cfg: ModelConfig, vae: Path, data: Path, *, steps: int, batch: int, characters: int
):
    """A `base` stage of `steps` steps from the latent dataset `data`, warm-started from `vae`."""
    from lpm_npc.config import StageConfig
    from lpm_npc.train.distributed import DistInfo
    from lpm_npc.train.recipe import RunOptions, run_named_stage

    stage = StageConfig("base", minutes=1, max_steps=0, batch_size=batch, clip_frames=8, lr=1e-3)
    train = TrainConfig(preset="test", stages=(stage,), n_characters=characters)
    run = RunOptions(out_dir=out, steps=steps, progress=False, init_from=vae, data_dir=data)
    cpu = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    return run_named_stage(train, cfg, "base", run, cpu)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("latents")
    vae = _vae_file(tmp, 0)
    opts = _options(tmp, vae)
    raw = build_latent_dataset(opts, progress=False)
    return tmp, vae, opts, raw


def test_encode_stream_equals_one_pass_of_the_whole_conversation(built, monkeypatch):
    _, vae_path, opts, _ = built
    vae = latent_build._load_vae(opts)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4 * 9, 64, 64, 3), dtype=np.uint8)
    monkeypatch.setattr(latent_build, "ENCODE_PIECE_GROUPS", 2)  # many pieces, each with context
    with torch.no_grad():
        pieces = encode_stream(vae, frames)
        video = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0
        whole = vae.encode(video)[0].permute(1, 0, 2, 3).numpy()
    assert pieces.shape == whole.shape == (9, CFG.latent_channels, 8, 8)
    np.testing.assert_allclose(pieces, whole, atol=1e-5)


def test_manifest_and_arrays(built):
    tmp, _, opts, raw = built
    assert raw["status"] == "complete"
    assert len(raw["conversations"]) == 4 and len(raw["character_seeds"]) == 2
    assert raw["frames_per_conversation"] == 60  # 2.5 s at 24 fps, whole latent groups
    latents = np.load(opts.out_dir / "latents.npy", mmap_mode="r")
    assert latents.shape == (4, 15, CFG.latent_channels, 8, 8)
    assert np.isfinite(latents).all() and float(np.abs(latents).mean()) > 0
    boxes = np.load(opts.out_dir / "boxes.npy")
    mouth = boxes[:, :, 1]
    assert (mouth[..., 2] > mouth[..., 0]).all() and (mouth[..., 3] <= 64).all()


def test_windows_are_slices_of_the_stored_conversation(built):
    _, _, opts, raw = built
    ds = LatentDataset(opts.out_dir, 8, seed=3)
    clip = ds.window(1, 5)
    latents = np.load(opts.out_dir / "latents.npy", mmap_mode="r")
    np.testing.assert_array_equal(
        clip.latents, latents[1, 5:7].astype(np.float32).transpose(1, 0, 2, 3)
    )
    assert clip.speak.shape == (8 * SAMPLES_PER_FRAME,)
    speak = np.load(opts.out_dir / "speak.npy", mmap_mode="r")
    a = 5 * 4 * SAMPLES_PER_FRAME
    np.testing.assert_allclose(clip.speak, speak[1, a : a + 8 * SAMPLES_PER_FRAME] / 32767.0)
    assert clip.prompt == raw["conversations"][1]["prompt"]
    # Deterministic per (seed, index), and different indices differ.
    a0, a1 = ds[0], LatentDataset(opts.out_dir, 8, seed=3)[0]
    np.testing.assert_array_equal(a0.latents, a1.latents)
    batch = collate_clips([ds[i] for i in range(3)])
    assert batch.latents.shape == (3, CFG.latent_channels, 2, 8, 8)
    assert batch.frames is None and batch.boxes.shape == (3, 8, 3, 4)


def test_region_weights_put_more_weight_on_the_mouth(built):
    _, _, opts, _ = built
    batch = collate_clips([LatentDataset(opts.out_dir, 8, seed=1)[i] for i in range(2)])
    train = TrainConfig.from_name("tiny")
    w = region_weights(batch, CFG, train)
    assert w.shape == (2, 2, 8, 8)
    torch.testing.assert_close(w.mean(dim=(2, 3)), torch.ones(2, 2))
    x0, _, x1, y1 = (int(v) for v in batch.boxes[0, 0, 1])  # mouth box of frame 0, px
    cell = (min(y1 - 1, 63) // 8, min(x1 - 1, 63) // 8)
    assert float(w[0, 0][cell]) > float(w[0, 0, 0, 0])  # a mouth cell outweighs the corner


def test_resume_rebuilds_only_missing_characters(built, monkeypatch):
    tmp, vae, opts, _ = built
    manifest = json.loads((opts.out_dir / "manifest.json").read_text())
    manifest["status"] = "building"
    (opts.out_dir / "manifest.json").write_text(json.dumps(manifest))
    (opts.out_dir / "meta" / "char_00001.json").unlink()
    with pytest.raises(LatentDataError, match="not complete"):
        LatentDataset(opts.out_dir, 8)
    built_now: list[int] = []
    real = latent_build._build_character
    monkeypatch.setattr(
        latent_build, "_build_character", lambda task: built_now.append(task[0]) or real(task)
    )
    raw = build_latent_dataset(opts, progress=False)
    assert built_now == [1] and raw["status"] == "complete"


def test_other_vae_or_options_are_refused(built):
    tmp, vae, opts, _ = built
    other = _vae_file(tmp, 1)
    with pytest.raises(LatentDataError, match="another VAE"):
        build_latent_dataset(_options(tmp, other), progress=False)
    with pytest.raises(LatentDataError, match="other options"):
        build_latent_dataset(_options(tmp, vae, n_characters=3), progress=False)
    model = LPM(CFG)
    with pytest.raises(LatentDataError, match="sha256") as info:
        check_vae(read_manifest(opts.out_dir), model.vae)
    manifest = read_manifest(opts.out_dir)
    assert manifest.vae_encoder_sha256[:16] in str(info.value) and "encoder" in str(info.value)


def test_a_new_decoder_keeps_the_dataset_valid_and_old_manifests_check_the_whole_vae(built):
    import dataclasses

    from safetensors.torch import load_file

    _, vae, opts, _ = built
    model = LPM(CFG)
    model.load_state_dict(load_file(str(vae)))
    manifest = read_manifest(opts.out_dir)
    check_vae(manifest, model.vae)  # the building VAE
    with torch.no_grad():
        model.vae.decoder.inp.weight.add_(0.1)  # a decoder trained on: the latents are the same
    check_vae(manifest, model.vae)
    raw = {k: v for k, v in manifest.raw.items() if k != "vae_encoder_sha256"}
    old = dataclasses.replace(manifest, raw=raw)  # a dataset built before the encoder hash
    with pytest.raises(LatentDataError, match="VAE sha256") as info:
        check_vae(old, model.vae)
    assert manifest.vae_sha256[:16] in str(info.value)


def test_base_stage_trains_from_the_latent_dataset(built, tmp_path):
    from safetensors.torch import load_file

    _, vae, opts, _ = built
    result = _train_base(tmp_path / "run", CFG, vae, opts.out_dir, steps=3, batch=2, characters=2)
    assert result is not None and result.steps == 3 and np.isfinite(result.final_loss)
    final = load_file(str(tmp_path / "run" / "base" / "final.safetensors"))
    before = load_file(str(vae))
    changed = [
        k for k in final if k.startswith("backbone.") and not torch.equal(final[k], before[k])
    ]
    assert changed, "the backbone did not train"
    assert all(torch.equal(final[k], before[k]) for k in final if k.startswith("vae."))


def test_reference_concat_stages_train_and_export_a_checkpoint_that_reloads(built, tmp_path):
    """The image-to-video lever on (parsed as `--model-override reference_concat=true` is): the
    LPM stages train from the latent dataset with finite losses, warm-started from a VAE saved
    without the lever, and the exported checkpoint reloads with it on."""
    from safetensors.torch import load_file

    from lpm_npc.commands.train import _model_config
    from lpm_npc.config import StageConfig
    from lpm_npc.engine.weights import load_lpm
    from lpm_npc.judge.net import JudgeNet
    from lpm_npc.train.distributed import DistInfo
    from lpm_npc.train.export import export_checkpoint
    from lpm_npc.train.loop import stage_dir
    from lpm_npc.train.recipe import RunOptions, run_named_stage

    _, vae, opts, _ = built
    cfg = _model_config("test", ["reference_concat=true"])
    assert cfg.reference_concat is True
    names = ("judge", "base", "causal", "rollout")
    stages = tuple(
        StageConfig(n, minutes=1, max_steps=0, batch_size=2, clip_frames=8, lr=1e-3) for n in names
    )
    train = TrainConfig(
        preset="test", stages=stages, n_characters=2, judge_size=32, teacher_steps=2
    )
    cpu = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    run_dir = tmp_path / "run"
    for name, steps in (("base", 3), ("causal", 2), ("rollout", 1)):
        run = RunOptions(
            out_dir=run_dir,
            steps=steps,
            progress=False,
            # rollout starts from the ode stage's student, which this test skips
            init_from={"base": vae, "rollout": run_dir / "causal" / "final.safetensors"}.get(name),
            data_dir=opts.out_dir,
        )
        result = run_named_stage(train, cfg, name, run, cpu)
        assert result is not None and result.steps == steps, name
        assert np.isfinite(result.final_loss) and np.isfinite(result.first_loss), name
    base = load_file(str(run_dir / "base" / "final.safetensors"))
    width = base["backbone.patch_embed.weight"].shape[1]
    assert width == 2 * load_file(str(vae))["backbone.patch_embed.weight"].shape[1]
    assert base["backbone.patch_embed.weight"][:, width // 2 :].abs().sum() > 0  # it learned
    # A finished judge stage is all the exporter needs besides the LPM stages.
    judge_dir = stage_dir(run_dir, "judge")
    judge_dir.mkdir(parents=True)
    save_file(JudgeNet(image_size=32).state_dict(), str(judge_dir / "final.safetensors"))
    result = json.loads((run_dir / "rollout" / "result.json").read_text())
    (judge_dir / "result.json").write_text(json.dumps({**result, "stage": "judge"}))
    export = export_checkpoint(run_dir, tmp_path / "export", train, cfg)
    config = json.loads((export / "config.json").read_text())
    assert config == {"preset": "test", "overrides": {"reference_concat": True}}
    loaded_cfg, model = load_lpm(export)
    assert loaded_cfg == cfg and model.backbone.patch_embed.in_features == width


def test_bench_train_times_the_three_pipelines_in_turns(built, tmp_path, monkeypatch):
    import shutil

    from lpm_npc.bench import train as bench

    _, vae, opts, _ = built
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    shutil.copy(vae, checkpoint / "model.safetensors")
    order: list[str] = []
    interleaved = bench._interleaved_steps

    def recording(objective, pipelines, warmup, steps):
        def logged(name, batches):
            for batch in batches:
                order.append(name)
                yield batch

        logged_pipelines = {name: logged(name, it) for name, it in pipelines.items()}
        return interleaved(objective, logged_pipelines, warmup, steps)

    monkeypatch.setattr(bench, "_interleaved_steps", recording)
    train = TrainConfig(preset="test", stages=TrainConfig.from_name("tiny").stages, n_characters=2)
    result = bench.bench_train(
        data_dir=opts.out_dir, checkpoint=checkpoint, batch_size=2, steps=2, warmup=1, train=train
    )
    assert order == ["cache", "render", "dit"] * 3  # warm-up round, then two timed rounds
    assert result.batch_size == 2 and result.steps == 2
    rates = (result.cache_samples_per_s, result.render_samples_per_s, result.dit_samples_per_s)
    assert all(r > 0 for r in rates)
    assert result.cache_vs_render == pytest.approx(rates[0] / rates[1], rel=0.01)
    assert result.cache_vs_dit == pytest.approx(rates[0] / rates[2], rel=0.01)


def test_a_wider_latent_vae_builds_its_own_width_and_a_base_stage_trains_on_it(tmp_path):
    wide_cfg = CFG.with_overrides(latent_channels=2 * CFG.latent_channels)
    torch.manual_seed(1)
    vae = tmp_path / "wide.safetensors"
    save_file({k: v.contiguous() for k, v in LPM(wide_cfg).state_dict().items()}, str(vae))
    opts = _options(tmp_path, vae, n_characters=1, conversations_per_character=1)
    raw = build_latent_dataset(opts, progress=False)  # the preset says 4 channels; the VAE 8
    assert raw["latent_channels"] == wide_cfg.latent_channels
    assert np.load(opts.out_dir / "latents.npy", mmap_mode="r").shape[2] == 8
    result = _train_base(
        tmp_path / "run", wide_cfg, vae, opts.out_dir, steps=2, batch=1, characters=1
    )
    assert result is not None and result.steps == 2 and np.isfinite(result.final_loss)
