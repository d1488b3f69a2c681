"""Rectified-flow identities, shifted schedules and deterministic samplers."""

import pytest
import torch

from lpm_npc.model.flow import (
    add_noise,
    euler_step,
    noise_from_velocity,
    randn,
    renoise,
    sample_euler,
    sample_few_step,
    sample_timesteps,
    sampling_timesteps,
    shift_timesteps,
    timesteps_for_steps,
    velocity_from_x0,
    velocity_target,
    x0_from_velocity,
)


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 4, 2, 5, 5, generator=g)
    noise = torch.randn(3, 4, 2, 5, 5, generator=g)
    return x0, noise


def test_x0_and_noise_recovered_from_true_velocity(pair):
    x0, noise = pair
    t = torch.tensor([0.1, 0.5, 0.93])
    x_t = add_noise(x0, noise, t)
    v = velocity_target(x0, noise)
    torch.testing.assert_close(x0_from_velocity(x_t, v, t), x0)
    torch.testing.assert_close(noise_from_velocity(x_t, v, t), noise)
    torch.testing.assert_close(velocity_from_x0(x_t, x0, t), v, atol=1e-4, rtol=1e-4)


def test_endpoints_and_per_frame_t(pair):
    x0, noise = pair
    torch.testing.assert_close(add_noise(x0, noise, 0.0), x0)
    torch.testing.assert_close(add_noise(x0, noise, 1.0), noise)
    t = torch.tensor([[0.0, 1.0]]).expand(3, 2)  # (B, T): per latent frame (diffusion forcing)
    x_t = add_noise(x0, noise, t)
    torch.testing.assert_close(x_t[:, :, 0], x0[:, :, 0])
    torch.testing.assert_close(x_t[:, :, 1], noise[:, :, 1])


def test_one_euler_step_along_the_straight_path_is_exact(pair):
    x0, noise = pair
    v = velocity_target(x0, noise)
    torch.testing.assert_close(euler_step(noise, v, 1.0, 0.0), x0)
    x_half = add_noise(x0, noise, 0.7)
    torch.testing.assert_close(euler_step(x_half, v, 0.7, 0.2), add_noise(x0, noise, 0.2))


def test_shift():
    t = torch.linspace(0, 1, 11)
    s = shift_timesteps(t, 3.0)
    assert s[0].item() == 0.0 and s[-1].item() == pytest.approx(1.0)
    assert (s[1:] > s[:-1]).all() and (s[1:-1] > t[1:-1]).all()  # more time at high noise
    torch.testing.assert_close(shift_timesteps(t, 1.0), t)
    assert shift_timesteps(0.5, 3.0) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="shift"):
        shift_timesteps(t, 0.0)


def test_timesteps_for_steps():
    levels = timesteps_for_steps(4, 3.0)
    assert levels.shape == (5,) and levels.dtype == torch.float32
    assert levels[0].item() == 1.0 and levels[-1].item() == 0.0
    assert (levels[1:] < levels[:-1]).all()
    assert levels[2].item() == pytest.approx(0.75)  # shift(0.5, 3)
    torch.testing.assert_close(sampling_timesteps(4, 3.0), levels)
    with pytest.raises(ValueError, match="n_steps"):
        timesteps_for_steps(0)


def test_sample_timesteps_is_deterministic_and_in_range():
    a = sample_timesteps(1000, torch.Generator().manual_seed(1))
    b = sample_timesteps(1000, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    assert ((a > 0) & (a < 1)).all()
    assert abs(a.mean().item() - 0.5) < 0.03  # logit-normal(0, 1) is symmetric about 0.5
    u = sample_timesteps(1000, torch.Generator().manual_seed(1), "uniform", shift=3.0)
    assert u.mean().item() > 0.6  # shifted towards noise
    with pytest.raises(ValueError, match="dist"):
        sample_timesteps(4, None, "beta")


def test_per_row_generators_make_rows_independent_of_the_batch():
    gens = [torch.Generator().manual_seed(s) for s in (7, 8)]
    both = randn((2, 3, 4), gens)
    alone = randn((1, 3, 4), [torch.Generator().manual_seed(8)])
    torch.testing.assert_close(both[1:], alone)
    with pytest.raises(ValueError, match="generator"):
        randn((3, 4), gens)


def test_renoise_is_deterministic(pair):
    x0, _ = pair
    a = renoise(x0, 0.4, torch.Generator().manual_seed(3))
    b = renoise(x0, 0.4, torch.Generator().manual_seed(3))
    c = renoise(x0, 0.4, torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b)
    assert (a - c).abs().max() > 0.1
    fresh = (a - 0.6 * x0) / 0.4
    assert abs(fresh.std().item() - 1.0) < 0.15  # the added noise is standard normal


def test_samplers_with_oracle_networks_return_x0(pair):
    x0, noise = pair
    levels = timesteps_for_steps(3, 3.0)
    out = sample_euler(lambda x, t: velocity_target(x0, noise), noise, levels)
    torch.testing.assert_close(out, x0)
    calls = []

    def oracle_x0(x, t):
        calls.append(t[0].item())
        return x0

    out = sample_few_step(oracle_x0, noise, levels, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x0)
    assert calls == pytest.approx(levels[:-1].tolist())
