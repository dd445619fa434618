import pytest
import torch

from qdistill.errors import ConfigError
from qdistill.models import build_model
from qdistill.quant import layer_specs, quantize
from qdistill.quant.sensitivity import (
    allocate_bits,
    budget_bytes_of,
    measure_sensitivity,
    plan_size_bytes,
    sensitivity_units,
)


@pytest.fixture
def tiny_sr():
    torch.manual_seed(0)
    return build_model("espcn", (1, 12, 12), 1, features=(8, 4))


def _fidelity_score(reference_model, x):
    reference = reference_model(x).detach()

    def score(model):
        model.eval()
        with torch.no_grad():
            return -float((model(x) - reference).pow(2).mean().add(1e-12).log10())

    return score


def test_one_score_per_stage_most_sensitive_first(tiny_sr):
    x = torch.rand(8, 1, 12, 12)
    calibration = [torch.rand(8, 1, 12, 12) for _ in range(2)]
    baseline, scores = measure_sensitivity(
        tiny_sr, "w2a2", _fidelity_score(tiny_sr, x), calibration
    )
    assert [s.unit for s in sorted(scores, key=lambda s: s.unit)] == sorted(tiny_sr.stages)
    assert baseline == pytest.approx(12.0)  # identical outputs: the 1e-12 floor
    assert all(s.drop > 0 for s in scores)
    assert [s.drop for s in scores] == sorted((s.drop for s in scores), reverse=True)
    assert {s.unit: s.params for s in scores}["body"] == 8 * 4 * 9 + 4
    layers = sensitivity_units(tiny_sr, "layers")
    assert layers == ["feature_extraction.0", "body.0", "upsampling.0"]


def test_attention_and_recurrent_projections_are_probed_layer_by_layer():
    from sequence_models import SequenceClassifier

    torch.manual_seed(0)
    model = SequenceClassifier().eval()
    x = torch.randn(16, 5, 6)
    units = sensitivity_units(model, "layers")
    assert units[:5] == ["embed", "attention.q_proj", "attention.k_proj", "attention.v_proj",
                         "attention.out_proj"]  # fmt: skip
    assert "gru.cells.l0.hh" in units and len(units) == 12
    _, scores = measure_sensitivity(
        model, "w2a2", _fidelity_score(model, x), [x], granularity="layers"
    )
    by_unit = {s.unit: s for s in scores}
    assert (
        by_unit["attention.q_proj"].params == 16 * 16 + 16 and by_unit["attention.q_proj"].drop > 0
    )
    assert isinstance(model.attention, torch.nn.MultiheadAttention)  # the model is untouched


def test_allocation_respects_the_budget_and_ranks_by_drop(tiny_sr):
    from qdistill.quant.sensitivity import Sensitivity

    fake = [
        Sensitivity("upsampling", 1, 40, 0.0, 3.0),
        Sensitivity("body", 1, 292, 0.0, 2.0),
        Sensitivity("feature_extraction", 1, 208, 0.0, -1.0),
    ]
    budget = budget_bytes_of(tiny_sr, "w6a6")
    plan = allocate_bits(tiny_sr, {"w4a4": fake}, ["w4a4", "w8a8"], budget)
    assert plan_size_bytes(tiny_sr, plan) <= budget
    assert plan["upsampling"] == "w8a8"
    assert "feature_extraction" not in plan  # a drop <= 0 is never upgraded
    specs = layer_specs(quantize(tiny_sr, plan))
    assert specs["upsampling.0"].weight.bits == 8 and specs["feature_extraction.0"].weight.bits == 4
    everything = allocate_bits(
        tiny_sr, {"w4a4": fake}, ["w4a4", "w8a8"], budget_bytes_of(tiny_sr, "w8a8")
    )
    assert everything == {"*": "w4a4", "upsampling": "w8a8", "body": "w8a8"}
    with pytest.raises(ConfigError, match="exceeds the budget"):
        allocate_bits(tiny_sr, {"w4a4": fake}, ["w4a4", "w8a8"], 10)


