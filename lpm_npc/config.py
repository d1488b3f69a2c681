"""Every number of the project lives here: media constants, synth limits, model presets.

Config objects are frozen dataclasses with a comment on every field; derived fields are computed in
`__post_init__`; named presets live in one dict and are looked up with `ModelConfig.from_name()`.
Nothing here reads files, argparse namespaces or YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# --- media clock -------------------------------------------------------------------------------
SAMPLE_RATE = 16_000  # audio sample rate of both tracks, Hz (mono PCM)
FPS = 24  # video frame rate of every generated or rendered clip
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 666 samples of audio per video frame (integer clock)


@dataclass(frozen=True)
class SheetLimits:
    """Limits a reference sheet handed in by a designer must respect."""

    max_images: int = 16  # images in one sheet
    min_side: int = 64  # smallest allowed image side, px
    max_side: int = 1024  # largest allowed image side, px
    max_file_bytes: int = 8 * 1024 * 1024  # one image file on disk or in a request
    max_total_bytes: int = 32 * 1024 * 1024  # the whole sheet


@dataclass(frozen=True)
class ModelConfig:
    """Shape of one Online LPM: VAE, encoders, DiT backbone, refiner and streaming caches."""

    name: str  # preset name
    # --- frames and VAE ---
    image_size: int  # output frame side, px (square frames)
    latent_channels: int  # VAE latent channels
    vae_channels: tuple[int, ...]  # VAE encoder channels per resolution level (decoder mirrors)
    spatial_stride: int = 8  # VAE spatial downsampling
    temporal_stride: int = 4  # VAE temporal downsampling (video frames per latent frame)
    # --- tokens ---
    patch_size: tuple[int, int, int] = (1, 2, 2)  # (t, h, w) patchify of latents
    chunk_latent_frames: int = 1  # latent frames generated per streaming chunk
    history_chunks: int = 4  # chunks of K/V kept in each layer's history ring
    max_references: int = 8  # reference images (global / view / expression) per character
    # --- transformer ---
    dim: int = 192  # model width
    n_layers: int = 8  # backbone DiT blocks
    n_heads: int = 3  # attention heads (head_dim = dim // n_heads)
    ffn_dim: int = 768  # MLP hidden width
    refiner_layers: int = 2  # blocks in the one-step refiner
    # --- conditioning ---
    n_mels: int = 40  # log-mel bins of the tiny audio front end
    audio_dim: int = 128  # audio feature width fed to audio cross-attention
    n_audio_tokens: int = 4  # audio tokens per latent frame
    text_dim: int = 128  # text encoder width
    text_max_tokens: int = 16  # prompt tokens
    text_vocab: int = 4096  # hashed word vocabulary of the built-in tokenizer
    # --- diffusion ---
    flow_shift: float = (
        3.0  # timestep shift of flow matching (sigma' = s*sigma / (1 + (s-1)*sigma))
    )
    teacher_steps: int = 16  # Base LPM sampling steps
    backbone_steps: int = 2  # distilled causal backbone steps per chunk
    refine_t: float = 0.25  # noise level the refiner starts from (one step)
    context_noise: float = 0.1  # noise level of the re-noised pass whose K/V are committed
    # --- derived ---
    head_dim: int = field(init=False)  # dim // n_heads
    latent_size: int = field(init=False)  # latent side = image_size // spatial_stride
    tokens_per_latent_frame: int = field(init=False)  # tokens of one patchified latent frame
    tokens_per_chunk: int = field(init=False)  # query tokens of one streaming chunk
    frames_per_chunk: int = field(init=False)  # video frames per chunk
    samples_per_chunk: int = field(init=False)  # audio samples per chunk (per track)

    def __post_init__(self) -> None:
        assert self.dim % self.n_heads == 0, "dim must be divisible by n_heads"
        assert self.image_size % (self.spatial_stride * self.patch_size[1]) == 0
        set_ = object.__setattr__
        set_(self, "head_dim", self.dim // self.n_heads)
        set_(self, "latent_size", self.image_size // self.spatial_stride)
        per_frame = (self.latent_size // self.patch_size[1]) * (
            self.latent_size // self.patch_size[2]
        )
        set_(self, "tokens_per_latent_frame", per_frame)
        set_(self, "tokens_per_chunk", per_frame * self.chunk_latent_frames)
        set_(self, "frames_per_chunk", self.chunk_latent_frames * self.temporal_stride)
        set_(self, "samples_per_chunk", self.frames_per_chunk * SAMPLES_PER_FRAME)

    @classmethod
    def from_name(cls, name: str) -> ModelConfig:
        if name not in PRESETS:
            raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return PRESETS[name]


PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(
        name="tiny",
        image_size=128,
        latent_channels=16,
        vae_channels=(32, 64, 96, 128),
    ),
    "small": ModelConfig(
        name="small",
        image_size=256,
        latent_channels=16,
        vae_channels=(64, 128, 256, 256),
        dim=640,
        n_layers=10,
        n_heads=10,
        ffn_dim=2560,
        refiner_layers=4,
        audio_dim=512,
        text_dim=512,
        history_chunks=6,
    ),
    "lpm-17b": ModelConfig(
        name="lpm-17b",
        image_size=512,
        latent_channels=16,
        vae_channels=(128, 256, 512, 512),
        dim=5120,
        n_layers=40,
        n_heads=40,
        ffn_dim=13824,
        refiner_layers=4,
        audio_dim=1024,
        text_dim=4096,
        text_max_tokens=512,
        n_audio_tokens=32,
        history_chunks=6,
        teacher_steps=40,
        backbone_steps=4,
    ),
}
