"""Build the latent dataset (`latent_data.py` describes the layout) once, in worker processes.

`build_latent_dataset(options)` draws the training characters exactly as `synth.dataset.ClipDataset`
does for the same data seed (the same identities the pixel stages train on), then gives each worker
process whole characters: render its reference sheet and `conversations_per_character` directed
conversations, VAE-encode the sheet and each conversation (one causal stream, encoded in pieces
with enough past context to be exact), compute the renderer's face / mouth / eye boxes, and write
into the preallocated memory-mapped arrays at the character's rows. A finished character leaves
`meta/char_XXXXX.json`; a resumed build skips those, so a kill loses at most the characters in
flight. The manifest turns "complete" when every character is done.

This module does not train anything.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lpm_npc.config import FPS, SAMPLES_PER_FRAME, ModelConfig
from lpm_npc.train.latent_data import (
    BOX_REGIONS,
    FORMAT,
    MOTION_CHANNELS,
    PCM_SCALE,
    VERSION,
    LatentDataError,
    read_manifest,
)

log = logging.getLogger(__name__)

ENCODE_PIECE_GROUPS = 24  # latent frames encoded per VAE call
ENCODE_CONTEXT_GROUPS = 4  # past groups re-encoded before each piece (> the encoder's reach)


@dataclass(frozen=True)
class BuildOptions:
    """What to build (the manifest records all of it; a resume must match)."""

    out_dir: Path  # dataset directory
    vae_path: Path  # safetensors holding an LPM state dict (only `vae.*` is read)
    preset: str = "tiny"  # ModelConfig preset (shapes)
    data_seed: int = 1  # draws the character pool (TrainConfig.data_seed)
    n_characters: int = 256  # training identities
    conversations_per_character: int = 4  # directed conversations per identity (own prompt each)
    seconds_per_conversation: float = 15.0  # length of each conversation
    workers: int = 2  # worker processes


def _frames_per_conversation(cfg: ModelConfig, seconds: float) -> int:
    groups = int(round(seconds * FPS)) // cfg.temporal_stride
    if groups < 2:
        raise ValueError(f"seconds_per_conversation={seconds} gives fewer than 2 latent frames")
    return groups * cfg.temporal_stride


def character_pool(data_seed: int, n_characters: int) -> list[int]:
    """The training character seeds of `ClipDataset(seed=data_seed, n_characters=n)`."""
    from lpm_npc.synth.dataset import ClipDataset

    probe = ClipDataset(seed=data_seed, size=64, n_frames=4, n_characters=n_characters)
    return list(probe.character_seeds)


def conversation_seed(data_seed: int, character_seed: int, conversation: int) -> int:
    rng = np.random.default_rng([data_seed, character_seed, conversation, 0x1A7B])
    return int(rng.integers(2**31))


def _load_vae(opts: BuildOptions):
    from lpm_npc.model.vae import load_frozen_vae

    try:
        return load_frozen_vae(opts.vae_path, ModelConfig.from_name(opts.preset))
    except (FileNotFoundError, ValueError) as err:
        raise LatentDataError(f"--vae: {err}") from err


def encode_stream(vae, frames: np.ndarray) -> np.ndarray:
    """uint8 (T, H, W, 3) of one conversation -> latents (T/4, C, h, w) float32, as one causal
    stream: each piece is encoded after ENCODE_CONTEXT_GROUPS groups of its past (or from the start)."""
    import torch

    stride = vae.cfg.temporal_stride
    groups = frames.shape[0] // stride
    out = []
    for g0 in range(0, groups, ENCODE_PIECE_GROUPS):
        g1 = min(groups, g0 + ENCODE_PIECE_GROUPS)
        c0 = max(0, g0 - ENCODE_CONTEXT_GROUPS)
        video = torch.from_numpy(np.ascontiguousarray(frames[c0 * stride : g1 * stride]))
        video = video.permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0
        latents = vae.encode(video)[0, :, g0 - c0 :]  # (C, g1-g0, h, w)
        out.append(latents.permute(1, 0, 2, 3).numpy())
    return np.concatenate(out, axis=0)


_WORKER: dict = {}


def _worker_init(opts: BuildOptions, pool_worker: bool = True) -> None:
    import torch

    if pool_worker:  # N processes x 1 thread each: rendering is single-threaded numpy anyway
        torch.set_num_threads(1)
    _WORKER["vae"] = _load_vae(opts)
    _WORKER["opts"] = opts


def _build_character(task: tuple[int, int]) -> int:
    """Render, encode and write one character's rows; returns the character index."""
    import torch

    with torch.inference_mode():
        return _build_character_rows(task)


