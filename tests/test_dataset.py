"""ClipDataset: deterministic per (seed, index), worker-safe, held-out identities stay out."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lpm_npc.config import SAMPLES_PER_FRAME
from lpm_npc.synth.character import CharacterSpec
from lpm_npc.synth.dataset import (
    HELD_OUT_SEED_START,
    ClipDataset,
    collate_clips,
    held_out_character_seeds,
)
from lpm_npc.synth.render import render_frames

SIZE, T = 64, 8


def _small(**kw) -> ClipDataset:
    return ClipDataset(
        3, SIZE, T, length=16, n_characters=4, conversation_seconds=4.0, **kw
    )  # fmt: skip


def test_clips_are_deterministic_and_well_formed():
    a, b = _small(), _small()
    clip = a[5]
    again = b[5]  # a fresh instance (as in another worker) gives the same clip
    assert np.array_equal(clip.frames, again.frames)
    assert np.array_equal(clip.speak, again.speak) and np.array_equal(clip.listen, again.listen)
    assert np.array_equal(clip.references, again.references)
    assert clip.prompt == again.prompt and clip.character_seed == again.character_seed

    assert clip.frames.shape == (T, SIZE, SIZE, 3) and clip.frames.dtype == np.uint8
    r = clip.references.shape[0]
    assert r >= 2 and clip.references.shape == (r, SIZE, SIZE, 3) and len(clip.reference_roles) == r
    assert {role for role, _ in clip.reference_roles} <= {"global", "view", "expression"}
    assert clip.speak.shape == clip.listen.shape == (T * SAMPLES_PER_FRAME,)
    assert clip.motion.n_frames == T
    assert 0 <= clip.character_seed < HELD_OUT_SEED_START
    # The frames are the character rendered with the clip's own motion (ground truth holds).
    spec = CharacterSpec.from_seed(clip.character_seed)
    assert np.array_equal(render_frames(spec, clip.motion, SIZE), clip.frames)

    others = [a[i] for i in range(6)]
    assert len({c.frames.tobytes() for c in others}) == len(others)


def test_held_out_seeds_are_never_trained_on():
    held = held_out_character_seeds(3)
    assert held == [HELD_OUT_SEED_START, HELD_OUT_SEED_START + 1, HELD_OUT_SEED_START + 2]
    big = ClipDataset(0, SIZE, T, n_characters=5000)
    assert max(big.character_seeds) < HELD_OUT_SEED_START
    evaluation = ClipDataset(0, SIZE, T, length=4, character_seeds=held, conversation_seconds=3.0)
    assert evaluation[0].character_seed in held
    with pytest.raises(ValueError, match="start"):
        held_out_character_seeds(2, start=5)


def test_dataloader_workers_match_sequential_and_collate():
    ds = _small()
    sequential = collate_clips([ds[i] for i in range(4)])
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_clips)
    batches = []
    for i, batch in enumerate(loader):
        batches.append(batch)
        if i == 1:
            break
    frames = torch.cat([b.frames for b in batches])
    assert torch.equal(frames, sequential.frames)
    assert torch.equal(torch.cat([b.speak for b in batches]), sequential.speak)
    assert [p for b in batches for p in b.prompts] == sequential.prompts

    assert sequential.frames.shape == (4, T, SIZE, SIZE, 3)
    assert sequential.motion["jaw_open"].shape == (4, T)
    assert sequential.motion["expression"].shape[:2] == (4, T)
    video = sequential.video()
    assert video.shape == (4, 3, T, SIZE, SIZE) and video.min() >= -1 and video.max() <= 1
    assert sequential.reference_video().shape[:3] == (4, 3, sequential.references.shape[1])
    assert sequential.character_seeds.dtype == torch.int64


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_frames"):
        ClipDataset(0, SIZE, 6)
    with pytest.raises(ValueError, match="size"):
        ClipDataset(0, 60, 8)
    with pytest.raises(IndexError):
        _small()[16]
    with pytest.raises(ValueError, match="clips"):
        collate_clips([])
