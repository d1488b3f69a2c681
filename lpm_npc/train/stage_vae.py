"""Stage `vae`: train the causal video VAE on rendered conversation clips.

With `TrainConfig.vae_decoder_only` only the decoder trains: the encoder and the latent statistics
stay, so latent datasets and DiTs built on them stay valid for the new decoder. A run whose
`ModelConfig.vae_decoder_channels` is wider than its warm start's (`--init-from`) widens the
decoder first (`model.vae_widen`: the same frames at step 0, the new channels then train).

Student: the whole `LPM` with only `.vae` trainable (so `final.safetensors` is a full LPM state dict
the next stage starts from). Loss: `model.vae.reconstruction_loss` (L1 + edge L1 + tiny KL) on
clips of `clip_frames` frames. On finishing, the EMA VAE encodes a few held batches and stores the
per-channel latent mean / std (`VideoVAE.set_latent_stats`), so the DiT sees unit-scale latents.

This stage does not touch the DiTs or the encoders.
"""

from __future__ import annotations

import logging

import torch

from lpm_npc.model.lpm import LPM
from lpm_npc.model.vae import latent_channels_of, reconstruction_loss
from lpm_npc.model.vae_widen import widen_state
from lpm_npc.model.vae_widen_latents import widen_latent_state
from lpm_npc.train.batch import TrainBatch, clip_dataset, collate_clips, frames_to_video
from lpm_npc.train.loop import StageObjective
from lpm_npc.train.stage import StageContext, StageSetup

log = logging.getLogger(__name__)

_STATS_BATCHES = 4  # batches encoded to measure latent statistics
DECODER_PREFIX = "vae.decoder."
VAE_PREFIX = "vae."


def freeze_except(model: torch.nn.Module, *trainable: str) -> None:
    """requires_grad only on the named top-level children of `model`."""
    for name, child in model.named_children():
        child.requires_grad_(name in trainable)


def pixel_weights(batch: TrainBatch, size: int, train) -> torch.Tensor | None:
    """(B, T, H, W) weights: 1, + the recipe's mouth / eye weights inside their boxes; mean 1."""
    if batch.boxes is None or train is None:
        return None
    from lpm_npc.train.batch import box_weights

    weight = box_weights(batch.boxes, size, 1, train)
    return weight / weight.mean(dim=(2, 3), keepdim=True)


class VAEObjective(StageObjective):
    def __init__(self, model: LPM, train_cfg=None) -> None:
        super().__init__()
        self.student = model
        self.train_cfg = train_cfg
        freeze_except(model, "vae")
        self.decoder_only = bool(train_cfg is not None and train_cfg.vae_decoder_only)
        if self.decoder_only:  # the encoder and latent statistics stay: the latents stay valid
            model.vae.encoder.requires_grad_(False)

    def forward(self, batch: TrainBatch) -> tuple[torch.Tensor, dict[str, float]]:
        video = frames_to_video(batch.frames)
        out = self.student.vae(video, sample=True, train_encoder=not self.decoder_only)
        weight = pixel_weights(batch, video.shape[-1], self.train_cfg)
        loss = reconstruction_loss(video, out.recon, out.mean, out.logvar, pixel_weight=weight)
        return loss.total, {"l1": float(loss.l1.detach()), "kl": float(loss.kl.detach())}


@torch.no_grad()
def measure_latent_stats(model: LPM, dataset, collate, batch_size: int) -> None:
    """Per-channel mean / std of raw posterior means over a few fixed batches; stored in the VAE."""
    device = next(model.parameters()).device
    means = []
    for b in range(_STATS_BATCHES):
        items = [dataset[(b * batch_size + i) * 7919 % len(dataset)] for i in range(batch_size)]
        video = frames_to_video(collate(items).frames.to(device))
        mean, _ = model.vae.encode_dist(video)
        means.append(mean.transpose(0, 1).flatten(1))  # (C, N)
    stacked = torch.cat(means, dim=1)
    mu, sd = stacked.mean(dim=1), stacked.std(dim=1).clamp_min(1e-3)
    model.vae.set_latent_stats(mu.to(device), sd.to(device))
    log.info("latent stats: mean |mu| %.3f, mean sd %.3f", float(mu.abs().mean()), float(sd.mean()))


def _widen_latents(model: LPM, init_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`init_state` with its VAE grown to the run's `latent_channels` (`model.vae_widen_latents`).

    The DiTs read latents of the old width, so a widening keeps only the VAE of the warm start and
    the rest of `model` as freshly built (the DiT stages train it again on the new latents)."""
    vae_state = {k[len(VAE_PREFIX) :]: v for k, v in init_state.items() if k.startswith(VAE_PREFIX)}
    old = latent_channels_of(vae_state) if vae_state else model.cfg.latent_channels
    if old == model.cfg.latent_channels:
        return init_state
    widened, _ = widen_latent_state(model.vae, vae_state)
    log.info(
        "warm start: latent channels %d -> %d (same frames at step 0); only its VAE is kept",
        old,
        model.cfg.latent_channels,
    )
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(VAE_PREFIX)}
    state.update({VAE_PREFIX + k: v for k, v in widened.items()})
    return state


def build(ctx: StageContext) -> StageSetup:
    model = LPM(ctx.model)
    if ctx.init_state is not None:
        state = _widen_latents(model, ctx.init_state)
        state, grown = widen_state(model.vae.decoder, state, DECODER_PREFIX)
        if grown:
            log.info("warm start: %d decoder tensors widened (same frames at step 0)", len(grown))
        model.load_state_dict(state)
    objective = VAEObjective(model, ctx.train)
    dataset = clip_dataset(ctx, ctx.stage.clip_frames)
    model_ref = model

    def finish() -> None:
        if objective.decoder_only:
            log.info("decoder-only: latent stats kept (the encoder did not change)")
            return
        measure_latent_stats(model_ref, dataset, collate_clips, min(ctx.stage.batch_size, 4))

    return StageSetup(objective=objective, dataset=dataset, collate=collate_clips, finish=finish)
