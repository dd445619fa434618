import math

import pytest
import torch
import torch.nn.functional as F

from qdistill.distill import (
    attention_map,
    attention_transfer_loss,
    charbonnier_loss,
    feature_mse_loss,
    kd_kl_loss,
    pixel_kd_loss,
)
from qdistill.errors import ShapeMismatchError

S = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
T = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
Y = torch.tensor([0, 1])


def _kl_by_hand(temperature):
    total = 0.0
    for s_row, t_row in zip(S.tolist(), T.tolist(), strict=True):
        ps = [math.exp(v / temperature) for v in s_row]
        pt = [math.exp(v / temperature) for v in t_row]
        ps = [p / sum(ps) for p in ps]
        pt = [p / sum(pt) for p in pt]
        total += sum(b * math.log(b / a) for a, b in zip(ps, pt, strict=True))
    return total / len(S)


def _ce_by_hand():
    total = 0.0
    for row, label in zip(S.tolist(), Y.tolist(), strict=True):
        total += -row[label] + math.log(sum(math.exp(v) for v in row))
    return total / len(S)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_kd_kl_by_hand(alpha, temperature):
    expected = alpha * temperature**2 * _kl_by_hand(temperature) + (1 - alpha) * _ce_by_hand()
    assert kd_kl_loss(S, T, Y, alpha, temperature).item() == pytest.approx(expected, rel=1e-5)


def test_kd_alpha_edges():
    assert kd_kl_loss(S, T, Y, 0.0, 8.0).item() == pytest.approx(F.cross_entropy(S, Y).item())
    assert kd_kl_loss(S, T, None, 1.0, 8.0).item() == pytest.approx(64 * _kl_by_hand(8.0))
    assert kd_kl_loss(T, T, None, 1.0, 3.0).item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="needs labels"):
        kd_kl_loss(S, T, None, 0.5, 8.0)


def test_t_squared_keeps_gradient_scale():
    # d/ds of T^2 KL at high T tends to (s - t - mean(s - t)) / C: independent of T
    s = torch.tensor([[0.5, -0.5, 0.0]], requires_grad=True)
    t = torch.tensor([[1.0, -1.0, 0.0]])
    limit = torch.tensor([[-0.5, 0.5, 0.0]]) / 3
    for temperature in (10.0, 20.0):
        s.grad = None
        kd_kl_loss(s, t, None, 1.0, temperature).backward()
        assert torch.allclose(s.grad, limit, atol=0.01)


def test_output_shape_mismatch_names_both_shapes():
    with pytest.raises(
        ShapeMismatchError,
        match=r"student output shape \(2, 2\).*teacher output "
        r"shape \(2, 3\)",
    ):
        kd_kl_loss(S, torch.zeros(2, 3), Y, 0.5, 4.0)
    with pytest.raises(ShapeMismatchError, match=r"\(1, 3, 8, 8\).*\(1, 3, 4, 4\)"):
        pixel_kd_loss(
            torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 4, 4), 0.5
        )


def test_pixel_kd_by_hand():
    student = torch.tensor([[1.0, 2.0]])
    target = torch.tensor([[0.0, 2.0]])
    teacher = torch.tensor([[1.0, 4.0]])
    # l2: L(s, target) = (1 + 0) / 2 = 0.5; L(s, teacher) = (0 + 4) / 2 = 2
    assert pixel_kd_loss(student, target, teacher, 0.2, "l2").item() == pytest.approx(
        0.8 * 0.5 + 0.2 * 2.0
    )
    # l1: 0.5 and 1.0
    assert pixel_kd_loss(student, target, teacher, 0.2, "l1").item() == pytest.approx(
        0.8 * 0.5 + 0.2 * 1.0
    )
    assert pixel_kd_loss(student, target, None, 0.0, "l1").item() == pytest.approx(0.5)
    assert pixel_kd_loss(student, target, teacher, 1.0, "l2").item() == pytest.approx(2.0)


def test_charbonnier_by_hand():
    x, y = torch.tensor([0.0, 3.0]), torch.tensor([0.0, 0.0])
    expected = (math.sqrt(1e-6) + math.sqrt(9 + 1e-6)) / 2
    assert charbonnier_loss(x, y).item() == pytest.approx(expected)


def test_attention_map_by_hand_and_resizing():
    f = torch.zeros(1, 2, 2, 2)
    f[0, 0, 0, 0] = 3.0
    f[0, 1, 0, 0] = 4.0
    f[0, 0, 1, 1] = 5.0  # mean_c f^2 = [[12.5, 0], [0, 12.5]]
    expected = torch.tensor([[1.0, 0.0, 0.0, 1.0]]) / math.sqrt(2)
    assert torch.allclose(attention_map(f), expected)
    assert attention_transfer_loss(f, f).item() == pytest.approx(0.0)
    big = F.interpolate(f, scale_factor=2, mode="nearest")
    assert attention_transfer_loss(big, f).item() < 0.05  # resized to the teacher's 2x2
    different = torch.zeros(1, 2, 2, 2)
    different[0, 0, 0, 1] = 1.0  # all attention on one other cell
    # normalised maps [a, 0, 0, a] vs [0, 1, 0, 0]: squared diffs a^2 + 1 + a^2 over 4 cells
    assert attention_transfer_loss(different, f).item() == pytest.approx((0.5 + 1 + 0.5) / 4)


def test_feature_mse_resizes_student():
    student = torch.ones(2, 3, 8, 8)
    teacher = torch.ones(2, 3, 4, 4) * 2
    assert feature_mse_loss(student, teacher).item() == pytest.approx(1.0)
    with pytest.raises(ShapeMismatchError):
        feature_mse_loss(torch.ones(2, 4, 4, 4), teacher)


def test_module_wrappers_match_functions_and_are_registered():
    from qdistill.distill import OUTPUT_LOSSES, KDLoss, PixelKDLoss

    assert OUTPUT_LOSSES.names() == ["kd_kl", "pixel_kd"]
    assert KDLoss(0.3, 4.0)(S, T, Y).item() == pytest.approx(kd_kl_loss(S, T, Y, 0.3, 4.0).item())
    img = torch.rand(1, 3, 4, 4)
    target, teacher = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
    assert PixelKDLoss(0.2, "l1")(img, teacher, target).item() == pytest.approx(
        pixel_kd_loss(img, target, teacher, 0.2, "l1").item()
    )