def _build_character_rows(task: tuple[int, int]) -> int:
    import torch

    from lpm_npc.synth.character import CharacterSpec
    from lpm_npc.synth.director import direct_conversation
    from lpm_npc.synth.face_boxes import face_boxes
    from lpm_npc.synth.render import render_frames
    from lpm_npc.synth.sheet import render_sheet, sheet_to_array

    char_index, character_seed = task
    opts: BuildOptions = _WORKER["opts"]
    vae = _WORKER["vae"]
    cfg = vae.cfg
    root = Path(opts.out_dir)
    size = cfg.image_size
    n_frames = _frames_per_conversation(cfg, opts.seconds_per_conversation)
    spec = CharacterSpec.from_seed(character_seed)
    images, roles = sheet_to_array(render_sheet(spec, size), size)
    images = images[: cfg.max_references]
    roles = [tuple(r) for r in roles][: cfg.max_references]
    refs = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    ref_latents = vae.encode_image(refs).numpy()
    arrays = {
        n: np.load(root / f"{n}.npy", mmap_mode="r+")
        for n in ("latents", "references", "speak", "listen", "motion", "boxes")
    }
    arrays["references"][char_index, : len(roles)] = ref_latents.astype(np.float16)
    prompts = []
    k = opts.conversations_per_character
    for j in range(k):
        row = char_index * k + j
        seed = conversation_seed(opts.data_seed, character_seed, j)
        conv = direct_conversation(seed, (n_frames + 1) / FPS, spec=spec)
        motion = conv.motion.slice(0, n_frames)
        frames = render_frames(spec, motion, size)
        arrays["latents"][row] = encode_stream(vae, frames).astype(np.float16)
        n_samples = n_frames * SAMPLES_PER_FRAME
        for track in ("speak", "listen"):
            audio = np.clip(getattr(conv, track)[:n_samples], -1.0, 1.0) * PCM_SCALE
            arrays[track][row] = np.round(audio).astype(np.int16)
        motion_arrays = motion.to_arrays()
        columns = [motion_arrays[name] for name in MOTION_CHANNELS]
        arrays["motion"][row] = np.concatenate(
            [np.stack(columns, axis=1), motion_arrays["expression"]], axis=1
        )
        arrays["boxes"][row] = face_boxes(spec, motion, size).stacked().astype(np.int16)
        prompts.append({"seed": seed, "prompt": conv.script.prompt})
    for array in arrays.values():
        array.flush()
    meta = {"character_seed": character_seed, "roles": roles, "conversations": prompts}
    tmp = root / "meta" / f".char_{char_index:05d}.json.tmp"
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, root / "meta" / f"char_{char_index:05d}.json")
    return char_index


def _allocate(root: Path, opts: BuildOptions, cfg: ModelConfig, n_frames: int) -> None:
    from lpm_npc.synth.motion import EXPRESSIONS

    n_conv = opts.n_characters * opts.conversations_per_character
    tl = n_frames // cfg.temporal_stride
    c, h = cfg.latent_channels, cfg.latent_size
    shapes = {
        "latents": ((n_conv, tl, c, h, h), np.float16),
        "references": ((opts.n_characters, cfg.max_references, c, h, h), np.float16),
        "speak": ((n_conv, n_frames * SAMPLES_PER_FRAME), np.int16),
        "listen": ((n_conv, n_frames * SAMPLES_PER_FRAME), np.int16),
        "motion": ((n_conv, n_frames, len(MOTION_CHANNELS) + len(EXPRESSIONS)), np.float32),
        "boxes": ((n_conv, n_frames, len(BOX_REGIONS), 4), np.int16),
    }
    for name, (shape, dtype) in shapes.items():
        path = root / f"{name}.npy"
        if not path.is_file():
            np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape).flush()


def _write_manifest(root: Path, raw: dict) -> None:
    tmp = root / ".manifest.json.tmp"
    tmp.write_text(json.dumps(raw, indent=1))
    os.replace(tmp, root / "manifest.json")


