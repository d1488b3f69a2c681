"""Procedural characters and the bust renderer: identities, determinism, sizes, poses, face motion."""

import dataclasses
import itertools

import numpy as np
import pytest

from lpm_npc.synth import character as ch
from lpm_npc.synth.character import CharacterSpec
from lpm_npc.synth.motion import EXPRESSIONS, Motion
from lpm_npc.synth.render import (
    MAX_SIZE,
    MIN_SIZE,
    render_frames,
    render_still,
    sample_motion,
)

CATEGORICAL = {
    "face_shape": ch.FACE_SHAPES,
    "hair_style": ch.HAIR_STYLES,
    "eye_shape": ch.EYE_SHAPES,
    "brows": ch.BROW_STYLES,
    "nose": ch.NOSE_STYLES,
    "lips": ch.LIP_STYLES,
    "ears": ch.EAR_STYLES,
    "clothing_style": ch.CLOTHING_STYLES,
    "glasses": ch.GLASSES,
    "hat": ch.HATS,
    "earrings": ch.EARRINGS,
    "background": ch.BACKGROUNDS,
}
# A character whose accessories do not hide the face (no hat, no sunglasses).
PLAIN = dataclasses.replace(CharacterSpec.from_seed(5), glasses="none", hat="none")


def _motion(n: int = 1, **channels) -> Motion:
    m = Motion.neutral(n)
    for name, value in channels.items():
        getattr(m, name)[:] = value
    return m


def _frame(spec: CharacterSpec, size: int = 128, **channels) -> np.ndarray:
    return render_frames(spec, _motion(1, **channels), size)[0].astype(np.int32)


def _diff_box(a: np.ndarray, b: np.ndarray, threshold: int = 12):
    """Rows and columns (fractions of the side) where two frames differ noticeably."""
    changed = np.abs(a - b).max(-1) > threshold
    if not changed.any():
        return None
    rows, cols = np.nonzero(changed)
    side = a.shape[0]
    return rows.min() / side, rows.max() / side, cols.min() / side, cols.max() / side


def test_spec_is_deterministic_and_validated():
    assert CharacterSpec.from_seed(42) == CharacterSpec.from_seed(42)
    assert hash(CharacterSpec.from_seed(42)) == hash(CharacterSpec.from_seed(42))
    with pytest.raises(ValueError, match="seed"):
        CharacterSpec.from_seed(-1)
    with pytest.raises(ValueError, match="hair_style"):
        dataclasses.replace(PLAIN, hair_style="mullet")


def test_at_least_twelve_independent_attributes_vary():
    specs = [CharacterSpec.from_seed(s) for s in range(60)]
    assert len(specs[0].identity_attributes()) >= 12
    for name, allowed in CATEGORICAL.items():
        values = {getattr(s, name) for s in specs}
        assert values <= set(allowed)
        assert len(values) >= min(3, len(allowed)), name
    # Independence: no categorical attribute is a function of another one.
    for a, b in itertools.combinations(CATEGORICAL, 2):
        pairs = {(getattr(s, a), getattr(s, b)) for s in specs}
        assert len(pairs) > max(len({p[0] for p in pairs}), len({p[1] for p in pairs})), (a, b)
    # Two seeds differ in at least 12 attributes (colours and proportions are continuous).
    for s0, s1 in zip(specs[::2], specs[1::2]):
        a, b = s0.identity_attributes(), s1.identity_attributes()
        assert sum(a[k] != b[k] for k in a) >= 12
    assert len({s.hair_style for s in specs}) >= 5
    assert {"glasses", "hat", "earrings"} <= {a.split(":")[0] for s in specs for a in s.accessories}


def test_same_seed_same_pixels_and_different_seeds_differ():
    motion = sample_motion(6, seed=1)
    a = render_frames(CharacterSpec.from_seed(7), motion, 64)
    b = render_frames(CharacterSpec.from_seed(7), motion, 64)
    assert a.dtype == np.uint8 and a.shape == (6, 64, 64, 3)
    assert np.array_equal(a, b)
    others = [render_frames(CharacterSpec.from_seed(s), motion, 64) for s in (8, 9)]
    for other in others:
        assert np.abs(a.astype(int) - other).mean() > 10


def test_batching_does_not_change_frames():
    spec, motion = CharacterSpec.from_seed(2), sample_motion(20, seed=2)
    together = render_frames(spec, motion, 64).astype(int)
    alone = np.concatenate([render_frames(spec, motion.slice(i, i + 1), 64) for i in range(20)])
    assert np.abs(together - alone).max() <= 1  # float rounding only


@pytest.mark.parametrize("size", [MIN_SIZE, 97, 128, 200, MAX_SIZE])
def test_every_size_renders(size):
    img = render_still(PLAIN, size)
    assert img.shape == (size, size, 3) and img.dtype == np.uint8
    assert img.std() > 20  # a real picture, not a flat fill


@pytest.mark.parametrize("size", [MIN_SIZE - 1, MAX_SIZE + 1, 0])
def test_bad_size_names_the_field(size):
    with pytest.raises(ValueError, match=r"size.*64 \.\. 512"):
        render_still(PLAIN, size)


