"""Search spaces: genomes decode to valid candidates and encode back; every registered
space's candidates build and run on their task's inputs."""

import numpy as np
import pytest
import torch

from qdistill.errors import ConfigError, UnknownNameError
from qdistill.models import build_model
from qdistill.search.space import SPACES, SearchSpace, architecture_space

FLEX = architecture_space(
    {
        "name": "flex_cnn",
        "layers": {
            "conv": {"depth": [1, 2, 3], "widths": [4, 8, 16]},
            "fc": {"depth": [0, 1], "widths": [16, 32]},
        },
    }
)
SPACE = SearchSpace(FLEX, {"quantize.bits": ("w8a8", "w4a4", "w2a2")})
INPUTS = {
    "flex_cnn": ((1, 8, 8), 10),
    "mlp": ((1, 8, 8), 10),
    "espcn": ((3, 12, 12), 3),
    "cifar_resnet": ((3, 16, 16), 10),
}


def random_genomes(space: SearchSpace, count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, np.array(space.upper_bounds) + 1, size=(count, len(space.genes)))


def test_genes_are_a_depth_and_a_width_per_possible_layer_then_the_recipe_genes():
    names = [gene.name for gene in SPACE.genes]
    assert names == [
        "conv.depth",
        "conv.0",
        "conv.1",
        "conv.2",
        "fc.depth",
        "fc.0",
        "quantize.bits",
    ]
    assert SPACE.upper_bounds == [2, 2, 2, 2, 1, 1, 2]
    assert SPACE.size == 3 * 3**3 * 2 * 2 * 3


def test_decode_then_encode_is_the_same_candidate():
    for genome in random_genomes(SPACE, 200):
        candidate = SPACE.decode(genome)
        again = SPACE.decode(SPACE.encode(candidate.model_options, candidate.recipe_values))
        assert again.key == candidate.key
        assert len(candidate.model_options["conv"]) in (1, 2, 3)
        assert all(w in (4, 8, 16) for w in candidate.model_options["conv"])


def test_inactive_widths_do_not_make_another_candidate():
    one = SPACE.decode([0, 1, 0, 0, 0, 0, 0])  # one conv layer of 8: conv.1/conv.2 unused
    other = SPACE.decode([0, 1, 2, 1, 0, 1, 0])
    assert one.model_options == {"conv": [8], "fc": []}
    assert one.key == other.key
    assert SPACE.decode([1, 1, 2, 1, 0, 1, 0]).key != one.key


def test_scalar_choices_and_single_values_decode_without_taking_a_gene():
    space = SearchSpace(SPACES.get("cifar_resnet"), {"quantize.bits": ("w4a4",)})
    assert [gene.name for gene in space.genes] == [
        *(f"widths.{index}" for index in range(4)),
        "depth",
    ]
    candidate = space.decode([0, 1, 2, 3, 2])
    assert candidate.model_options == {"depth": 20, "widths": [8, 16, 32, 64]}
    assert candidate.recipe_values == {"quantize.bits": "w4a4"}
    assert space.encode(candidate.model_options, candidate.recipe_values) == [0, 1, 2, 3, 2]


def test_a_genome_outside_the_bounds_is_refused():
    with pytest.raises(ValueError, match="outside"):
        SPACE.decode([3, 0, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="7 genes"):
        SPACE.decode([0, 0])


@pytest.mark.parametrize(
    ("options", "genes", "phrase"),
    [
        ({"conv": [8, 8, 8, 8], "fc": []}, {"quantize.bits": "w8a8"}, "4 layers"),
        ({"conv": [7], "fc": []}, {"quantize.bits": "w8a8"}, "[7] are not among"),
        ({"conv": [8], "fc": []}, {"quantize.bits": "w3a3"}, "'w3a3' is not among"),
        ({"conv": [8], "fc": []}, {}, "missing ['quantize.bits']"),
    ],
)
def test_a_baseline_outside_the_space_says_what_lies_outside(options, genes, phrase):
    with pytest.raises(ConfigError, match=r"search\.baseline") as err:
        SPACE.encode(options, genes)
    assert phrase in str(err.value)


def test_an_unknown_space_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="flex_cnn"):
        architecture_space("flexcnn")


@pytest.mark.parametrize("name", SPACES.names())
def test_every_sampled_candidate_of_every_registered_space_builds_and_runs(name):
    space = SearchSpace(SPACES.get(name), {})
    shape, outputs = INPUTS[name]
    seen = set()
    for genome in random_genomes(space, 40, seed=1):
        candidate = space.decode(genome)
        if candidate.key in seen:
            continue
        seen.add(candidate.key)
        model = build_model(space.architecture.model, shape, outputs, **candidate.model_options)
        with torch.no_grad():
            out = model.eval()(torch.rand(2, *shape))
        assert out.shape[0] == 2 and torch.isfinite(out).all()
    assert len(seen) > 3
