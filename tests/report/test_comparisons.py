import pytest

from qdistill.report import summarize
from qdistill.report.comparisons import (
    alpha_temperature_grids,
    bits_order,
    paired_effects,
    pivot_by_bits,
    unpaired_comparisons,
)


@pytest.fixture
def record(record_of):
    def build(
        name, group, bits, seed, acc, compare_to=None, alpha=None, temperature=None, method="qat"
    ):
        return record_of(
            name=name,
            group=group,
            method=method,
            bits=bits,
            seed=seed,
            metrics={"test_acc": acc},
            compare_to=compare_to,
            alpha=alpha,
            temperature=temperature,
        )

    return build


def test_paired_effect_by_hand(record):
    records = [record("base-w2a2", "base", "w2a2", s, a) for s, a in enumerate([90, 92, 94])]
    records += [
        record("kd-w2a2", "kd", "w2a2", s, a, compare_to="base")
        for s, a in enumerate([91, 94, 94.5])
    ]  # differences 1, 2, 0.5: mean 7/6, sample sd 0.7638, se 0.441
    (effect,) = paired_effects(records, "test_acc")
    assert effect.difference.mean == pytest.approx(7 / 6)
    assert effect.difference.se == pytest.approx(0.76376 / 3**0.5, rel=1e-4)
    assert effect.difference.n == 3 and effect.baseline_stat.mean == pytest.approx(92)


def test_unpaired_runs_are_left_out_and_named(record):
    records = [record("base", "base", "w2a2", 0, 90), record("kd", "kd", "w4a4", 0, 95, "base")]
    assert paired_effects(records, "test_acc") == []
    assert unpaired_comparisons(records, []) == [("kd", "base")]
    records.append(record("kd2", "kd2", "w2a2", 0, 91, compare_to="base"))
    effects = paired_effects(records, "test_acc")
    assert [e.student for e in effects] == ["kd2"]
    assert unpaired_comparisons(records, effects) == [("kd", "base")]


def test_pivot_orders_bits_and_skips_kd_sweeps(record):
    records = [record(f"q-{b}", "q", b, 0, acc) for b, acc in [("w2a2", 80), ("w8a8", 95)]]
    records += [record(f"p-{b}", "p", b, 0, acc, method="ptq") for b, acc in [("w8a8", 94)]]
    records += [record(f"g-a{a}", "g", "w8a8", 0, 1.0, alpha=a, temperature=8) for a in (0.1, 0.2)]
    headers, table = pivot_by_bits(summarize(records), "test_acc")
    assert headers == ["Student", "Method", "w8a8", "w2a2"]
    assert table == [["q", "qat", "95.00", "80.00"], ["p", "ptq", "94.00", ""]]
    assert sorted(["w2a2", "float", "w4a8", "w8a8"], key=bits_order) == [
        "float",
        "w8a8",
        "w4a8",
        "w2a2",
    ]


def test_alpha_temperature_grid(record):
    records = [
        record(f"g-a{a}-T{t}", "g", "float", 0, 10 * a + t, alpha=a, temperature=t, method="float")
        for a in (0.2, 0.5)
        for t in (3, 8)
    ]
    (grid,) = alpha_temperature_grids(summarize(records), "test_acc")
    assert grid.alphas == [0.2, 0.5] and grid.temperatures == [3, 8]
    assert grid.values[1][0].mean == pytest.approx(8.0)


def test_pivot_keeps_plans_with_the_same_label_apart(record):
    records = [record("q-w4a4", "q", "w4a4", 0, 70)]
    records += [record(f"q-alloc-{i}", "q", "alloc", 0, acc) for i, acc in [(2, 80), (3, 75)]]
    records += [record("p-w4a4", "p", "w4a4", 0, 60, method="ptq")]
    headers, table = pivot_by_bits(summarize(records), "test_acc")
    assert headers == ["Student", "Method", "w4a4", "alloc-2", "alloc-3"]
    assert table[0] == ["q", "qat", "70.00", "80.00", "75.00"]


