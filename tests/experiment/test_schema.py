from pathlib import Path

import pytest
import yaml

from qdistill.errors import ConfigError
from qdistill.experiment import load_experiment, parse_experiment, plan_runs
from qdistill.experiment.shipped import shipped_config, shipped_configs_dir

SHIPPED = sorted(Path(__file__).resolve().parents[2].joinpath("configs").glob("*.yaml"))


def planned(path, profile=None):
    """The runs of a shipped config, checked as ``qdistill run`` (or, for a search,
    ``qdistill search``: its final runs) would check them before running."""
    from qdistill.experiment.planner import check_selections
    from qdistill.search.config import search_of
    from qdistill.search.driver import final_experiment

    config = load_experiment(path, (), profile)
    if config.search is not None:
        config = final_experiment(config, search_of(config, str(path)))
    runs = plan_runs(config)
    check_selections(config, runs)  # references, exports and hardware runs exist
    return config, runs


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_loads_and_plans(path):
    config, runs = planned(path)
    assert runs and len({r.run_id for r in runs}) == len(runs)
    assert sum(r.name == "teacher" for r in runs) == len(config.seeds)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_profile_of_a_shipped_config_plans_on_bundled_data(path):
    for profile in load_experiment(path).profiles:
        config, _ = planned(path, profile)
        assert config.data.name in ("digits", "photos"), (path.name, profile)


def test_a_profile_applies_before_set_and_unknown_ones_are_named(tmp_path, tiny_config):
    tiny_config["profiles"] = {"quick": ["seeds=[5]", "teacher.train.epochs=1"]}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    assert load_experiment(path).seeds == [0]
    quick = load_experiment(path, ("teacher.train.epochs=2",), "quick")
    assert quick.seeds == [5] and quick.teacher.train.epochs == 2
    with pytest.raises(ConfigError, match="has no profile 'slow'; its profiles are: quick"):
        load_experiment(path, (), "slow")
    with_profiles = [run.run_id for run in plan_runs(load_experiment(path))]
    del tiny_config["profiles"]
    path.write_text(yaml.safe_dump(tiny_config))
    with pytest.raises(ConfigError, match="it defines no profiles"):
        load_experiment(path, (), "quick")
    # defining profiles changes no run's identity
    assert with_profiles == [run.run_id for run in plan_runs(load_experiment(path))]


def test_references_must_name_planned_runs(tiny_config):
    from qdistill.experiment.planner import check_selections

    tiny_config["references"] = [{"source": "a paper", "values": {"ptq-w8a8": 90.0}}]
    config = parse_experiment(tiny_config)
    check_selections(config, plan_runs(config))
    tiny_config["references"][0]["values"] = {"ptq-w9a9": 90.0}
    config = parse_experiment(tiny_config)
    with pytest.raises(ConfigError, match=r"references\.0\.values names no planned run"):
        check_selections(config, plan_runs(config))


def test_shipped_configs_are_found():
    assert shipped_config("demo-digits").is_file()
    assert shipped_configs_dir().name == "configs"
    with pytest.raises(ConfigError, match=r"shipped configs: .*demo-digits"):
        shipped_config("nope")


def test_plan_expands_bits_and_seeds(tiny_config):
    tiny_config["seeds"] = [0, 1]
    runs = plan_runs(parse_experiment(tiny_config))
    names = [r.name for r in runs if r.seed == 0]
    assert names == ["teacher", "ptq-w8a8", "ptq-w2a2", "qat", "small"]
    assert len(runs) == 10


def test_plans_with_equal_widths_get_numbered_names(tiny_config):
    ema_acts = {"bits": "w2a2", "act": {"range": "ema"}}
    tiny_config["students"][0]["bits"] = ["w2a2", ema_acts]
    names = [r.name for r in plan_runs(parse_experiment(tiny_config))]
    assert names[1:3] == ["ptq-w2a2-1", "ptq-w2a2-2"]


