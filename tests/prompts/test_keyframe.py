import math

import numpy as np
import pytest

from prompts.keyframe import (
    compose_context,
    interpolate_context,
    interpolation_weight,
    keyframe_positions,
)
from tests.prompts.factories import random_keyframe


def reference_context(a, b, frame):
    """Independent float64 computation of the design's interpolation rule."""
    s, n = frame - a.frame, b.frame - a.frame
    ua, va = (x.astype(np.float64) for x in a.factors())
    ub, vb = (x.astype(np.float64) for x in b.factors())
    u = (1 - s / n) * ua + (s / n) * ub
    v = (1 - s / n) * va + (s / n) * vb
    return u @ v / math.sqrt(a.rank)


@pytest.mark.parametrize("frame", [0, 1, 5, 9, 10])
def test_interpolation_matches_float64_reference(frame):
    a, b = random_keyframe(0, rank=8), random_keyframe(10, rank=8)
    got = interpolate_context(a, b, frame)
    expected = reference_context(a, b, frame)
    assert got.shape == (77, 1024) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_short_final_interval_uses_its_own_length():
    a, b = random_keyframe(140, rank=4), random_keyframe(143, rank=4)
    np.testing.assert_allclose(
        interpolate_context(a, b, 141), reference_context(a, b, 141), rtol=1e-5, atol=1e-4
    )


def test_compose_divides_by_sqrt_rank():
    u, v = np.ones((77, 4), np.float32), np.ones((4, 1024), np.float32)
    assert compose_context(u, v)[0, 0] == pytest.approx(4 / 2)


def test_positions_and_weights():
    assert keyframe_positions(141, 10) == list(range(0, 141, 10))
    assert keyframe_positions(61, 8)[-2:] == [56, 60]
    assert keyframe_positions(1, 5) == [0]
    assert interpolation_weight(13, 10, 20) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        interpolation_weight(25, 10, 20)
    with pytest.raises(ValueError):
        keyframe_positions(10, 0)
