"""Stage `judge`: train JudgeNet to read motion parameters from rendered and generated frames.

Data: `judge.poses.JudgeFrames` (conversation windows as the director plays them, plus random
poses). The objective degrades frames the way the generator does, so the judge reads generated
video as well as rendered video:
- VAE round-trips: a share (`vae_frac`) of the 4-frame conversation clips in each batch is encoded
  and decoded by the model's frozen VAE, with a little latent noise (a DiT's latents are not the
  encoder's), exactly the decoder the generator draws with;
- blur (down/up-sampling), sensor-like noise and a slight colour gain on every frame (`degrade`).
The face stream looks at the true face crop (jittered) for half the frames and at the net's own
regressed crop for the other half, so it also reads well where the regression is a few px off.
Loss: `judge.net.judge_loss`. The stage output `final.safetensors` is the judge's EMA state dict;
the export copies it to `judge.safetensors`.

Which VAE (`vae_weights_path`): the run's own `vae` stage output (`<out>/vae/final.safetensors`,
as in `lpm-npc train --all`, or a file placed there for a judge-only run), else the default
checkpoint's `model.safetensors`; its shape comes from the run's ModelConfig (`--model-override`).
The chosen file and its hash are written to `<out>/judge/vae_source.json`.

This stage does not train the LPM.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch
from torch import nn

from lpm_npc.judge.net import JudgeNet, judge_loss, resize_input
from lpm_npc.judge.poses import GROUP, JudgeFrames, collate_frames
from lpm_npc.model.vae import load_frozen_vae
from lpm_npc.train.loop import StageObjective, stage_dir
from lpm_npc.train.stage import StageContext, StageSetup

log = logging.getLogger(__name__)

VAE_SOURCE_FILE = "vae_source.json"


def degrade(x: torch.Tensor) -> torch.Tensor:
    """Random per-sample blur (down/up-sampling), additive noise and a colour gain; x in [-1, 1]."""
    batch, _, size, _ = x.shape
    out = x.clone()
    blur = torch.rand(batch, device=x.device)
    for factor, lo in ((2, 0.5), (4, 0.85)):
        chosen = blur > lo
        if chosen.any():
            small = nn.functional.interpolate(out[chosen], scale_factor=1 / factor, mode="area")
            out[chosen] = nn.functional.interpolate(
                small, size=(size, size), mode="bilinear", align_corners=False
            )
    gain = 1.0 + 0.05 * torch.randn(batch, 3, 1, 1, device=x.device)
    noise = torch.rand(batch, 1, 1, 1, device=x.device) * 0.06
    return (out * gain + noise * torch.randn_like(out)).clamp(-1.0, 1.0)


def jitter_crop(crop: torch.Tensor, amount: float = 0.08) -> torch.Tensor:
    """Shift the crop centre by up to `amount` x its side and scale the side by up to ~±10%."""
    shift = (torch.rand_like(crop[:, :2]) * 2 - 1) * amount * crop[:, 2:]
    scale = torch.exp((torch.rand_like(crop[:, 2:]) * 2 - 1) * 0.1)
    return torch.cat([crop[:, :2] + shift, crop[:, 2:] * scale], dim=1)


def whole_groups(group: torch.Tensor, smooth: torch.Tensor) -> torch.Tensor:
    """Indices (G,) of aligned blocks of GROUP items that are one conversation clip each."""
    n = (len(group) // GROUP) * GROUP
    if n == 0:
        return torch.zeros(0, dtype=torch.long)
    blocks = group[:n].view(-1, GROUP)
    same = (blocks == blocks[:, :1]).all(dim=1) & smooth[:n].view(-1, GROUP).all(dim=1)
    return torch.nonzero(same).flatten()


def vae_weights_path(out_dir: Path) -> Path:
    """The VAE the judge round-trips through (see the module docstring)."""
    own = stage_dir(out_dir, "vae") / "final.safetensors"
    if own.is_file():
        return own
    from lpm_npc.engine.weights import WEIGHTS_FILE, default_checkpoint_dir

    return default_checkpoint_dir() / WEIGHTS_FILE


class JudgeObjective(StageObjective):
    """JudgeNet + (optionally) the frozen VAE it round-trips conversation clips through."""

    def __init__(
        self,
        image_size: int,
        augment: bool = True,
        vae: nn.Module | None = None,
        vae_frac: float = 0.3,
        latent_noise: float = 0.2,
        *,
        width: int = 32,
        crop_size: int = 96,
    ) -> None:
        super().__init__()
        if not 0.0 <= vae_frac <= 1.0:
            raise ValueError(f"vae_frac must be in [0, 1], got {vae_frac}")
        self.student = JudgeNet(image_size=image_size, width=width, crop_size=crop_size)
        self.augment = augment
        self.vae = vae
        self.vae_frac, self.latent_noise = vae_frac, latent_noise

    def train(self, mode: bool = True) -> JudgeObjective:
        super().train(mode)
        if self.vae is not None:
            self.vae.eval()  # frozen: never in training mode
        return self

    @torch.no_grad()
    def round_trip(self, frames: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """frames (B, 3, H, W) in [-1, 1] at the model's size; some whole clips go through the VAE."""
        if self.vae is None:
            return frames
        blocks = whole_groups(batch["group"].cpu(), batch["smooth"].cpu())
        chosen = blocks[torch.rand(len(blocks)) < self.vae_frac]
        if len(chosen) == 0:
            return frames
        index = (chosen[:, None] * GROUP + torch.arange(GROUP)).flatten().to(frames.device)
        clips = frames[index].view(len(chosen), GROUP, *frames.shape[1:]).transpose(1, 2)
        latents = self.vae.encode(clips)  # (G, C, 1, h, w)
        sigma = torch.rand(len(chosen), 1, 1, 1, 1, device=frames.device) * self.latent_noise
        video = self.vae.decode(latents + sigma * torch.randn_like(latents)).clamp(-1, 1)
        out = frames.clone()
        out[index] = video.transpose(1, 2).reshape(-1, *frames.shape[1:]).to(frames.dtype)
        return out

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        net = self.student
        x = batch["frames"].permute(0, 3, 1, 2).float() / 127.5 - 1.0
        if self.augment and self.training:
            x = self.round_trip(x, batch)
        x = resize_input(x, net.image_size)
        if self.augment and self.training:
            x = degrade(x)
        coarse, predicted = net.locate(x)
        truth = batch["crop"].float()
        if self.training:
            given = torch.rand(len(x), 1, device=x.device) < 0.5
            look = torch.where(given, jitter_crop(truth), predicted.detach())
        else:
            look = predicted.detach()
        out = net.read(x, coarse, look, predicted)
        return judge_loss(out, batch["scalars"], batch["expression"], truth)


def build(ctx: StageContext) -> StageSetup:
    path = vae_weights_path(ctx.out_dir)
    vae = load_frozen_vae(path, ctx.model)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    log.info("judge stage: VAE round-trips through %s (sha256 %s)", path, digest)
    target = stage_dir(ctx.out_dir, "judge")
    target.mkdir(parents=True, exist_ok=True)
    (target / VAE_SOURCE_FILE).write_text(
        json.dumps({"path": str(path), "sha256_16": digest}, indent=2) + "\n"
    )
    objective = JudgeObjective(ctx.train.judge_size, vae=vae)
    if ctx.init_state is not None:
        objective.student.load_state_dict(ctx.init_state)
    dataset = JudgeFrames(seed=ctx.train.judge_seed, size=ctx.model.image_size)
    return StageSetup(objective=objective, dataset=dataset, collate=collate_frames)
