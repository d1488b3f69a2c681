"""Training batches of conversation clips, and turning them into the LPM's inputs.

`collate_clips(list[Clip]) -> TrainBatch` stacks `synth.dataset.Clip`s (references padded to the
largest sheet of the batch with a `reference_valid` mask). `model_inputs(model, batch, ...)` runs the
frozen VAE and the encoders: clean target latents, reference latents with role / label ids, and a
`Conditioning` with independent per-row dropout of text, speak, listen and references (CFG
training). Dropout draws from the global torch RNG, which the loop seeds per step.

This module does not compute any loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lpm_npc.config import TrainConfig


@dataclass(frozen=True)
class TrainBatch:
    """B clips. Pixels stay uint8 until they reach the device (4x less to move)."""

    frames: Tensor | None  # (B, T, H, W, 3) uint8; None for latent-dataset batches
    references: Tensor | None  # (B, R, H, W, 3) uint8, padded; None for latent-dataset batches
    reference_valid: Tensor  # (B, R) bool
    role_ids: Tensor  # (B, R) int64
    label_ids: Tensor  # (B, R) int64
    speak: Tensor  # (B, T * SAMPLES_PER_FRAME) float32
    listen: Tensor  # (B, T * SAMPLES_PER_FRAME) float32
    jaw_open: Tensor  # (B, T) float32 ground-truth motion (for metrics)
    prompts: tuple[str, ...]  # B prompts
    character_seeds: tuple[int, ...]  # B character seeds
    latents: Tensor | None = None  # (B, C, Tl, h, w) pre-encoded targets (latent dataset)
    reference_latents: Tensor | None = None  # (B, R, C, h, w) pre-encoded references, padded
    boxes: Tensor | None = None  # (B, T, 3, 4) int64 face / mouth / eye boxes per frame, px


def frames_to_video(frames: Tensor) -> Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, 3, T, H, W) in [-1, 1]."""
    return frames.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


