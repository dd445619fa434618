import math

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from qdistill.data import Batches
from qdistill.errors import CheckpointError, DivergenceError, NonFiniteLossError
from qdistill.metrics import evaluate_classifier, top1_accuracy
from qdistill.train import (
    ScheduleConfig,
    TrainConfig,
    fit,
    load_checkpoint,
    load_state_into,
    save_checkpoint,
)
from qdistill.train.optim import build_optimizer, lr_factor


def _mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def test_fit_learns_digits_and_restores_best_epoch(digits, tmp_path):
    model = _mlp()
    config = TrainConfig(epochs=4, optimizer={"lr": 3e-3})
    batches = Batches(digits.train, 64, shuffle=True, generator=torch.Generator().manual_seed(0))

    def evaluate(m):
        return {"val_acc": evaluate_classifier(m, Batches(digits.val, 256))["acc"]}

    result = fit(model, batches, config, evaluate=evaluate, checkpoint_dir=tmp_path, quiet=True)
    assert len(result.history) == 4
    assert result.best_score == max(r["val_acc"] for r in result.history)
    assert evaluate(model)["val_acc"] == result.best_score  # best weights restored
    assert result.best_score > 85
    _, meta = load_checkpoint(tmp_path / "best.safetensors")
    assert meta["epoch"] == result.best_epoch
    assert (tmp_path / "last.safetensors").is_file()


def test_nan_loss_stops_with_clear_error_and_keeps_earlier_checkpoints(digits, tmp_path):
    model = _mlp()
    calls = {"n": 0}

    def loss_fn(m, batch):
        calls["n"] += 1
        x, y = batch
        loss = nn.functional.cross_entropy(m(x), y)
        return loss * math.nan if calls["n"] > 25 else loss

    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 2.*learning rate"):
        fit(
            model,
            Batches(digits.train, 64),
            TrainConfig(epochs=3),
            loss_fn=loss_fn,
            evaluate=lambda m: {"val_acc": 1.0},
            checkpoint_dir=tmp_path,
            quiet=True,
        )
    _, meta = load_checkpoint(tmp_path / "last.safetensors")
    assert meta["epoch"] == 1


def test_a_finite_exploding_loss_is_divergence_and_a_rising_one_is_not(digits):
    def scaled(factors):
        steps = iter(factors)

        def loss_fn(m, batch):
            x, y = batch
            return nn.functional.cross_entropy(m(x), y) * next(steps)

        return loss_fn

    batches, config = Batches(digits.train, 64), TrainConfig(epochs=1)
    with pytest.raises(DivergenceError, match=r"loss exploded to .* at epoch 1 step 3"):
        fit(_mlp(), batches, config, loss_fn=scaled([1, 10, 1e4] + [1] * 30), quiet=True)
    # a loss that starts tiny (a fine-tuned model) may grow to ordinary values
    fit(_mlp(), batches, config, loss_fn=scaled([1e-4] + [100] * 30), quiet=True)


def test_gradient_accumulation_matches_one_large_batch():
    torch.manual_seed(0)
    x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))
    a, b = _mlp(), _mlp()
    b.load_state_dict(a.state_dict())
    opt = {"name": "sgd", "lr": 0.1, "momentum": 0.0}
    sched = {"name": "constant"}
    fit(a, [(x, y)], TrainConfig(epochs=1, optimizer=opt, schedule=sched), quiet=True)
    halves = [(x[:16], y[:16]), (x[16:], y[16:])]
    fit(
        b,
        halves,
        TrainConfig(epochs=1, optimizer=opt, schedule=sched, grad_accumulation=2),
        quiet=True,
    )
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-6)


def test_schedules():
    cosine = ScheduleConfig(name="cosine", warmup_epochs=2)
    assert lr_factor(cosine, 10, 0.0) == pytest.approx(0.01)
    assert lr_factor(cosine, 10, 1.0) == pytest.approx(0.5)
    assert lr_factor(cosine, 10, 2.0) == pytest.approx(1.0)
    assert lr_factor(cosine, 10, 6.0) == pytest.approx(0.5)
    assert lr_factor(ScheduleConfig(name="step", step_size=3, gamma=0.5), 10, 6.5) == 0.25
    multistep = ScheduleConfig(name="multistep", milestones=(2, 5), gamma=0.2)
    assert lr_factor(multistep, 10, 4.9) == pytest.approx(0.2)
    assert lr_factor(multistep, 10, 5.0) == pytest.approx(0.04)
    assert lr_factor(ScheduleConfig(name="constant"), 10, 9.0) == 1.0


