"""The CPU (composed) and fused (ATen) fake-quantize paths must agree bit for bit."""

import pytest
import torch

from qdistill.quant.kernels import binary_fake_quantize, fake_quantize


def _both(x, scale, zero_point, q_min, q_max, axis, covers_range=False):
    results = []
    for fused in (True, False):
        leaf = x.clone().requires_grad_()
        out = fake_quantize(leaf, scale, zero_point, q_min, q_max, axis, fused=fused,
                            covers_range=covers_range)  # fmt: skip
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        results.append((out.detach(), leaf.grad))
    return results


@pytest.mark.parametrize("q_range", [(0, 15), (-8, 7), (-7, 7), (0, 3), (-32768, 32767)])
def test_per_tensor_paths_agree(q_range):
    x = torch.randn(8, 3, 5, 5) * 4
    x[0, 0, 0, :2] = torch.tensor([1e5, -1e5])  # clipped at every width
    scale = torch.tensor([0.173])
    zero_point = torch.tensor([max(q_range[0], min(2, q_range[1]))], dtype=torch.int32)
    (fused, fused_grad), (composed, composed_grad) = _both(x, scale, zero_point, *q_range, None)
    assert torch.equal(fused, composed)
    assert torch.equal(fused_grad, composed_grad)
    assert (composed_grad == 0).any()  # some values were clipped


@pytest.mark.parametrize("axis", [0, 1])
def test_per_channel_paths_agree(axis):
    x = torch.randn(6, 4, 3, 3)
    channels = x.shape[axis]
    scale = torch.rand(channels) * 0.2 + 0.05
    zero_point = torch.arange(channels, dtype=torch.int32) - 1
    (fused, fused_grad), (composed, composed_grad) = _both(x, scale, zero_point, -8, 7, axis)
    assert torch.equal(fused, composed)
    assert torch.equal(fused_grad, composed_grad)


def test_symmetric_without_zero_point_and_unclipped_path_agree():
    w = torch.randn(16, 32)
    scale = w.abs().amax(1) / 7
    reference = _both(w, scale, torch.zeros(16, dtype=torch.int32), -7, 7, 0)[0]
    for covers in (False, True):
        (_, _), (out, grad) = _both(w, scale, None, -7, 7, 0, covers_range=covers)
        assert torch.equal(out, reference[0])
        assert torch.equal(grad, reference[1])


def test_binary_scale_gradient():
    x = torch.tensor([[0.5, -2.0], [0.2, -0.1]], requires_grad=True)
    scale = torch.tensor([1.0, 0.5], requires_grad=True)
    out = binary_fake_quantize(x, scale, 0)
    assert out.tolist() == [[1.0, -1.0], [0.5, -0.5]]
    out.sum().backward()
    assert scale.grad.tolist() == [0.0, 0.0]  # +1 and -1 per row cancel
    assert x.grad.tolist() == [[1.0, 0.0], [1.0, 1.0]]
