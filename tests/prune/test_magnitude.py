import pytest
import torch
from torch import nn

from qdistill.errors import ConfigError
from qdistill.prune import apply_masks, keep_pruned, magnitude_masks, weight_sparsity
from qdistill.quant import calibrate, quantize
from qdistill.train import TrainConfig, fit


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def test_global_masks_keep_exactly_the_largest_weights():
    model = _model()
    model[2].weight.data = model[2].weight.data.abs() + 1  # all larger than the first layer's
    masks = magnitude_masks(model, 0.5)
    pruned = {name: int((~mask).sum()) for name, mask in masks.items()}
    assert sum(pruned.values()) == (8 * 16 + 16 * 4) // 2
    assert pruned["2"] == 0  # ranked together: the large layer loses nothing
    every = torch.cat([m.weight.detach().abs().flatten() for m in (model[0], model[2])])
    kept = torch.cat([masks["0"].flatten(), masks["2"].flatten()])
    assert every[kept].min() >= every[~kept].max()


def test_local_masks_prune_each_layer_alike_and_ignore_patterns():
    model = _model()
    masks = magnitude_masks(model, 0.25, scope="local")
    assert {n: int((~m).sum()) for n, m in masks.items()} == {"0": 32, "2": 16}
    assert list(magnitude_masks(model, 0.25, ignore=["@last"])) == ["0"]
    with pytest.raises(ConfigError, match="no conv/linear layer is left"):
        magnitude_masks(model, 0.5, ignore=["*"])
    with pytest.raises(ConfigError, match="between 0 and 1"):
        magnitude_masks(model, 1.0)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_pruned_weights_stay_zero_while_training_and_after_quantizing(optimizer):
    model = _model()
    masks = magnitude_masks(model, 0.5)
    apply_masks(model, masks)
    assert weight_sparsity(model) == pytest.approx(0.5, abs=0.01)
    x, y = torch.randn(64, 8), torch.randint(0, 4, (64,))
    train = TrainConfig(epochs=3, optimizer={"name": optimizer, "weight_decay": 0.01})
    hooks = {"after_backward": [keep_pruned(masks)]}
    fit(model, [(x, y)], train, hooks=hooks, quiet=True)
    assert weight_sparsity(model) == pytest.approx(0.5, abs=0.01)
    quantized = quantize(model, "w4a4")  # same layer names: the hook still finds them
    calibrate(quantized, [x])
    fit(quantized, [(x, y)], train, hooks=hooks, quiet=True)
    assert weight_sparsity(quantized) == pytest.approx(0.5, abs=0.01)
    fit(model, [(x, y)], train, quiet=True)  # without the hook the zeros move again
    assert weight_sparsity(model) < 0.1
