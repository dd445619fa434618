import numpy as np
import pytest
import torch

from qdistill.errors import ConfigError
from qdistill.export import export_model
from qdistill.models import build_model, load_model, save_model
from qdistill.quant import model_size, quantize
from qdistill.quant.half import HalfPlan, half_precision, kept_modules


def _espcn() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("espcn", (1, 16, 16), 1, features=(16, 8)).eval()


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / torch.mean((a.detach() - b.detach()) ** 2)))


def test_half_model_runs_in_float16_except_kept_modules():
    model = _espcn()
    half = half_precision(model, HalfPlan(keep_fp32=("upsampling",)))
    assert half.feature_extraction[0].weight.dtype == torch.float16
    assert half.body[0].bias.dtype == torch.float16
    assert half.upsampling[0].weight.dtype == torch.float32
    assert model.body[0].weight.dtype == torch.float32  # the original is untouched
    seen = {}
    half.body.register_forward_hook(lambda m, i, o: seen.update(body=o.dtype))
    half.upsampling[0].register_forward_pre_hook(lambda m, i: seen.update(up=i[0].dtype))
    x = torch.rand(2, 1, 16, 16)
    out = half(x)
    assert out.dtype == torch.float32 and out.shape == (2, 1, 32, 32)
    assert seen == {"body": torch.float16, "up": torch.float32}
    reference = model(x)
    assert 0 < (out - reference).abs().max() < 2e-3  # float16 rounding, not float32
    assert _psnr(out, reference) > 60


def test_keep_patterns_and_sizes():
    model = _espcn()
    assert kept_modules(model, ["@first", "@last"]) == [
        "feature_extraction.0",
        "upsampling.0",
    ]
    assert kept_modules(model, ["body", "body.0", "*.0"]) == [
        "body",
        "feature_extraction.0",
        "upsampling.0",
    ]
    with pytest.raises(ConfigError, match="'bodyy' matches no module; top-level modules"):
        half_precision(model, HalfPlan(keep_fp32=("bodyy",)))
    full = model_size(model).total_bytes
    assert model_size(half_precision(model)).total_bytes == full // 2
    kept = model_size(half_precision(model, HalfPlan(keep_fp32=("upsampling",)))).total_bytes
    upsampling = sum(p.numel() for p in model.upsampling.parameters())
    assert kept == full // 2 + 2 * upsampling


def test_half_refuses_quantized_or_half_models_and_unknown_types():
    model = _espcn()
    with pytest.raises(ConfigError, match="applies to float models"):
        half_precision(quantize(model, "w8a8"))
    with pytest.raises(ConfigError, match="already runs in half precision"):
        half_precision(half_precision(model))
    with pytest.raises(ConfigError, match="use float16 or bfloat16"):
        HalfPlan(dtype="float8")


def test_bfloat16_is_coarser_than_float16():
    model, x = _espcn(), torch.rand(1, 1, 16, 16)
    fp16 = _psnr(half_precision(model)(x), model(x))
    bf16 = _psnr(half_precision(model, HalfPlan(dtype="bfloat16"))(x), model(x))
    assert bf16 < fp16 - 10  # 8 significand bits instead of 11


def test_half_checkpoint_round_trip(tmp_path):
    half = half_precision(_espcn(), HalfPlan(keep_fp32=("upsampling",)))
    path = save_model(
        tmp_path / "h.safetensors",
        half,
        model_name="espcn",
        model_options={"features": [16, 8]},
        input_shape=(1, 16, 16),
        num_outputs=1,
    )
    loaded, metadata = load_model(path)
    assert metadata["half_precision"] == {"dtype": "float16", "keep_fp32": ["upsampling"]}
    x = torch.rand(1, 1, 16, 16)
    assert torch.equal(loaded(x), half(x))
    assert loaded.body[0].weight.dtype == torch.float16


def test_half_export_keeps_float16_weights_and_is_verified(tmp_path):
    import onnx

    half = half_precision(_espcn(), HalfPlan(keep_fp32=("upsampling",)))
    report = export_model(half, tmp_path / "h.onnx", "onnx", torch.rand(2, 1, 16, 16))
    assert report.passed
    proto = onnx.load(str(tmp_path / "h.onnx"))
    types = {i.name: i.data_type for i in proto.graph.initializer}
    assert types["body.0.weight"] == onnx.TensorProto.FLOAT16
    assert types["upsampling.0.weight"] == onnx.TensorProto.FLOAT
    assert np.isfinite(report.comparison.max_abs_diff)
