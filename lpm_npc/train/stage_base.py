"""Stage `base`: train the Base LPM teacher — bidirectional attention over a whole clip.

Student: the `LPM` from the `vae` stage; trainable: backbone, audio encoder, text encoder (the VAE
is frozen, the refiner is trained later). Per clip one logit-normal t for every latent frame, x0
prediction with the velocity loss (`flow_loss`), and classifier-free-guidance dropout of text,
speak, listen and references independently per clip (`TrainConfig.drop_*`).

Also holds what the causal stages share: `LPMObjective` (frozen VAE, trainable parts, inputs).
"""

from __future__ import annotations

import torch

from lpm_npc.model.backbone import to_x0
from lpm_npc.model.lpm import LPM
from lpm_npc.train.batch import (
    ReferenceLatentCache,
    TrainBatch,
    collate_clips,
    lpm_dataset,
    model_inputs,
)
from lpm_npc.train.flow_loss import add_noise, sample_t, velocity_error
from lpm_npc.train.loop import StageObjective
from lpm_npc.train.stage import StageContext, StageSetup
from lpm_npc.train.stage_vae import freeze_except

DENOISER_PARTS = ("backbone", "audio_encoder", "text_encoder")


class LPMObjective(StageObjective):
    """An LPM student with only `trainable` parts learning; the VAE stays in eval mode."""

    def __init__(self, model: LPM, train_cfg, trainable: tuple[str, ...]) -> None:
        super().__init__()
        self.student = model
        self.train_cfg = train_cfg
        self.reference_cache = ReferenceLatentCache()
        freeze_except(model, *trainable)

    def train(self, mode: bool = True):
        super().train(mode)
        self.student.vae.eval()  # frozen: never in training mode
        return self

    def predict_x0(self, x_t, t, inputs, mode: str):
        prediction = self.student.backbone.forward_train(
            x_t, t, inputs.refs, inputs.cond, mode=mode
        )
        return to_x0(prediction, x_t, t, self.student.cfg.prediction)


class BaseObjective(LPMObjective):
    def __init__(self, model: LPM, train_cfg) -> None:
        super().__init__(model, train_cfg, DENOISER_PARTS)

    def forward(self, batch: TrainBatch) -> tuple[torch.Tensor, dict[str, float]]:
        inputs = model_inputs(
            self.student, batch, self.train_cfg, drop=True, cache=self.reference_cache
        )
        x0 = inputs.x0
        b, _, n_frames = x0.shape[:3]
        tc = self.train_cfg
        t = sample_t((b, 1), tc.t_logit_mean, tc.t_logit_std, x0.device).expand(b, n_frames)
        x_t = add_noise(x0, torch.randn_like(x0), t)
        x0_hat = self.predict_x0(x_t, t, inputs, "bidirectional")
        loss = velocity_error(x0_hat, x0, t, inputs.region_weight).mean()
        return loss, {"x0_mse": float(((x0_hat - x0) ** 2).mean().detach())}


def load_student(ctx: StageContext) -> LPM:
    model = LPM(ctx.model)
    if ctx.init_state is not None:
        model.load_state_dict(ctx.init_state)
    return model


def build(ctx: StageContext) -> StageSetup:
    objective = BaseObjective(load_student(ctx), ctx.train)
    dataset = lpm_dataset(ctx, ctx.stage.clip_frames, objective.student)
    return StageSetup(objective=objective, dataset=dataset, collate=collate_clips)
