"""The latent dataset: the training world rendered and VAE-encoded once, read memory-mapped.

Layout of a dataset directory (written by `latent_build.build_latent_dataset`):

    manifest.json        format, version, status ("building" | "complete"), the VAE's sha256, shapes,
                         data seed, character seeds, per conversation its character and prompt
    latents.npy          (N_conv, Tl, C, h, w) float16  normalised VAE latents of whole conversations
    references.npy       (N_char, R, C, h, w) float16   latents of each character's reference sheet
    speak.npy/listen.npy (N_conv, Tl * 4 * 666) int16   both audio tracks, 16 kHz PCM
    motion.npy           (N_conv, Tl * 4, M) float32    motion truth per video frame (MOTION_CHANNELS)
    boxes.npy            (N_conv, Tl * 4, 3, 4) int16   face / mouth / eye boxes per video frame, px
    meta/char_XXXXX.json one per finished character (its prompts and roles): what a resumed build skips

A conversation is encoded as one causal stream, so a window cut at latent frame g carries latents
that saw the frames before it, as the streaming generator's do. `LatentDataset(root, n_frames)` is
a map-style Dataset: item i is a `LatentClip` window of `n_frames` video frames cut at a random
latent offset, deterministic per (seed, i). A dataset made by another VAE is refused
(`check_vae`) with both hashes named.

This module does not render or encode anything (see `latent_build.py`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lpm_npc.config import SAMPLES_PER_FRAME

FORMAT = "lpm-npc-latents"
VERSION = 1
MOTION_CHANNELS: tuple[str, ...] = (
    "jaw_open",
    "lip_round",
    "lip_spread",
    "blink_left",
    "blink_right",
    "brow_raise",
    "brow_furrow",
    "head_yaw",
    "head_pitch",
    "head_roll",
    "gaze_x",
    "gaze_y",
    "torso_sway",
    "breath",
)  # then one column per expression weight (synth.motion.EXPRESSIONS)
BOX_REGIONS: tuple[str, ...] = ("face", "mouth", "eyes")
PCM_SCALE = 32767.0


class LatentDataError(ValueError):
    """A latent dataset that is missing, incomplete, of another format or of another VAE."""


def vae_digest(vae: torch.nn.Module, *, encoder_only: bool = False) -> str:
    """sha256 of a VAE's weights rounded to float16 (an fp32 run and its fp16 export agree).

    With `encoder_only`, of what makes the latents: every weight but the decoder's (the encoder and
    the latent statistics). A decoder trained on after a dataset was built (`vae_decoder_only`)
    reads the same latents, so the dataset stays valid for it.
    """
    digest = hashlib.sha256()
    for name, value in sorted(vae.state_dict().items()):
        if encoder_only and name.startswith("decoder."):
            continue
        digest.update(name.encode())
        tensor = value.detach().to("cpu")
        if tensor.is_floating_point():
            tensor = tensor.to(torch.float16)
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class LatentManifest:
    """manifest.json, parsed."""

    root: Path
    raw: dict

    @property
    def n_conversations(self) -> int:
        return len(self.raw["conversations"])

    @property
    def latent_frames(self) -> int:
        return int(self.raw["latent_frames_per_conversation"])

    @property
    def temporal_stride(self) -> int:
        return int(self.raw["temporal_stride"])

    @property
    def vae_sha256(self) -> str:
        return str(self.raw["vae_sha256"])

    @property
    def vae_encoder_sha256(self) -> str | None:
        """`vae_digest(encoder_only=True)` of the building VAE (None in datasets built before it
        was recorded: those are checked against the whole VAE)."""
        value = self.raw.get("vae_encoder_sha256")
        return None if value is None else str(value)


def read_manifest(root: Path | str, *, require_complete: bool = True) -> LatentManifest:
    root = Path(root)
    path = root / "manifest.json"
    if not path.is_file():
        raise LatentDataError(f"{root}: no manifest.json; build it with `lpm-npc data build`")
    raw = json.loads(path.read_text())
    if raw.get("format") != FORMAT:
        raise LatentDataError(f"{path}: format {raw.get('format')!r}, expected {FORMAT!r}")
    major = int(str(raw.get("version", "0")).split(".")[0])
    if major != VERSION:
        raise LatentDataError(f"{path}: version {raw.get('version')} unsupported (reads {VERSION})")
    if require_complete and raw.get("status") != "complete":
        raise LatentDataError(
            f"{root}: the build is not complete (status {raw.get('status')!r}); "
            "resume it with `lpm-npc data build --out DIR` and the same options"
        )
    return LatentManifest(root=root, raw=raw)


def check_vae(manifest: LatentManifest, vae: torch.nn.Module) -> None:
    """Refuse a dataset encoded by another VAE encoder than the one being trained on top of (the
    decoder may differ: it does not make the latents)."""
    encoder_only = manifest.vae_encoder_sha256 is not None
    what = "VAE encoder" if encoder_only else "VAE"
    expected = manifest.vae_encoder_sha256 if encoder_only else manifest.vae_sha256
    actual = vae_digest(vae, encoder_only=encoder_only)
    if actual != expected:
        raise LatentDataError(
            f"{manifest.root}: encoded by {what} sha256 {expected[:16]}…, but the model's "
            f"{what} is {actual[:16]}…; rebuild the dataset with this VAE (`lpm-npc data build "
            "--vae`)"
        )


@dataclass(frozen=True)
class LatentClip:
    """One training window (numpy; `train.batch.collate_clips` stacks them)."""

    latents: np.ndarray  # (C, n_latent, h, w) float32
    reference_latents: np.ndarray  # (R, C, h, w) float32
    reference_roles: list[tuple[str, str]]  # (role, label) per reference
    speak: np.ndarray  # (n_frames * 666,) float32
    listen: np.ndarray  # (n_frames * 666,) float32
    motion: np.ndarray  # (n_frames, M) float32, columns MOTION_CHANNELS + expressions
    boxes: np.ndarray  # (n_frames, 3, 4) int64 (BOX_REGIONS)
    prompt: str
    character_seed: int

    @property
    def jaw_open(self) -> np.ndarray:
        return self.motion[:, MOTION_CHANNELS.index("jaw_open")]


class LatentDataset(Dataset):
    """Random windows of the latent dataset at `root`, deterministic per (seed, index)."""

    def __init__(
        self, root: Path | str, n_frames: int, *, seed: int = 0, length: int = 1_000_000
    ) -> None:
        self.manifest = read_manifest(root)
        stride = self.manifest.temporal_stride
        if n_frames <= 0 or n_frames % stride:
            raise ValueError(f"n_frames must be a positive multiple of {stride}, got {n_frames}")
        self.n_latent = n_frames // stride
        if self.n_latent > self.manifest.latent_frames:
            raise ValueError(
                f"n_frames={n_frames} exceeds a conversation "
                f"({self.manifest.latent_frames * stride} frames) of {root}"
            )
        self.n_frames = n_frames
        self.seed = int(seed)
        self.length = int(length)
        self.root = Path(root)
        self._arrays: dict[str, np.ndarray] | None = None  # opened lazily: per worker process

    def arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            names = ("latents", "references", "speak", "listen", "motion", "boxes")
            self._arrays = {n: np.load(self.root / f"{n}.npy", mmap_mode="r") for n in names}
        return self._arrays

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_arrays"] = None  # memmaps are reopened in each DataLoader worker
        return state

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> LatentClip:
        if not 0 <= index < self.length:
            raise IndexError(f"index must be in [0, {self.length}), got {index}")
        rng = np.random.default_rng([self.seed, int(index), 0x1A7E])
        conv_index = int(rng.integers(self.manifest.n_conversations))
        start = int(rng.integers(self.manifest.latent_frames - self.n_latent + 1))
        return self.window(conv_index, start)

    def window(self, conv_index: int, start: int) -> LatentClip:
        """The window of conversation `conv_index` starting at latent frame `start`."""
        arrays = self.arrays()
        raw = self.manifest.raw
        conv = raw["conversations"][conv_index]
        char = int(conv["character_index"])
        stop = start + self.n_latent
        stride = self.manifest.temporal_stride
        f0, f1 = start * stride, stop * stride
        a, b = f0 * SAMPLES_PER_FRAME, f1 * SAMPLES_PER_FRAME
        n_refs = int(raw["n_references"][char])
        latents = np.asarray(arrays["latents"][conv_index, start:stop], np.float32)
        return LatentClip(
            latents=latents.transpose(1, 0, 2, 3).copy(),
            reference_latents=np.asarray(arrays["references"][char, :n_refs], np.float32),
            reference_roles=[tuple(r) for r in raw["reference_roles"][char]],
            speak=np.asarray(arrays["speak"][conv_index, a:b], np.float32) / PCM_SCALE,
            listen=np.asarray(arrays["listen"][conv_index, a:b], np.float32) / PCM_SCALE,
            motion=np.asarray(arrays["motion"][conv_index, f0:f1], np.float32),
            boxes=np.asarray(arrays["boxes"][conv_index, f0:f1], np.int64),
            prompt=str(conv["prompt"]),
            character_seed=int(raw["character_seeds"][char]),
        )
