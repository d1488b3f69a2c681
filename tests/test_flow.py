"""Rectified-flow schedule: shifted levels, noising, and the x0-form Euler step."""

import pytest
import torch

from lpm_npc.model.flow import add_noise, euler_step_x0, sampling_timesteps, shift_timesteps


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 4, 2, 5, 5, generator=g)
    noise = torch.randn(3, 4, 2, 5, 5, generator=g)
    return x0, noise


def test_noising_endpoints(pair):
    x0, noise = pair
    torch.testing.assert_close(add_noise(x0, noise, 0.0), x0)
    torch.testing.assert_close(add_noise(x0, noise, 1.0), noise)
    torch.testing.assert_close(add_noise(x0, noise, 0.25), 0.75 * x0 + 0.25 * noise)


def test_x0_euler_steps_along_the_straight_path_are_exact(pair):
    """With the true x0, every step lands on the path at the next level, and the last on x0."""
    x0, noise = pair
    x = noise
    levels = sampling_timesteps(3, 3.0).tolist()
    for level, next_level in zip(levels[:-1], levels[1:]):
        torch.testing.assert_close(x, add_noise(x0, noise, level))
        x = euler_step_x0(x, x0, level, next_level)
    torch.testing.assert_close(x, x0)


def test_shift():
    t = torch.linspace(0, 1, 11)
    s = shift_timesteps(t, 3.0)
    assert s[0].item() == 0.0 and s[-1].item() == pytest.approx(1.0)
    assert (s[1:] > s[:-1]).all() and (s[1:-1] > t[1:-1]).all()  # more time at high noise
    torch.testing.assert_close(shift_timesteps(t, 1.0), t)
    assert shift_timesteps(0.5, 3.0) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="shift"):
        shift_timesteps(t, 0.0)


def test_sampling_timesteps():
    levels = sampling_timesteps(4, 3.0)
    assert levels.shape == (5,) and levels.dtype == torch.float32
    assert levels[0].item() == 1.0 and levels[-1].item() == 0.0
    assert (levels[1:] < levels[:-1]).all()
    assert levels[2].item() == pytest.approx(0.75)  # shift(0.5, 3)
    with pytest.raises(ValueError, match="n_steps"):
        sampling_timesteps(0)