def _options_record(opts: BuildOptions) -> dict:
    record = asdict(opts)
    record.pop("out_dir")
    record.pop("workers")
    record["vae_path"] = str(opts.vae_path)
    return record


def build_latent_dataset(opts: BuildOptions, *, progress: bool = True) -> dict:
    """Build (or resume building) the dataset at `opts.out_dir`; returns the final manifest."""
    from tqdm import tqdm

    from lpm_npc.synth.motion import EXPRESSIONS
    from lpm_npc.train.latent_data import vae_digest

    cfg = ModelConfig.from_name(opts.preset)
    n_frames = _frames_per_conversation(cfg, opts.seconds_per_conversation)
    if opts.n_characters < 1 or opts.conversations_per_character < 1 or opts.workers < 1:
        raise ValueError("n_characters, conversations_per_character and workers must be >= 1")
    root = Path(opts.out_dir)
    import torch

    with torch.inference_mode():
        vae = _load_vae(opts)
        digest, encoder_digest = vae_digest(vae), vae_digest(vae, encoder_only=True)
    cfg = vae.cfg  # the preset with the VAE's own latent and decoder widths (read off its tensors)
    record = _options_record(opts)
    if (root / "manifest.json").is_file():
        old = read_manifest(root, require_complete=False).raw
        if old["options"] != record or old["vae_sha256"] != digest:
            raise LatentDataError(
                f"{root} was started with other options or another VAE "
                f"(sha256 {old['vae_sha256'][:16]}… vs {digest[:16]}…); use a new --out"
            )
        if old.get("status") == "complete":
            return old
    root.mkdir(parents=True, exist_ok=True)
    (root / "meta").mkdir(exist_ok=True)
    seeds = character_pool(opts.data_seed, opts.n_characters)
    raw = {
        "format": FORMAT,
        "version": f"{VERSION}.0",
        "status": "building",
        "options": record,
        "preset": cfg.name,
        "image_size": cfg.image_size,
        "latent_channels": cfg.latent_channels,
        "latent_size": cfg.latent_size,
        "temporal_stride": cfg.temporal_stride,
        "fps": FPS,
        "vae_sha256": digest,
        "vae_encoder_sha256": encoder_digest,
        "data_seed": opts.data_seed,
        "character_seeds": seeds,
        "frames_per_conversation": n_frames,
        "latent_frames_per_conversation": n_frames // cfg.temporal_stride,
        "motion_channels": [*MOTION_CHANNELS, *(f"expression.{e}" for e in EXPRESSIONS)],
        "box_regions": list(BOX_REGIONS),
    }
    _write_manifest(root, raw)
    _allocate(root, opts, cfg, n_frames)
    todo = [
        (i, s) for i, s in enumerate(seeds) if not (root / "meta" / f"char_{i:05d}.json").is_file()
    ]
    start = time.monotonic()
    bar = tqdm(
        total=len(seeds), initial=len(seeds) - len(todo), desc="data build", disable=not progress
    )
    if todo:
        if opts.workers == 1:
            _worker_init(opts, pool_worker=False)
            for task in todo:
                _build_character(task)
                bar.update(1)
        else:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")  # torch + fork is fragile; workers load the VAE once
            with ctx.Pool(opts.workers, initializer=_worker_init, initargs=(opts,)) as pool:
                for _ in pool.imap_unordered(_build_character, todo):
                    bar.update(1)
    bar.close()
    return _finish(root, raw, seeds, opts, time.monotonic() - start)


def _finish(root: Path, raw: dict, seeds: list[int], opts: BuildOptions, seconds: float) -> dict:
    conversations, roles, n_refs = [], [], []
    for i in range(len(seeds)):
        meta = json.loads((root / "meta" / f"char_{i:05d}.json").read_text())
        roles.append([list(r) for r in meta["roles"]])
        n_refs.append(len(meta["roles"]))
        for conv in meta["conversations"]:
            conversations.append({"character_index": i, **conv})
    raw = dict(raw)
    raw.update(
        status="complete",
        conversations=conversations,
        reference_roles=roles,
        n_references=n_refs,
        build_seconds_last_session=round(seconds, 1),
        disk_bytes=sum(p.stat().st_size for p in root.glob("*.npy")),
    )
    _write_manifest(root, raw)
    log.info("latent dataset %s complete: %d conversations", root, len(conversations))
    return raw
