import pytest

from qdistill.errors import ConfigError
from qdistill.quant import QuantPlan, parse_layer_spec


def test_short_forms():
    spec = parse_layer_spec("w4a8")
    assert spec.weight.bits == 4 and spec.act.bits == 8
    assert spec.short == "w4a8"
    assert parse_layer_spec("w8").act is None
    assert parse_layer_spec("float") is None
    assert parse_layer_spec("W16A16").weight.bits == 16


def test_defaults_by_bit_width():
    assert parse_layer_spec("w8a8").weight.range == "minmax"
    assert parse_layer_spec("w8a8").act.range == "ema"
    low = parse_layer_spec("w2a2")
    assert low.weight.range == "learned" and low.act.range == "learned"
    assert low.weight.narrow_range and low.weight.granularity == "per_channel"


def test_dict_form_overrides_defaults():
    spec = parse_layer_spec({"bits": "w4a4", "weight": {"granularity": "per_tensor"}, "act": 8})
    assert spec.weight.granularity == "per_tensor" and spec.weight.bits == 4
    assert spec.act.bits == 8
    only_weight = parse_layer_spec({"weight": {"bits": 3, "range": "mse"}})
    assert only_weight.weight.range == "mse" and only_weight.act is None


@pytest.mark.parametrize("text", ["w0a4", "w33a4", "w4a9", "w4a0", "4bit", "", "wxa4"])
def test_bad_short_forms_are_config_errors(text):
    with pytest.raises(ConfigError):
        parse_layer_spec(text)


def test_bad_widths_name_the_supported_range():
    with pytest.raises(ConfigError, match="use 1-8 or 16"):
        parse_layer_spec("w33a4")


@pytest.mark.parametrize(
    "bad",
    [
        {"bits": "w4a4", "weight": {"rnage": "mse"}},
        {"bits": "w4a4", "act": {"granularity": "per_channel"}},
        {"bits": "w4a4", "weight": {"range": "ema"}},
        {"bits": "w4a4", "weight": {"signed": False}},
    ],
)
def test_invalid_dict_specs(bad):
    with pytest.raises(ConfigError):
        parse_layer_spec(bad)


LAYERS = ["features.0", "features.1", "features.10", "head.fc", "classifier"]


def test_most_specific_pattern_wins():
    plan = QuantPlan.from_config(
        {"*": "w4a4", "features.*": "w2a2", "features.1": "w8a8", "classifier": "float"}
    )
    got = {name: (spec.short if spec else None) for name, spec in plan.assign(LAYERS).items()}
    assert got == {
        "features.0": "w2a2",
        "features.1": "w8a8",  # exact name beats the glob
        "features.10": "w2a2",  # 'features.1' is not a prefix match of 'features.10'
        "head.fc": "w4a4",
        "classifier": None,
    }


def test_prefix_patterns_cover_submodules():
    plan = QuantPlan.from_config({"head": "w8a8"})
    assignment = plan.assign(LAYERS)
    assert assignment["head.fc"].short == "w8a8"
    assert assignment["features.0"] is None  # unmatched layers stay float


def test_first_and_last_selectors():
    plan = QuantPlan.from_config({"*": "w2a2", "@first": "w8a8", "@last": "w8a8"})
    assignment = plan.assign(LAYERS)
    assert assignment["features.0"].short == "w8a8"
    assert assignment["classifier"].short == "w8a8"
    assert assignment["features.1"].short == "w2a2"


def test_later_rule_wins_a_tie():
    plan = QuantPlan.from_config({"features.?": "w4a4", "feature?.0": "w8a8"})
    assert plan.assign(LAYERS)["features.0"].short == "w8a8"


def test_pattern_matching_nothing_is_an_error():
    with pytest.raises(ConfigError, match="match no quantizable layer"):
        QuantPlan.from_config({"*": "w4a4", "haed": "w8a8"}).assign(LAYERS)


def test_unknown_selector_and_bad_types():
    with pytest.raises(ConfigError, match="selector"):
        QuantPlan.from_config({"@middle": "w4a4"})
    with pytest.raises(ConfigError):
        QuantPlan.from_config(42)
    with pytest.raises(ConfigError, match="plan entry 'x'"):
        QuantPlan.from_config({"x": "w0a0"})


def test_plan_round_trips_through_config():
    plan = QuantPlan.from_config(
        {"*": "w4a4", "@last": {"bits": "w8a8", "act": {"range": "minmax"}}}
    )
    again = QuantPlan.from_config(plan.to_config())
    assert again.assign(LAYERS) == plan.assign(LAYERS)
    assert QuantPlan.from_config("w4a4").short == "w4a4"
    assert plan.short == "w4a4+last=w8a8"
    labels = {"body.*": "w8a8", "features.0": None}
    assert (
        QuantPlan.from_config({"*": "w2a2", **labels}).short == "w2a2+body.-=w8a8+features.0=float"
    )
    assert QuantPlan.from_config({"body": "w8a8"}).short == "mixed"


def test_symmetric_activation_override_takes_its_sign_from_the_data():
    # the asymmetric default is unsigned; asking for symmetric must not keep that range,
    # or a standardised (signed) input loses its negative half
    spec = parse_layer_spec({"bits": "w4a4", "act": {"symmetric": True}})
    assert spec.act.symmetric and spec.act.signed is None
    assert (
        parse_layer_spec({"bits": "w4a4", "act": {"symmetric": True, "signed": False}}).act.signed
        is False
    )
    assert parse_layer_spec({"bits": "w4a4", "act": {"range": "minmax"}}).act.signed is False