def test_run_ids_are_stable_and_depend_on_the_recipe(tiny_config):
    ids = {r.name: r.run_id for r in plan_runs(parse_experiment(tiny_config))}
    assert ids == {r.name: r.run_id for r in plan_runs(parse_experiment(tiny_config))}
    tiny_config["students"][1]["train"]["epochs"] = 3
    changed = {r.name: r.run_id for r in plan_runs(parse_experiment(tiny_config))}
    assert changed["qat"] != ids["qat"] and changed["ptq-w8a8"] == ids["ptq-w8a8"]
    tiny_config["teacher"]["train"]["epochs"] = 4
    assert plan_runs(parse_experiment(tiny_config))[1].run_id != ids["ptq-w8a8"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c["teacher"].update(model="resnet9000"), "teacher.model.name: unknown model"),
        (lambda c: c["data"].update(name="imagenet"), "data.name: unknown dataset"),
        (lambda c: c["students"][0].update(bits="w0a8"), "students.0.bits.*bit width 0"),
        (lambda c: c["students"][0].update(bits=["w8a8", "w33a8"]), "bit width 33"),
        (lambda c: c["students"][0].update(methd="ptq"), "students.0.methd: Extra inputs"),
        (lambda c: c["students"][1].pop("bits"), "needs 'bits'"),
        (lambda c: c["students"][0].update(train={"epochs": 1}), "ptq does not train"),
        (lambda c: c["students"][1].update(name="ptq"), "unique"),
        (lambda c: c["teacher"]["train"].update(epochs=-1), "teacher.train.epochs"),
        (lambda c: c.pop("teacher"), "teacher: Field required"),
        (lambda c: c["students"][0].update(name="../../x"), "students.0.name: .*file and folder"),
        (lambda c: c["students"][0].update(name="a/b"), "students.0.name"),
        (lambda c: c.update(name="/tmp/abs"), "name: .*start with a letter or digit"),
        (lambda c: c.update(name=".hidden"), "name: .*start with a letter or digit"),
    ],
)
def test_invalid_experiments_name_the_key(tiny_config, mutate, message):
    mutate(tiny_config)
    with pytest.raises(ConfigError, match=message):
        parse_experiment(tiny_config, "x.yaml")


def test_yaml_problems(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nteacher: [unclosed\n")
    with pytest.raises(ConfigError, match="malformed YAML at line"):
        load_experiment(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_experiment(listy)
    with pytest.raises(ConfigError, match="does not exist"):
        load_experiment(tmp_path / "missing.yaml")
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("name: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_experiment(unsafe)


def test_overrides_set_nested_values(tmp_path, tiny_yaml):
    config = load_experiment(
        tiny_yaml,
        [
            "seeds=[3, 4]",
            "students.1.bits=w4a4",
            "data.options.split_seed=2",
            "teacher.train.optimizer.name=sgd",
        ],
    )
    assert config.seeds == [3, 4] and config.students[1].bits == "w4a4"
    assert config.data.options == {"split_seed": 2}
    assert config.teacher.train.optimizer.name == "sgd"
    for bad, message in [
        ("seeds", "key.subkey=value"),
        ("students.9.bits=w8", "not an index"),
        ("name.x=1", "inside a str"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_experiment(tiny_yaml, [bad])


def test_mnist_config_runs_on_files_in_the_real_format(tmp_path, fake_mnist):
    """qkd-mnist.yaml, pointed at (tiny) IDX files, runs end to end (epochs cut to 1)."""
    import yaml

    from qdistill.experiment import run_experiment

    (tmp_path / "mnist").mkdir()
    fake_mnist(tmp_path / "mnist")
    raw = yaml.safe_load(Path(SHIPPED[0]).parent.joinpath("qkd-mnist.yaml").read_text())

    cut = {"epochs": 1, "warmup_epochs": 0}

    def one_epoch(node):
        if isinstance(node, dict):
            return {
                k: cut.get(k, one_epoch(v)) if k in cut else one_epoch(v) for k, v in node.items()
            }
        return [one_epoch(v) for v in node] if isinstance(node, list) else node

    raw = one_epoch(raw)
    raw["seeds"] = [0]
    raw["data"]["options"]["root"] = str(tmp_path / "mnist")
    outcome = run_experiment(parse_experiment(raw), tmp_path / "out")
    assert outcome.executed == 17
    assert {r.data["name"] for r in outcome.records} == {"mnist"}
    assert all(r.data["input_shape"] == [1, 28, 28] for r in outcome.records)


def test_a_sweep_runs_on_cifar_files_in_the_real_format(tmp_path, fake_cifar):
    from qdistill.experiment import run_experiment

    root = fake_cifar(tmp_path / "cifar-10-batches-bin")
    config = {
        "name": "cifar",
        "seeds": [0],
        "data": {"name": "cifar10", "options": {"root": str(root)}},
        "teacher": {"model": "small_cnn", "train": {"epochs": 1}},
        "students": [
            {
                "name": "pruned",
                "recipe": [{"prune-channels": {"ratio": 0.5}}, {"quantize": {"bits": "w8a8"}}],
            },
            {
                "name": "tv",
                "method": "ptq",
                "bits": "w8a8",
                "model": "torchvision:resnet18",
                "pretrain": {"epochs": 1},
            },
        ],
    }
    outcome = run_experiment(parse_experiment(config), tmp_path / "out")
    assert outcome.executed == 3 and outcome.records[2].model == "torchvision:resnet18"
    pruned = outcome.records[1]
    assert pruned.data["input_shape"] == [3, 32, 32]
    assert pruned.stages[1].macs < pruned.stages[0].macs