def test_optimizers_and_no_decay_on_quantizer_scales():
    from qdistill.quant import quantize

    model = quantize(_mlp(), "w2a2")
    sgd = build_optimizer(
        model, TrainConfig(optimizer={"name": "sgd", "lr": 0.1, "weight_decay": 5e-4}).optimizer
    )
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"]
    assert [g["weight_decay"] for g in sgd.param_groups] == [5e-4, 0.0]
    assert isinstance(
        build_optimizer(model, TrainConfig(optimizer={"name": "adamw"}).optimizer),
        torch.optim.AdamW,
    )


def test_train_config_validation():
    with pytest.raises(ValidationError):
        TrainConfig(optimizer={"name": "lion"})
    with pytest.raises(ValidationError):
        TrainConfig(epochs=2, schedule={"warmup_epochs": 3})
    with pytest.raises(ValidationError):
        TrainConfig(optimizer={"lr": 0})


def test_checkpoint_round_trip_and_corruption(tmp_path):
    model = _mlp()
    path = save_checkpoint(tmp_path / "m.safetensors", model, {"note": "hi"})
    state, meta = load_checkpoint(path)
    assert meta == {"note": "hi"}
    fresh = _mlp()
    load_state_into(fresh, state, str(path))
    assert all(
        torch.equal(a, b) for a, b in zip(fresh.parameters(), model.parameters(), strict=True)
    )
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.safetensors")
    with pytest.raises(CheckpointError, match="does not fit"):
        load_state_into(nn.Linear(3, 3), state, "x")


def test_torch_files_are_loaded_weights_only(tmp_path):
    good = tmp_path / "w.pt"
    torch.save(_mlp().state_dict(), good)
    state, _ = load_checkpoint(good)
    assert "1.weight" in state

    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    evil = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, evil)
    with pytest.raises(CheckpointError, match="weights-only"):
        load_checkpoint(evil)


def test_accuracy():
    logits = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert top1_accuracy(logits, torch.tensor([1, 0, 0])) == pytest.approx(200 / 3)


def test_also_train_modules_are_optimised_and_kept_in_train_mode():
    torch.manual_seed(0)
    model, extra = _mlp(), nn.Linear(10, 10)
    x, y = torch.randn(16, 64), torch.randint(0, 10, (16,))
    before = extra.weight.detach().clone()

    def loss_fn(m, batch):
        assert extra.training
        return nn.functional.cross_entropy(extra(m(batch[0])), batch[1])

    extra.eval()
    fit(model, [(x, y)], TrainConfig(epochs=1), loss_fn=loss_fn, also_train=[extra], quiet=True)
    assert not torch.equal(before, extra.weight)


def test_bf16_autocast_trains_a_float_model(digits):
    model = _mlp()
    config = TrainConfig(epochs=3, optimizer={"lr": 3e-3}, precision="bf16")
    batches = Batches(digits.train, 64, shuffle=True, generator=torch.Generator().manual_seed(0))
    fit(model, batches, config, quiet=True)
    assert next(model.parameters()).dtype == torch.float32  # weights stay fp32
    assert evaluate_classifier(model, Batches(digits.val, 256))["acc"] > 85


def test_fp16_scales_the_loss_and_steps_on_true_gradients(digits):
    model = _mlp()
    config = TrainConfig(epochs=2, optimizer={"lr": 3e-3}, precision="fp16", grad_clip=1.0)
    batches = Batches(digits.train, 64, shuffle=True, generator=torch.Generator().manual_seed(0))
    result = fit(model, batches, config, quiet=True)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert evaluate_classifier(model, Batches(digits.val, 256))["acc"] > 70


def test_mixed_precision_is_refused_for_fake_quantized_models(digits):
    from qdistill.errors import ConfigError
    from qdistill.quant import quantize

    model = quantize(_mlp(), "w4a4")
    config = TrainConfig(epochs=1, precision="bf16")
    with pytest.raises(ConfigError, match="precision bf16 is for float training"):
        fit(model, Batches(digits.train, 64), config, quiet=True, desc="qat")