def images_to_tensor(images: Tensor) -> Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1]."""
    return images.movedim(-1, -3).float() / 127.5 - 1.0


def lpm_dataset(ctx, n_frames: int, model):
    """What an LPM stage (base .. refiner) trains on: the latent dataset at `ctx.data_dir` when one
    is given (refused unless `model`'s VAE made it), else live renders (`clip_dataset`)."""
    if ctx.data_dir is None:
        return clip_dataset(ctx, n_frames)
    from lpm_npc.train.latent_data import LatentDataset, check_vae

    dataset = LatentDataset(ctx.data_dir, n_frames, seed=ctx.train.data_seed)
    check_vae(dataset.manifest, model.vae)
    return dataset


def clip_dataset(ctx, n_frames: int):
    """The training ClipDataset of the recipe's data seed at the model's frame size (rendered)."""
    from lpm_npc.synth.dataset import ClipDataset

    n_characters = ctx.train.n_characters
    # Cache every character's sheet and most conversations: a miss costs ~4x a rendered clip.
    return ClipDataset(
        seed=ctx.train.data_seed,
        size=ctx.model.image_size,
        n_frames=n_frames,
        n_characters=n_characters,
        cache_characters=n_characters,
        cache_conversations=2 * n_characters,
    )


def collate_clips(clips) -> TrainBatch:
    """Stack rendered `Clip`s or latent-dataset `LatentClip`s into one TrainBatch."""
    from lpm_npc.train.latent_data import LatentClip

    if isinstance(clips[0], LatentClip):
        return collate_latent_clips(clips)
    from lpm_npc.model.references import role_ids

    n_refs = max(len(c.reference_roles) for c in clips)
    size = clips[0].frames.shape[1:3]
    refs = np.zeros((len(clips), n_refs, *size, 3), np.uint8)
    valid = np.zeros((len(clips), n_refs), bool)
    roles = torch.zeros(len(clips), n_refs, dtype=torch.int64)
    labels = torch.zeros(len(clips), n_refs, dtype=torch.int64)
    for i, clip in enumerate(clips):
        r = len(clip.reference_roles)
        refs[i, :r] = clip.references
        valid[i, :r] = True
        roles[i, :r], labels[i, :r] = role_ids(list(clip.reference_roles))
    return TrainBatch(
        frames=torch.from_numpy(np.stack([c.frames for c in clips])),
        references=torch.from_numpy(refs),
        reference_valid=torch.from_numpy(valid),
        role_ids=roles,
        label_ids=labels,
        speak=torch.from_numpy(np.stack([c.speak for c in clips]).astype(np.float32)),
        listen=torch.from_numpy(np.stack([c.listen for c in clips]).astype(np.float32)),
        jaw_open=torch.from_numpy(np.stack([c.motion.jaw_open for c in clips]).astype(np.float32)),
        prompts=tuple(c.prompt for c in clips),
        character_seeds=tuple(int(c.character_seed) for c in clips),
        boxes=torch.from_numpy(np.stack([c.boxes for c in clips]).astype(np.int64)),
    )


def collate_latent_clips(clips) -> TrainBatch:
    from lpm_npc.model.references import role_ids

    n_refs = max(len(c.reference_roles) for c in clips)
    c, h, w = clips[0].reference_latents.shape[1:]
    refs = np.zeros((len(clips), n_refs, c, h, w), np.float32)
    valid = np.zeros((len(clips), n_refs), bool)
    roles = torch.zeros(len(clips), n_refs, dtype=torch.int64)
    labels = torch.zeros(len(clips), n_refs, dtype=torch.int64)
    for i, clip in enumerate(clips):
        r = len(clip.reference_roles)
        refs[i, :r] = clip.reference_latents
        valid[i, :r] = True
        roles[i, :r], labels[i, :r] = role_ids(list(clip.reference_roles))
    return TrainBatch(
        frames=None,
        references=None,
        reference_valid=torch.from_numpy(valid),
        role_ids=roles,
        label_ids=labels,
        speak=torch.from_numpy(np.stack([c.speak for c in clips])),
        listen=torch.from_numpy(np.stack([c.listen for c in clips])),
        jaw_open=torch.from_numpy(np.stack([c.jaw_open for c in clips])),
        prompts=tuple(c.prompt for c in clips),
        character_seeds=tuple(int(c.character_seed) for c in clips),
        latents=torch.from_numpy(np.stack([c.latents for c in clips])),
        reference_latents=torch.from_numpy(refs),
        boxes=torch.from_numpy(np.stack([c.boxes for c in clips])),
    )


def _keep(batch: int, p: float, device: torch.device) -> Tensor | None:
    if p <= 0:
        return None
    return (torch.rand(batch, device=device) >= p).float()


@dataclass(frozen=True)
class ModelInputs:
    """What the DiTs consume for one batch (references as a `forward_train` tuple)."""

    x0: Tensor  # (B, C, Tl, h, w) clean target latents
    refs: tuple[Tensor, Tensor, Tensor, Tensor | None]  # latents (B,R,C,h,w), roles, labels, valid
    cond: object  # model.conditioning.Conditioning
    region_weight: Tensor | None = None  # (B, Tl, h, w) loss weight of latent cells, mean 1


def reference_order(batch: TrainBatch, n: int, *, anchor: bool = False) -> Tensor | None:
    """Indices (B, n) of a random subset of at most `n` valid references per row, or None for all.
    With `anchor`, the global shot and the front view are always in the subset.

    Fewer references per clip cost less (each adds a latent frame of keys in every layer) and teach
    the model to work from sheets of any size; the bench's single-reference ablation relies on it.
    Draws from the global torch RNG (seeded per step by the loop).
    """
    valid = batch.reference_valid
    if n <= 0 or valid.shape[1] <= n:
        return None
    score = torch.rand(valid.shape, device=valid.device) + valid.float()
    if anchor:
        score = score + 2.0 * (valid & anchor_references(batch)).float()
    order = score.argsort(dim=1, descending=True)[:, :n]  # valid ones first, random among them
    return order.sort(dim=1).values


def anchor_references(batch: TrainBatch) -> Tensor:
    """(B, R) bool: the global shot and the front view, which identity copying leans on most."""
    from lpm_npc.model.references import LABELS, ROLES

    is_global = batch.role_ids == ROLES.index("global")
    is_front = (batch.role_ids == ROLES.index("view")) & (batch.label_ids == LABELS.index("front"))
    return is_global | is_front


class ReferenceLatentCache:
    """Frozen-VAE latents of each training character's whole reference sheet, encoded once.

    A character's sheet is the same in every clip, so after the `vae` stage (VAE frozen) its
    latents never change; encoding them every step would cost as much as encoding the clips.
    Keyed by character seed; bounded (oldest out first). Not a module: never saved.
    """

    def __init__(self, capacity: int = 1024) -> None:
        from collections import OrderedDict

        self.capacity = capacity
        self._store: OrderedDict[int, Tensor] = OrderedDict()

    @torch.no_grad()
    def latents(self, model, batch: TrainBatch) -> Tensor:
        """(B, R, C, h, w) latents of every (padded) reference of the batch."""
        seeds = list(batch.character_seeds)
        missing = [i for i, seed in enumerate(seeds) if seed not in self._store]
        if missing:
            encoded = _encode_references(model, batch.references[missing])
            for row, latent in zip(missing, encoded):
                self._store[seeds[row]] = latent
                if len(self._store) > self.capacity:
                    self._store.popitem(last=False)
        for seed in seeds:
            self._store.move_to_end(seed)
        return torch.stack([self._store[seed] for seed in seeds])


def _encode_references(model, references: Tensor) -> Tensor:
    b, r = references.shape[:2]
    images = images_to_tensor(references).flatten(0, 1)  # (B*R, 3, H, W)
    return model.vae.encode_image(images).unflatten(0, (b, r))


@torch.no_grad()
def encode_pixels(
    model, batch: TrainBatch, cache: ReferenceLatentCache | None = None
) -> tuple[Tensor, Tensor]:
    """Frozen VAE: (target latents (B, C, Tl, h, w), reference latents (B, R, C, h, w)).

    Latent-dataset batches already hold both: nothing is encoded."""
    if batch.latents is not None and batch.reference_latents is not None:
        return batch.latents, batch.reference_latents
    x0 = model.vae.encode(frames_to_video(batch.frames))
    refs = cache.latents(model, batch) if cache is not None else None
    return x0, refs if refs is not None else _encode_references(model, batch.references)


def reference_inputs(
    batch: TrainBatch, latents: Tensor, order: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """The `forward_train` reference tuple, restricted to `order` (see `reference_order`)."""
    valid, roles, labels = batch.reference_valid, batch.role_ids, batch.label_ids
    if order is not None:
        rows = torch.arange(order.shape[0], device=order.device)[:, None]
        latents, valid = latents[rows, order], valid[rows, order]
        roles, labels = roles[rows, order], labels[rows, order]
    return latents, roles, labels, None if bool(valid.all()) else valid


def conditioning(model, batch: TrainBatch, train: TrainConfig | None, *, drop: bool):
    """Text and both audio tracks through `model`'s encoders; optional per-row CFG dropout."""
    from lpm_npc.model.conditioning import Conditioning

    device = batch.speak.device
    b = batch.speak.shape[0]
    speak = model.audio_encoder(batch.speak, "speak")
    listen = model.audio_encoder(batch.listen, "listen")
    text, text_mask = model.text_encoder.encode_prompts(list(batch.prompts), device=device)
    keeps = {}
    if drop and train is not None:
        keeps = dict(
            text_keep=_keep(b, train.drop_text, device),
            speak_keep=_keep(b, train.drop_speak, device),
            listen_keep=_keep(b, train.drop_listen, device),
            refs_keep=_keep(b, train.drop_refs, device),
        )
    return Conditioning(text=text, text_mask=text_mask, speak=speak, listen=listen, **keeps)


def model_inputs(
    model,
    batch: TrainBatch,
    train: TrainConfig | None,
    *,
    drop: bool = True,
    cache: ReferenceLatentCache | None = None,
) -> ModelInputs:
    """Encode a batch; with `drop`, conditions are dropped per row with the recipe's probabilities."""
    order = (
        reference_order(batch, train.train_references, anchor=train.anchor_references)
        if train is not None
        else None
    )
    x0, ref_latents = encode_pixels(model, batch, cache)
    cond = conditioning(model, batch, train, drop=drop)
    return ModelInputs(
        x0=x0,
        refs=reference_inputs(batch, ref_latents, order),
        cond=cond,
        region_weight=region_weights(batch, model.cfg, train),
    )


def box_weights(boxes: Tensor, side: int, stride: int, train: TrainConfig) -> Tensor:
    """(B, T, side, side) weights on a grid of `stride`-px cells: 1 everywhere, + the recipe's mouth
    / eye weight on every cell their boxes (B, T, 3, 4) px touch (not normalised)."""
    from lpm_npc.train.latent_data import BOX_REGIONS

    cells = torch.arange(side, device=boxes.device)
    weight = torch.ones(*boxes.shape[:2], side, side, device=boxes.device)
    for region, extra in (("mouth", train.mouth_loss_weight), ("eyes", train.eyes_loss_weight)):
        box = boxes[:, :, BOX_REGIONS.index(region)]  # (B, T, 4)
        lo = torch.div(box[..., :2], stride, rounding_mode="floor")  # first cell touched
        hi = torch.div(box[..., 2:] + stride - 1, stride, rounding_mode="floor")  # exclusive
        in_x = (cells >= lo[..., 0:1]) & (cells < hi[..., 0:1])  # (B, T, w)
        in_y = (cells >= lo[..., 1:2]) & (cells < hi[..., 1:2])  # (B, T, h)
        weight = weight + extra * (in_y[..., :, None] & in_x[..., None, :]).float()
    return weight


def region_weights(batch: TrainBatch, cfg, train: TrainConfig | None) -> Tensor | None:
    """(B, Tl, h, w) loss weights: 1 everywhere, + mouth / eye weight on the latent cells their
    boxes touch in any frame of the latent group, renormalised to mean 1 per latent frame."""
    if batch.boxes is None or train is None:
        return None
    if train.mouth_loss_weight <= 0 and train.eyes_loss_weight <= 0:
        return None
    weight = box_weights(batch.boxes, cfg.latent_size, cfg.spatial_stride, train)
    n_frames = weight.shape[1]
    groups = weight.unflatten(1, (n_frames // cfg.temporal_stride, cfg.temporal_stride))
    latent = groups.amax(dim=2)  # a cell counts if the region touched it in any frame of the group
    return latent / latent.mean(dim=(2, 3), keepdim=True)