def test_a_swept_recipe_is_named_by_its_stages(record_of):
    def run(group, importance, ratio, acc):
        return record_of(
            name=f"{group}-importance-{importance}-ratio{ratio}",
            group=group,
            method="recipe",
            recipe=f"prune-channels({importance},{ratio}) > finetune",
            bits="float",
            metrics={"test_acc": acc},
        )

    records = [run(g, i, r, 90.0) for g in ("ft", "kd") for i in ("l1", "lamp") for r in (0.5,)]
    headers, table = pivot_by_bits(summarize(records), "test_acc")
    assert headers[2:] == ["importance-l1-ratio0.5", "importance-lamp-ratio0.5"]
    assert [row[:2] for row in table] == [
        ["ft", "prune-channels > finetune"],
        ["kd", "prune-channels > finetune"],
    ]


def test_compression_counts_pruning_against_the_start_model(record_of):
    from qdistill.experiment.record import StageRecord

    start = StageRecord("start", "teacher", 0.0, {}, 4000, {})
    pruned = record_of(name="p", size_bytes=1000, float32_bytes=1000, stages=(start,))
    old = record_of(name="o", size_bytes=1000, float32_bytes=4000)
    rows = {row.name: row for row in summarize([pruned, old])}
    assert rows["p"].compression == pytest.approx(4.0) and rows["o"].compression == 4.0


def test_a_paired_difference_is_read_against_twice_its_standard_error():
    from qdistill.report.comparison_sections import reading
    from qdistill.report.summary import Stat

    assert reading(Stat(1.0, 0.4, 5)) == "gain (> 2 SE)"
    assert reading(Stat(-1.0, 0.4, 5)) == "loss (> 2 SE)"
    assert reading(Stat(0.8, 0.4, 5)) == "within noise (|Δ| ≤ 2 SE)"
    assert reading(Stat(-0.09, 1.35, 3)) == "within noise (|Δ| ≤ 2 SE)"
    assert reading(Stat(2.0, None, 1)) == "one pair: no SE, no verdict"


def test_published_numbers_sit_beside_ours_with_the_time_per_epoch(record_of):
    from qdistill.experiment.record import StageRecord
    from qdistill.experiment.schema import ReferenceBlock
    from qdistill.report.references import references_section
    from qdistill.tasks import Metric

    history = {"training": {"phases": {"self_study": {"history": [{"epoch_s": 2.0}] * 3}}}}
    stage = StageRecord("quantize", "quantize(qkd)", 6.0, {}, 100, history)
    records = [
        record_of(name="ss-w8a8", group="ss", seed=seed, metrics={"test_acc": acc}, stages=(stage,))
        for seed, acc in ((0, 91.0), (1, 93.0))
    ]
    block = ReferenceBlock(source="Kim et al. 2019", values={"ss-w8a8": 92.13, "qkd": 92.5})
    lines = references_section(records, [block], Metric("test_acc", "Test acc. (%)"))
    text = "\n".join(lines)
    assert "## Published reference numbers" in text and "Kim et al. 2019" in text
    assert "| ss-w8a8 | 92.13 | 92.00 ± 1.00 | -0.13 | 2.0 |" in text
    assert "| qkd | 92.50 | not run yet |" in text
    assert references_section(records, [], Metric("test_acc", "x")) == []


def test_published_numbers_on_other_data_are_shown_without_a_difference(record_of):
    from qdistill.experiment.schema import ReferenceBlock
    from qdistill.report.references import references_section
    from qdistill.tasks import Metric

    records = [record_of(name="kd", metrics={"test_acc": 80.5}, data={"name": "digits"})]
    block = ReferenceBlock(source="CRD", data="cifar100", values={"kd": 73.33})
    text = "\n".join(references_section(records, [block], Metric("test_acc", "Test acc.")))
    assert "These runs used digits, not cifar100" in text
    assert "| kd | 73.33 | 80.50 |  |  |" in text
