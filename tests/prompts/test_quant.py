import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from prompts.quant import QuantizedTensor, fake_quantize, quantize_tensor

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, width=32)


@given(arrays(np.float32, st.tuples(st.integers(1, 12), st.integers(1, 12)), elements=finite))
@settings(max_examples=200, deadline=None)
def test_quantize_error_is_within_half_a_step(values):
    q = quantize_tensor(values)
    restored = q.dequantize()
    assert restored.dtype == np.float32
    assert np.all(np.abs(restored - values) <= q.scale * 0.5 + 1e-6 * (1 + np.abs(values)))


def test_range_always_includes_zero():
    q = quantize_tensor(np.array([[2.0, 3.0]], dtype=np.float32))
    assert q.zero_point == 0.0
    assert q.dequantize()[0, 0] == pytest.approx(2.0, abs=q.scale / 2)


def test_all_zero_tensor_round_trips_exactly():
    q = quantize_tensor(np.zeros((3, 4), dtype=np.float32))
    assert np.array_equal(q.dequantize(), np.zeros((3, 4), dtype=np.float32))


def test_dequantize_matches_torch_formula_bit_for_bit():
    q = quantize_tensor(np.random.RandomState(1).randn(77, 8).astype(np.float32))
    expected = torch.tensor(q.scale, dtype=torch.float32) * (
        torch.from_numpy(q.data).float() - torch.tensor(q.zero_point, dtype=torch.float32)
    )
    assert torch.equal(torch.from_numpy(q.dequantize()), expected)


def test_fake_quantize_forward_equals_quantize_and_gradient_is_identity():
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(3), requires_grad=True)
    y = fake_quantize(x)
    assert torch.equal(y.detach(), torch.from_numpy(quantize_tensor(x).dequantize()))
    (y * torch.arange(128.0).reshape(8, 16)).sum().backward()
    assert torch.equal(x.grad, torch.arange(128.0).reshape(8, 16))


@pytest.mark.parametrize(
    ("data", "scale", "zero", "message"),
    [
        (np.zeros((2, 2), np.float32), 1.0, 0.0, "uint8"),
        (np.zeros((2, 2), np.uint8), 0.0, 0.0, "positive"),
        (np.zeros((2, 2), np.uint8), float("nan"), 0.0, "positive"),
        (np.zeros((2, 2), np.uint8), 1.0, 300.0, "zero point"),
    ],
)
def test_invalid_parameters_are_refused(data, scale, zero, message):
    with pytest.raises(ValueError, match=message):
        QuantizedTensor(data, scale, zero)


def test_non_finite_input_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        quantize_tensor(np.array([1.0, np.inf], dtype=np.float32))