def test_yaw_range_and_back_view():
    views = {yaw: render_still(PLAIN, 96, yaw=yaw).astype(int) for yaw in (-90, -45, 0, 45, 90)}
    back = render_still(PLAIN, 96, back=True).astype(int)
    for (y0, a), (y1, b) in itertools.combinations(views.items(), 2):
        assert np.abs(a - b).mean() > 2, (y0, y1)
    for a in views.values():
        assert np.abs(a - back).mean() > 2

    # Turning right moves the face (iris and sclera colours) to the viewer's right.
    def face_x(img):
        bright = (img.min(-1) > 215) & (img.max(-1) - img.min(-1) < 25)
        _, cols = np.nonzero(bright[: int(0.6 * img.shape[0])])
        return cols.mean() if cols.size else None

    front_x, right_x = face_x(views[0]), face_x(views[45])
    assert front_x is not None and right_x is not None and right_x > front_x + 3
    assert face_x(back) is None  # no eye whites from behind
    with pytest.raises(ValueError, match="yaw"):
        render_still(PLAIN, 64, yaw=120)


def test_pitch_roll_gaze_brows_sway_breath_each_show():
    base = _frame(PLAIN)
    for channel, value in [
        ("head_pitch", 20.0),
        ("head_roll", 20.0),
        ("gaze_x", 1.0),
        ("gaze_y", -1.0),
        ("brow_raise", 1.0),
        ("brow_furrow", 1.0),
        ("torso_sway", 1.0),
        ("breath", 1.0),
        ("lip_round", 1.0),
        ("lip_spread", 1.0),
    ]:
        assert np.abs(_frame(PLAIN, **{channel: value}) - base).max() > 40, channel


@pytest.mark.parametrize("hat", ch.HATS)
def test_brow_raise_shows_through_every_fringe_and_hat(hat):
    """Brows are drawn over a fringe and a hat (with a rim of forehead), so a brow raise is visible
    on every hair style, the ones whose fringe reaches below the brows included."""
    from lpm_npc.judge.visibility import VISIBLE_MIN_PX, channel_visibility

    motion = sample_motion(8, seed=1)
    for style in ch.HAIR_STYLES:
        spec = dataclasses.replace(PLAIN, hair_style=style, hat=hat)
        shown = channel_visibility(spec, motion, "brow_raise", 64, frames=2)
        assert shown > 2 * VISIBLE_MIN_PX, (style, hat, shown)


def test_blink_closes_each_eye():
    open_ = _frame(PLAIN, size=160)
    left = _frame(PLAIN, size=160, blink_left=1.0)
    both = _frame(PLAIN, size=160, blink_left=1.0, blink_right=1.0)
    box = _diff_box(open_, left)
    assert box is not None
    r0, r1, c0, c1 = box
    assert 0.2 < r0 and r1 < 0.55  # only the eye band changes
    assert c0 > 0.5  # the character's left eye is on the viewer's right

    def whites(img):
        band = img[int(0.2 * 160) : int(0.55 * 160)]
        return int(((band.min(-1) > 200) & (band.max(-1) - band.min(-1) < 30)).sum())

    assert whites(open_) > 20
    assert whites(both) <= whites(open_) * 0.1


def test_jaw_open_shows_teeth_and_tongue():
    size = 192
    closed = _frame(PLAIN, size=size)
    opened = _frame(PLAIN, size=size, jaw_open=1.0)
    box = _diff_box(closed, opened)
    assert box is not None
    r0, r1, c0, c1 = box
    assert r0 > 0.4 and r1 < 0.85 and c0 > 0.3 and c1 < 0.7  # the lower face only
    rows = slice(int(r0 * size), int(r1 * size) + 1)
    cols = slice(int(c0 * size), int(c1 * size) + 1)
    region = opened[rows, cols]
    r, g, b = region[..., 0], region[..., 1], region[..., 2]
    teeth = (region.min(-1) > 185) & (region.max(-1) - region.min(-1) < 40)
    tongue = (r > 120) & (r - g > 45) & (r - b > 35)
    cavity = region.max(-1) < 90
    assert teeth.sum() >= 4 and tongue.sum() >= 4 and cavity.sum() >= 4
    half = _frame(PLAIN, size=size, jaw_open=0.5)
    # The opening grows with jaw_open.
    assert np.abs(half - closed).sum() < np.abs(opened - closed).sum()


@pytest.mark.parametrize("expression", EXPRESSIONS[1:])
def test_expressions_show_and_blend(expression):
    column = EXPRESSIONS.index(expression)
    neutral = render_frames(PLAIN, _motion(), 128)[0].astype(int)
    weights = []
    for w in (0.5, 1.0):
        m = _motion()
        m.expression[:, 0] = 1.0 - w
        m.expression[:, column] = w
        weights.append(render_frames(PLAIN, m, 128)[0].astype(int))
    half, full = weights
    d_half, d_full = np.abs(half - neutral).sum(), np.abs(full - neutral).sum()
    assert d_full > 2000
    assert 0 < d_half < d_full
    assert np.abs(full - half).sum() > 0


def test_motion_is_clamped_to_its_ranges():
    assert np.array_equal(_frame(PLAIN, head_yaw=250.0), _frame(PLAIN, head_yaw=90.0))
    assert np.array_equal(_frame(PLAIN, jaw_open=3.0), _frame(PLAIN, jaw_open=1.0))


def test_accessories_and_styles_render():
    base = dataclasses.replace(PLAIN, glasses="none", hat="none", earrings="none")
    plain = render_still(base, 96).astype(int)
    for change in [
        {"glasses": "round"},
        {"glasses": "sun"},
        {"hat": "beanie"},
        {"hat": "brim"},
        {"hat": "cap"},
        {"earrings": "hoop"},
    ]:
        img = render_still(dataclasses.replace(base, **change), 96).astype(int)
        assert np.abs(img - plain).max() > 60, change
    seen = set()
    for style in ch.HAIR_STYLES:
        img = render_still(dataclasses.replace(base, hair_style=style), 64)
        seen.add(img.tobytes())
    assert len(seen) == len(ch.HAIR_STYLES)