def measured(up: float, body: float, fe: float) -> list:
    """Made-up drops of tiny_sr's three stages (parameter counts as in the model)."""
    from qdistill.quant.sensitivity import Sensitivity

    return [
        Sensitivity("upsampling", 1, 40, 0.0, up),
        Sensitivity("body", 1, 292, 0.0, body),
        Sensitivity("feature_extraction", 1, 208, 0.0, fe),
    ]


def test_allocation_over_several_levels(tiny_sr):
    levels = ["w2a2", "w4a4", "w8a8"]
    drops = {"w2a2": measured(3.0, 2.0, 1.0), "w4a4": measured(0.5, 0.2, 0.1)}
    budget = budget_bytes_of(tiny_sr, "w4a4")
    plan = allocate_bits(tiny_sr, drops, levels, budget)
    # 2 -> 4 bits recovers far more per byte than 4 -> 8 anywhere: uniform 4 bits
    assert plan == {"*": "w2a2", "upsampling": "w4a4", "body": "w4a4", "feature_extraction": "w4a4"}
    roomier = allocate_bits(tiny_sr, drops, levels, budget_bytes_of(tiny_sr, "w6a6"))
    # then 8 bits by gain per byte: upsampling (0.5 for 72 bytes) fits the 626-byte budget
    # (468 + 72); feature extraction (+100) and body (+144) no longer do
    assert roomier == {
        "*": "w2a2",
        "upsampling": "w8a8",
        "body": "w4a4",
        "feature_extraction": "w4a4",
    }
    assert plan_size_bytes(tiny_sr, roomier) <= budget_bytes_of(tiny_sr, "w6a6")
    two_levels = allocate_bits(tiny_sr, {"w2a2": drops["w2a2"]}, ["w2a2", "w8a8"], budget)
    assert "body" not in two_levels  # 8 bits for the largest layer never fits this budget


def test_allocation_plans_carry_full_specs(tiny_sr):
    from qdistill.quant.sensitivity import Sensitivity

    learned = {"bits": "w2a2", "weight": {"range": "learned"}, "act": {"range": "learned"}}
    fake = [
        Sensitivity("upsampling", 1, 40, 0.0, 3.0),
        Sensitivity("body", 1, 292, 0.0, 2.0),
        Sensitivity("feature_extraction", 1, 208, 0.0, 1.0),
    ]
    budget = budget_bytes_of(tiny_sr, "w4a4")
    plan = allocate_bits(tiny_sr, {"w2a2": fake}, ["w2a2", "w8a8"], budget, {"w2a2": learned})
    assert plan["*"] == learned and plan["upsampling"] == "w8a8"
    specs = layer_specs(quantize(tiny_sr, plan))
    assert specs["body.0"].weight.range == "learned" and specs["upsampling.0"].act.bits == 8


def test_leftover_budget_goes_to_the_most_sensitive_unit(tiny_sr):
    levels = ["w2a2", "w3a3", "w4a4", "w8a8"]
    # noisy post-training drops: the body measures worse at 3 and 4 bits than at 2
    drops = {
        "w2a2": measured(3.0, 2.0, 1.0),
        "w3a3": measured(0.5, 2.5, 0.5),
        "w4a4": measured(0.4, 2.6, 0.4),
        "w8a8": measured(0.0, 0.0, 0.0),
    }
    budget = 540  # 72 bytes more than the greedy plan; 8 bits for the body would cost 216
    greedy = allocate_bits(tiny_sr, drops, levels, budget)
    assert "body" not in greedy  # no measured gain, so the greedy pass leaves it at 2 bits
    filled = allocate_bits(tiny_sr, drops, levels, budget, spend_leftover=True)
    assert filled["body"] == "w4a4"  # 2 -> 3 -> 4 bits, 36 bytes each
    assert {k: v for k, v in filled.items() if k != "body"} == greedy
    assert plan_size_bytes(tiny_sr, greedy) < plan_size_bytes(tiny_sr, filled) <= budget
