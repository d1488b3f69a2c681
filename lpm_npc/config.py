"""Every number of the project lives here: media constants, synth limits, model presets.

Config objects are frozen dataclasses with a comment on every field; derived fields are computed in
`__post_init__`; named presets live in one dict and are looked up with `ModelConfig.from_name()`.
Nothing here reads files, argparse namespaces or YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

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
    # Decoder widths per level (full resolution first), None = mirror `vae_channels`. The decoder
    # runs no conv at full resolution, so entry 0 must equal vae_channels[0]; widening the next
    # entries (H/2, H/4) adds detail where eyes and lips are drawn without touching the encoder,
    # the latents or the DiT (a decoder-only stage trains it; `model.vae_widen` warm-starts it).
    vae_decoder_channels: tuple[int, ...] | None = None
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
    # Image-to-video lever (Wan2.1-I2V style), off by default: the front reference latent (the
    # front view; the global shot if the references hold no front view) is concatenated to the
    # noisy latent along channels, broadcast over every latent frame, before the backbone's patch
    # embedding (2 * latent_channels in). The reference tokens are unchanged; the refiner is not.
    reference_concat: bool = False
    # --- diffusion ---
    flow_shift: float = (
        3.0  # timestep shift of flow matching (sigma' = s*sigma / (1 + (s-1)*sigma))
    )
    teacher_steps: int = 16  # Base LPM sampling steps
    backbone_steps: int = 2  # distilled causal backbone steps per chunk
    refine_t: float = 0.25  # noise level the refiner starts from (one step)
    context_noise: float = 0.1  # noise level of the re-noised pass whose K/V are committed
    prediction: str = "x0"  # network output: "x0" (clean latent, velocity loss) or "v" (velocity)
    # --- positions and time ---
    rope_theta: float = 10_000.0  # RoPE base of every axis of the 3D (t, h, w) rotary embedding
    reference_offset: int = 1  # references sit this many latent frames after the chunk's last one
    time_freq_dim: int = 256  # sinusoidal features of the diffusion time before the time MLP
    spatial_position_embedding: bool = False  # fixed 2D sin-cos position added to every token
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
        if self.prediction not in ("x0", "v"):
            raise ValueError(f"prediction must be 'x0' or 'v', got {self.prediction!r}")
        if self.patch_size[0] != 1:
            raise ValueError("patch_size[0] must be 1: chunks and audio are per latent frame")
        if not isinstance(self.reference_concat, bool):
            raise ValueError(f"reference_concat must be a bool, got {self.reference_concat!r}")
        if (self.dim // self.n_heads) % 2:
            raise ValueError("head_dim (dim // n_heads) must be even for rotary embeddings")
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

    def with_overrides(self, **overrides: object) -> ModelConfig:
        """A copy with some fields changed (derived fields are recomputed); unknown names raise."""
        known = {f.name for f in fields(self) if f.init}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise KeyError(f"unknown ModelConfig field(s) {unknown}; known: {sorted(known)}")
        return replace(self, **overrides)  # type: ignore[arg-type]


PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(
        name="tiny",
        image_size=128,
        latent_channels=16,
        vae_channels=(16, 32, 64, 128),  # few channels at full res: decode fits the chunk budget
        n_layers=6,  # 8 layers / ffn 768 measured RTF 0.55 on 2 threads; 6 / 512 cuts DiT FLOPs ~35%
        ffn_dim=512,
        spatial_position_embedding=True,
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
    # Not a product size: the smallest shape that still exercises every path, for fast CPU tests
    # of the model, the generator and the daemon (random weights).
    "test": ModelConfig(
        name="test",
        image_size=64,
        latent_channels=4,
        vae_channels=(8, 8, 16, 16),
        history_chunks=2,
        max_references=4,
        dim=64,
        n_layers=4,
        n_heads=2,
        ffn_dim=128,
        refiner_layers=2,
        audio_dim=32,
        n_audio_tokens=2,
        text_dim=32,
        text_max_tokens=8,
        text_vocab=256,
        time_freq_dim=64,
        spatial_position_embedding=True,
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


# "test" shrunk further (~0.2M parameters, 32 px frames, a few ms per chunk): the daemon's tests
# and `lpm-npc bench serve --preset test-tiny` (random weights).
PRESETS["test-tiny"] = PRESETS["test"].with_overrides(
    name="test-tiny",
    image_size=32,
    vae_channels=(8, 8, 8, 8),
    dim=32,
    n_layers=2,
    ffn_dim=64,
    refiner_layers=1,
)

# --- training recipe (lpm_npc/train) -------------------------------------------------------------
TRAIN_STAGES: tuple[str, ...] = ("vae", "judge", "base", "causal", "ode", "rollout", "refiner")


@dataclass(frozen=True)
class StageConfig:
    """Hyper-parameters of one training stage (the loop stops at whichever budget ends first)."""

    name: str  # stage id, one of TRAIN_STAGES
    minutes: float  # wall-clock budget on the reference 2-core CPU (scaled by --minutes-scale)
    max_steps: int  # cap on optimizer steps; 0 = only the time budget stops the stage
    batch_size: int  # clips (or frames for vae/judge) per optimizer step and process
    clip_frames: int  # video frames per training clip (multiple of 4)
    lr: float  # peak AdamW learning rate
    warmup_steps: int = 50  # linear LR warm-up
    lr_decay_frac: float = 0.2  # LR decays linearly over this last fraction of the budget
    lr_final_frac: float = 0.05  # final LR as a fraction of the peak
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    ema_decay: float = 0.998  # EMA of the trained weights (what is exported)
    grad_clip: float = 1.0  # global grad-norm clip
    checkpoint_minutes: float = 5.0  # wall-clock period between resumable checkpoints

    def __post_init__(self) -> None:
        if self.name not in TRAIN_STAGES:
            raise ValueError(f"stage name {self.name!r} not in {TRAIN_STAGES}")
        if self.clip_frames % 4 != 0 or self.clip_frames <= 0:
            raise ValueError(
                f"clip_frames must be a positive multiple of 4, got {self.clip_frames}"
            )


@dataclass(frozen=True)
class TrainConfig:
    """The whole distillation recipe: the stage list plus the knobs shared by the stages."""

    preset: str  # ModelConfig preset that is trained
    stages: tuple[StageConfig, ...]  # run in this order by `lpm-npc train --all`
    data_seed: int = 1  # ClipDataset seed of the training characters (held-out seeds differ)
    n_characters: int = 256  # training identities drawn from data_seed
    judge_seed: int = 7  # seed of the judge's random-pose frame stream
    # --- flow matching ---
    t_logit_mean: float = 0.0  # logit-normal t sampling: t = sigmoid(N(mean, std))
    t_logit_std: float = 1.0
    # --- classifier-free guidance (Base LPM): independent condition dropout probabilities ---
    drop_text: float = 0.1
    drop_speak: float = 0.1
    drop_listen: float = 0.1
    drop_refs: float = 0.1
    # teacher guidance when it makes distillation targets: pred += w * (pred - pred_without_c)
    teacher_guidance: tuple[tuple[str, float], ...] = (("text", 0.5), ("speak", 0.5))
    train_references: int = 4  # references per training clip (random subset of the sheet)
    anchor_references: bool = True  # the global shot and the front view are always in the subset
    # Extra loss weight inside the renderer's mouth and eye boxes (latent cells they touch); the
    # map is renormalised to mean 1 per frame, so only the share of the loss moves to the face.
    mouth_loss_weight: float = 4.0
    eyes_loss_weight: float = 2.0
    # Stage `vae`: train only the decoder. The encoder and the latent statistics stay as they are,
    # so the latents (every latent dataset and DiT built on them) stay valid for the new decoder.
    vae_decoder_only: bool = False
    # --- distillation ---
    teacher_steps: int = 4  # teacher Euler steps for distillation targets (4 was within 1 dB of 16)
    rollout_chunks: int = 3  # chunks the student generates per self-rollout sample
    judge_size: int = 128  # judge input side, px (frames are resized to it)
    export_dtype: str = "float16"  # dtype of exported default weights: float16 | bfloat16

    @classmethod
    def from_name(cls, name: str) -> TrainConfig:
        if name not in TRAIN_PRESETS:
            raise KeyError(
                f"unknown training preset {name!r}; choose one of {sorted(TRAIN_PRESETS)}"
            )
        return TRAIN_PRESETS[name]

    def stage(self, name: str) -> StageConfig:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"unknown stage {name!r}; choose one of {[s.name for s in self.stages]}")


TRAIN_PRESETS: dict[str, TrainConfig] = {
    # ~7.3 h of stage time on the 2-core CPU (sum of minutes; the LPM stages read the latent
    # dataset, `lpm-npc data build`); `--minutes-scale 0.02` fits ~9 min on one H100.
    "tiny": TrainConfig(
        preset="tiny",
        stages=(
            StageConfig("vae", minutes=30, max_steps=0, batch_size=8, clip_frames=8, lr=1e-3),
            StageConfig("judge", minutes=20, max_steps=0, batch_size=32, clip_frames=4, lr=2e-3),
            StageConfig("base", minutes=180, max_steps=0, batch_size=8, clip_frames=16, lr=8e-4),
            StageConfig("causal", minutes=60, max_steps=0, batch_size=8, clip_frames=16, lr=4e-4),
            StageConfig("ode", minutes=45, max_steps=0, batch_size=8, clip_frames=8, lr=2e-4),
            StageConfig("rollout", minutes=40, max_steps=0, batch_size=4, clip_frames=12, lr=1e-4),
            StageConfig("refiner", minutes=25, max_steps=0, batch_size=8, clip_frames=8, lr=4e-4),
        ),
    ),
}


@dataclass(frozen=True)
class ServeConfig:
    """Limits, pacing and degradation policy of the gRPC daemon (`lpm-npc serve`)."""

    max_sessions: int = 8  # open sessions; one more -> RESOURCE_EXHAUSTED
    max_message_bytes: int = 40 * 1024 * 1024  # one gRPC message either way (a whole sheet fits)
    max_audio_chunk_samples: int = 32_000  # samples in one AudioChunk event (2 s)
    max_buffered_seconds: float = 60.0  # audio one track may hold ahead of generation
    max_prompt_chars: int = 512  # characters of a prompt
    max_lead_chunks: int = 2  # chunks generated ahead of real time at most (bounds latency)
    late_grace_chunks: float = 0.5  # an open track may be this late before its chunk is padded
    status_interval_chunks: int = 6  # a Status event every this many chunks (6 x 4 frames = 1 s)
    detached_timeout_s: float = 20.0  # a session with no Converse stream this long is closed
    keepalive_time_s: float = 5.0  # server pings an idle connection this often
    keepalive_timeout_s: float = 5.0  # no ping answer in this long -> the connection is dead
    shm_slots: int = 8  # default frame-ring slots
    max_shm_slots: int = 64  # largest frame ring a session may ask for
    max_batch: int = 0  # sessions per generator step; 0 = every session with a chunk due
    degrade_lag_chunks: float = 2.0  # a due chunk this late (in chunks) marks the daemon degraded
    recover_lag_chunks: float = 0.5  # lateness under which a degraded daemon recovers
    shed_lag_chunks: float = 1.0  # idle chunks this late are skipped (policy ANIMATE only)
    drop_lag_chunks: float = 0.0  # any chunk this late is skipped (speech too): bounds latency;
    # 0 = off (library default, so tests on a stalling machine keep every chunk); `lpm-npc serve`
    # uses SERVE_DROP_LAG_CHUNKS
    prepared_cache_size: int = 16  # prepared characters (reference K/V) kept in memory
    drain_grace_s: float = 5.0  # SIGTERM: time open streams get to finish
    measure_capacity: bool = False  # at start, measure the sessions steppable in real time and
    # admit at most that many (`lpm-npc serve` turns it on; tests keep a fixed max_sessions)
    capacity_headroom: float = 0.8  # a measured step may take this fraction of a chunk's time


SERVE_DROP_LAG_CHUNKS = 8.0  # `lpm-npc serve`: speech more than 1.33 s late is dropped


@dataclass(frozen=True)
class QualityConfig:
    """LPM-Bench-synth suite sizes and event-detector constants (`lpm_npc.bench.quality`)."""

    name: str  # suite name
    n_characters: int  # held-out characters (seeds never trained on)
    conversation_seconds: float  # babble conversation per character (lip-sync, listening)
    drift_seconds: float  # horizon of the identity-drift session
    drift_window_s: float  # PSNR is averaged over the first and the last window of this length
    text_seconds: float  # length of each prompted (text-control) clip
    text_prompts: tuple[str, ...] = ("cheerful", "sad", "angry", "surprised", "skeptical")
    gap_clips: int = 2  # clips on which student and teacher are compared
    gap_frames: int = 16  # frames per student/teacher clip (the teacher is bidirectional)
    teacher_steps: int = 0  # Euler steps of the teacher rung; 0 = ModelConfig.teacher_steps
    nod_threshold_deg: float = 3.0  # head_pitch above its running median that counts as a nod
    brow_threshold: float = 0.15  # brow_raise above its running median that counts as a raise
    baseline_s: float = 1.0  # running-median window of the event detectors
    refractory_s: float = 0.3  # minimum time between two events of one kind
    rate_floor: float = 0.05  # events/s added to both rates so the ratio stays finite
    seed: int = 0  # offset into the held-out character seeds and conversation seeds


QUALITY_SUITES: dict[str, QualityConfig] = {
    "quick": QualityConfig(
        name="quick",
        n_characters=2,
        conversation_seconds=12.0,
        drift_seconds=40.0,
        drift_window_s=8.0,
        text_seconds=3.0,
        teacher_steps=4,  # the recipe's distillation-target steps (TrainConfig.teacher_steps)
    ),
    "full": QualityConfig(
        name="full",
        n_characters=6,
        conversation_seconds=30.0,
        drift_seconds=600.0,
        drift_window_s=60.0,
        text_seconds=6.0,
        gap_clips=6,
    ),
}
