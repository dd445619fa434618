"""The search block: recipe genes reach into any recipe field (per-layer plans, pruning
ratios), and the FPGA objectives describe the design the settings ask for."""

import numpy as np
import pytest
import torch

from qdistill.errors import ConfigError
from qdistill.experiment import parse_experiment
from qdistill.experiment.stages.quantize import QuantizeStage
from qdistill.models import build_model
from qdistill.quant import QuantPlan, calibrate, quantize
from qdistill.search.config import search_of
from qdistill.search.measure import FpgaConfig, _fpga
from qdistill.search.students import candidate_student

TEACHER = {"model": {"name": "mlp", "options": {"hidden": [32]}}, "train": {"epochs": 1}}
SPACE = {"name": "flex_cnn", "layers": {"conv": {"depth": [1, 2], "widths": [4, 8]}}}


def search_config(**block):
    raw = {"name": "s", "data": {"name": "digits"}, "teacher": TEACHER, "search": block}
    config = parse_experiment(raw)
    return search_of(config, "s.yaml")


def test_genes_set_per_layer_bits_and_the_pruning_ratio_of_every_candidate():
    search = search_config(
        space=SPACE,
        recipe=[
            {"distill": {"train": {"epochs": 1}}},
            {"prune-channels": {"ratio": 0.5}},
            {"finetune": {"epochs": 1}},
            {"quantize": {"mode": "ptq", "bits": {"*": "w4a4", "@first": "w8a8"}}},
        ],
        genes={
            "quantize.bits.*": ["w2a2", "w4a4"],
            "quantize.bits.@first": ["w4a8", "w8a8"],
            "prune-channels.ratio": [0.25, 0.5],
        },
        baseline={
            "conv": [8],
            "quantize.bits.*": "w4a4",
            "quantize.bits.@first": "w8a8",
            "prune-channels.ratio": 0.5,
        },
    )
    space = search.search_space()
    rng = np.random.default_rng(0)
    for genome in rng.integers(0, np.array(space.upper_bounds) + 1, size=(20, len(space.genes))):
        candidate = space.decode(genome)
        student = candidate_student(search, candidate.model_options, candidate.recipe_values)
        (variant,) = student.variants
        prune, quantize_stage = variant.stages[1], variant.stages[-1]
        assert isinstance(quantize_stage, QuantizeStage)
        plan = quantize_stage.bits
        values = candidate.recipe_values
        assert plan == QuantPlan.from_config(
            {"*": values["quantize.bits.*"], "@first": values["quantize.bits.@first"]}
        )
        assert prune.ratio == values["prune-channels.ratio"]
        assert student.model.options == candidate.model_options


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        ({"genes": {"quantize.bits": ["w4a4", "w9a9"]}}, "w9a9"),
        ({"genes": {"distil.alpha": [0.5, 0.9]}}, "distil.alpha"),
        ({"phase1": {"distill.alpha": [0.5, 1.5]}}, "alpha"),
        ({"objectives": ["error"]}, "objectives"),
        ({"objectives": ["error", "error"]}, "objectives repeat"),
        ({"constraints": ["fpga_fps >= 1e4", "fpga_fps <= 10"]}, "contradict"),
        ({"space": "nope"}, "unknown search space 'nope'"),
        (
            {"space": {"name": "mlp", "layers": {"hidden": {"depth": [1], "widths": [4, 4]}}}},
            "distinct",
        ),
    ],
)
def test_a_search_block_that_cannot_work_is_refused_with_the_key(change, phrase):
    block = {
        "space": SPACE,
        "recipe": [{"distill": {"train": {"epochs": 1}}}, {"quantize": {"bits": "w8a8"}}],
        "genes": {"quantize.bits": ["w8a8", "w4a4"]},
        "baseline": {"conv": [8], "quantize.bits": "w8a8"},
        **change,
    }
    if "hidden" in str(change.get("space")):
        block["baseline"] = {"hidden": [4], "quantize.bits": "w8a8"}
    with pytest.raises(ConfigError) as err:
        search_config(**block)
    assert str(err.value).startswith("s.yaml: search")
    assert phrase in str(err.value)


def test_a_space_of_another_task_is_refused():
    with pytest.raises(ConfigError, match="'espcn' is a super-resolution model"):
        search_config(
            space="espcn",
            recipe=[{"distill": {"train": {"epochs": 1}}}],
            baseline={"features": [8, 8]},
        )


def test_fpga_objectives_describe_the_fastest_design_that_fits_the_board():
    model = build_model("flex_cnn", (1, 8, 8), 10, conv=[8], fc=[16]).eval()
    qmodel = quantize(model, QuantPlan.from_config("w4a4"))
    calibrate(qmodel, [torch.rand(16, 1, 8, 8)])
    on_board = _fpga(qmodel, (1, 8, 8), FpgaConfig(fit="pynq-z2"))
    slow = _fpga(qmodel, (1, 8, 8), FpgaConfig())  # PE = SIMD = 1
    assert on_board["fpga_fps"] > slow["fpga_fps"] > 0
    assert on_board["fpga_luts"] <= 53_200 and on_board["fpga_luts"] > slow["fpga_luts"]
    fast = _fpga(qmodel, (1, 8, 8), FpgaConfig(fps=2 * slow["fpga_fps"]))
    assert fast["fpga_fps"] >= 2 * slow["fpga_fps"]


def test_the_readme_search_block_is_valid():
    import re
    from pathlib import Path

    import yaml

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "search:" in b]
    raw = {"name": "r", "data": {"name": "digits"}, "teacher": TEACHER, **yaml.safe_load(block)}
    search = search_of(parse_experiment(raw), "README.md")
    assert search.objectives == ["error", "latency_ms"] and search.fpga.fit == "pynq-z2"
