"""Reading frames with a trained judge: `load_judge(dir)` -> `Judge`, `Judge.read(frames)` -> `JudgeReading`.

The judge weights live beside the generator weights as `judge.safetensors` in a checkpoint
directory (metadata: arch, image_size, width, crop_size; the loader reads the shapes off the
tensors, and files of the first, one-stream architecture load as `judge.net_legacy`). Reported per-frame channels (physical units of SCALAR_RANGES):
- `jaw_open` [0, 1]; `blink` = mean of blink_left/right [0, 1] (1 = closed); `brow_raise` [0, 1];
- `head_pitch` degrees (+ = nod down); `head_yaw` degrees;
- `smile` = expression probability of "smile" + "laugh" [0, 1];
- `expression` = argmax expression label, `expression_probs` (T, n_expressions).

This module does not train the judge and does not decode video files (callers pass uint8 frames).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lpm_npc.judge.net import SCALAR_NAMES, JudgeNet, denormalise, frames_to_input
from lpm_npc.judge.net_legacy import LegacyJudgeNet
from lpm_npc.synth.motion import EXPRESSIONS

JUDGE_FILE = "judge.safetensors"
ARCH = "two_stream_ln"  # `arch` metadata of files written by `save_judge` for `JudgeNet`
READ_FIELDS: tuple[str, ...] = (
    "jaw_open",
    "blink",
    "brow_raise",
    "head_pitch",
    "head_yaw",
    "smile",
)


@dataclass(frozen=True)
class JudgeReading:
    """What the judge read from T frames; arrays are float32 of length T."""

    jaw_open: np.ndarray
    blink: np.ndarray
    brow_raise: np.ndarray
    head_pitch: np.ndarray
    head_yaw: np.ndarray
    smile: np.ndarray
    expression_probs: np.ndarray  # (T, len(EXPRESSIONS))
    scalars: dict[str, np.ndarray]  # every SCALAR_RANGES channel, physical units

    @property
    def expression(self) -> list[str]:
        return [EXPRESSIONS[i] for i in self.expression_probs.argmax(axis=1)]

    def to_json(self, fps: float, decimals: int = 4) -> dict:
        out: dict = {"fps": fps, "n_frames": int(self.jaw_open.shape[0])}
        for name in READ_FIELDS:
            out[name] = [round(float(v), decimals) for v in getattr(self, name)]
        out["expression"] = self.expression
        return out


def save_judge(path: Path, net: JudgeNet, state: dict[str, torch.Tensor] | None = None) -> None:
    """Write judge weights (fp32 state or the given state dict) with their shape metadata."""
    if not isinstance(net, JudgeNet):
        raise TypeError(f"save_judge writes JudgeNet weights, got {type(net).__name__}")
    tensors = {k: v.detach().cpu().contiguous() for k, v in (state or net.state_dict()).items()}
    meta = {
        "arch": ARCH,
        "image_size": str(net.image_size),
        "width": str(net.width),
        "crop_size": str(net.crop_size),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)


class Judge:
    """A loaded judge on a device, reading uint8 frames in batches."""

    def __init__(self, net: JudgeNet | LegacyJudgeNet, device: str | torch.device = "cpu") -> None:
        self.net = net.to(device).eval()
        self.device = torch.device(device)

    @torch.no_grad()
    def read(self, frames: np.ndarray, batch_size: int = 64) -> JudgeReading:
        """frames: uint8 (T, H, W, 3) at any size (area-resized to the judge's input)."""
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(
                f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}"
            )
        scalars_out, probs_out = [], []
        for start in range(0, len(frames), batch_size):
            x = frames_to_input(frames[start : start + batch_size], self.net.image_size)
            scalars, logits, _ = self.net(x.to(self.device))
            scalars_out.append(scalars.float().cpu().numpy())
            probs_out.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
        if not scalars_out:
            scalars_np = np.zeros((0, len(SCALAR_NAMES)), np.float32)
            probs = np.zeros((0, len(EXPRESSIONS)), np.float32)
        else:
            scalars_np, probs = np.concatenate(scalars_out), np.concatenate(probs_out)
        physical = denormalise(scalars_np)
        named = {n: physical[:, i].astype(np.float32) for i, n in enumerate(SCALAR_NAMES)}
        smile = probs[:, EXPRESSIONS.index("smile")] + probs[:, EXPRESSIONS.index("laugh")]
        return JudgeReading(
            jaw_open=named["jaw_open"],
            blink=((named["blink_left"] + named["blink_right"]) / 2).astype(np.float32),
            brow_raise=named["brow_raise"],
            head_pitch=named["head_pitch"],
            head_yaw=named["head_yaw"],
            smile=smile.astype(np.float32),
            expression_probs=probs.astype(np.float32),
            scalars=named,
        )


def net_for_state(state: dict[str, torch.Tensor]) -> JudgeNet | LegacyJudgeNet:
    """An empty net shaped for a judge state dict (shapes are read off the tensors, so a stage's
    bare `final.safetensors` loads as well as an exported `judge.safetensors`)."""
    if "coarse.0.0.weight" in state:
        width = int(state["coarse.0.0.weight"].shape[0])
        channels = 4 * width  # the last stage of both streams has 4 x width channels
        coarse_cells = int(state["coarse_trunk.1.weight"].shape[1]) // channels
        face_cells = int(state["face_trunk.1.weight"].shape[1]) // channels
        image_size = 32 * round(math.sqrt(coarse_cells))
        crop_size = 32 * round(math.sqrt(face_cells))
        return JudgeNet(image_size=image_size, width=width, crop_size=crop_size)
    if "features.0.0.weight" in state:
        width = int(state["features.0.0.weight"].shape[0])
        cells = int(state["trunk.1.weight"].shape[1]) // (4 * width)
        return LegacyJudgeNet(image_size=32 * round(math.sqrt(cells)), width=width)
    raise ValueError(f"not a judge state dict (keys: {sorted(state)[:4]} ...)")


def load_judge(checkpoint_dir: Path | str, device: str | torch.device = "cpu") -> Judge:
    """Load `<checkpoint_dir>/judge.safetensors` (or a direct path to a judge safetensors)."""
    path = Path(checkpoint_dir)
    if path.is_dir():
        path = path / JUDGE_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no judge weights at {path} (train them: lpm-npc train --stage judge)"
        )
    with safe_open(str(path), framework="pt") as handle:
        arch = (handle.metadata() or {}).get("arch")
    if arch not in (None, ARCH):
        raise ValueError(f"{path}: unknown judge arch {arch!r} (this version reads {ARCH!r})")
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    try:
        net = net_for_state(state)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    net.load_state_dict(state)
    return Judge(net, device)
