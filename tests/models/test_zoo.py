import pytest
import torch

from qdistill.errors import ConfigError, UnknownNameError
from qdistill.models import MODELS, build_model, model_task

CLASSIFIERS = [n for n in MODELS.names() if model_task(n) == "classification"]
SUPER_RESOLUTION = [n for n in MODELS.names() if model_task(n) == "super_resolution"]


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("input_shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)], ids=str)
def test_every_model_builds_and_trains_a_step(name, input_shape):
    model = build_model(name, input_shape, 10)
    x = torch.randn(4, *input_shape)
    out = model(x)
    assert out.shape == (4, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", SUPER_RESOLUTION)
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("channels", [1, 3])
def test_super_resolution_models_upscale_and_train(name, scale, channels):
    model = build_model(name, (channels, 12, 10), channels, scale=scale)
    out = model(torch.rand(2, channels, 12, 10))
    assert out.shape == (2, channels, 12 * scale, 10 * scale)
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    children = {n for n, _ in model.named_children()}
    assert {"feature_extraction", "upsampling"} <= set(model.stages) <= children
    assert set(model.stages) <= {"feature_extraction", "body", "upsampling", "reconstruction"}
    with pytest.raises(ConfigError, match="scale must be 2, 3 or 4"):
        build_model(name, (channels, 8, 8), channels, scale=5)


def test_espcn_layers_follow_the_research():
    model = build_model("espcn", (3, 8, 8), 3, scale=2)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size[0], c.out_channels) for c in convs] == [(5, 64), (3, 32), (3, 12)]
    mini = build_model("mini_espcn", (3, 8, 8), 3, scale=2)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in mini.modules()) == len(convs) - 1
    faster = build_model("faster_espcn", (1, 8, 8), 1, scale=3)
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in faster.modules())
    finn = build_model("espcn_finn", (3, 8, 8), 3, scale=2)
    assert not any(isinstance(m, torch.nn.PixelShuffle) for m in finn.modules())


def test_research_sizes():
    assert build_model("kl_mlp_teacher", (1, 28, 28), 10).features[1].out_features == 1200
    hidden = [
        m.out_features
        for m in build_model("kl_mlp_student", (1, 28, 28), 10).modules()
        if isinstance(m, torch.nn.Linear)
    ]
    assert hidden == [300, 300, 300, 10]
    assert build_model("dnn_30", (64,), 10).features[1].out_features == 30


def test_unknown_model_lists_known_names():
    with pytest.raises(UnknownNameError, match=r"known models: .*small_cnn"):
        build_model("resnet9000", (1, 8, 8), 10)
    with pytest.raises(UnknownNameError, match="did you mean 'small_cnn'"):
        build_model("small_cnm", (1, 8, 8), 10)


def test_bad_model_options():
    with pytest.raises(ConfigError, match="options are: hidden"):
        build_model("mlp", (64,), 10, depth=3)
    with pytest.raises(ConfigError, match="activation"):
        build_model("mlp", (64,), 10, act="swishy")
    with pytest.raises(ConfigError, match="channels, height, width"):
        build_model("small_cnn", (64,), 10)


def test_torchvision_models_build_quantize_and_reload(tmp_path):
    from qdistill.models import load_model, save_model
    from qdistill.quant import calibrate, quantize

    x = torch.randn(2, 3, 32, 32)
    model = build_model("torchvision:resnet18", (3, 32, 32), 10).eval()
    assert model(x).shape == (2, 10)
    narrow = build_model("torchvision:mobilenet_v2", (3, 32, 32), 100, width_mult=0.5)
    assert narrow(x).shape == (2, 100)
    quantized = quantize(model, "w8a8", fold_bn=True)
    calibrate(quantized, [x])
    path = save_model(
        tmp_path / "r.safetensors",
        quantized,
        model_name="torchvision:resnet18",
        model_options={},
        input_shape=(3, 32, 32),
        num_outputs=10,
        fold_bn=True,
    )
    reloaded, _ = load_model(path)
    assert torch.allclose(reloaded(x), quantized(x), atol=1e-5)
    with pytest.raises(UnknownNameError, match="did you mean 'resnet50'"):
        build_model("torchvision:resnet9000", (3, 32, 32), 10)
    with pytest.raises(ConfigError, match=r"takes RGB images \(3, H, W\)"):
        build_model("torchvision:resnet18", (1, 8, 8), 10)
    with pytest.raises(ConfigError, match="does not take \\['bogus'\\]"):
        build_model("torchvision:resnet18", (3, 32, 32), 10, bogus=1)


def test_cifar_resnets_match_the_distillation_literature(tmp_path):
    from qdistill.export import export_model
    from qdistill.prune import ChannelPruning, prune_channels
    from qdistill.quant import calibrate, count_parameters, quantize

    # CRD's CIFAR-100 parameter counts: ResNet8x4 1.23M, ResNet32x4 7.43M
    assert count_parameters(build_model("resnet8x4", (3, 32, 32), 100)) == 1_233_540
    assert count_parameters(build_model("resnet32x4", (3, 32, 32), 100)) == 7_433_860
    with pytest.raises(ConfigError, match="6n \\+ 2"):
        build_model("cifar_resnet", (3, 32, 32), 10, depth=10)
    x = torch.randn(4, 3, 32, 32)
    student = build_model("cifar_resnet", (3, 32, 32), 10, depth=8).eval()
    report = prune_channels(student, x, ChannelPruning(ratio=0.5))  # across the shortcuts
    assert student(x).shape == (4, 10) and report.mac_ratio < 0.5
    quantized = quantize(student, "w8a8", fold_bn=True)
    calibrate(quantized, [x])
    assert export_model(quantized, tmp_path / "r.onnx", "onnx-qdq", x).passed


@pytest.mark.parametrize("depth", [21, 37, 63, 121, 201])
def test_densenets_have_the_depth_they_are_named_for(depth):
    model = build_model("densenet", (3, 32, 32), 10, depth=depth)
    weighted = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    assert len(weighted) == depth
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_the_hardware_friendly_densenet_folds_every_batchnorm():
    from qdistill.quant import calibrate, quantize

    x = torch.randn(4, 3, 32, 32)
    friendly = build_model("densenet", (3, 32, 32), 10, depth=21, order="conv-bn-relu").eval()
    quantized = quantize(friendly, "w4a4", fold_bn=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in quantized.modules())
    calibrate(quantized, [x])
    assert quantized(x).shape == (4, 10)
    standard = build_model("densenet", (3, 32, 32), 10, depth=21)
    assert any(
        isinstance(m, torch.nn.BatchNorm2d)
        for m in quantize(standard, "w4a4", fold_bn=True).modules()
    )
    with pytest.raises(ConfigError, match="depth must be one of"):
        build_model("densenet", (3, 32, 32), 10, depth=40)


def test_mobilenetv2_keeps_cifar_resolution_and_scales_its_width():
    from qdistill.quant import count_parameters

    x = torch.randn(2, 3, 32, 32)
    full = build_model("mobilenetv2", (3, 32, 32), 100)
    half = build_model("mobilenetv2", (3, 32, 32), 100, width=0.5)
    assert full(x).shape == half(x).shape == (2, 100)
    assert count_parameters(half) < 0.5 * count_parameters(full)
    spatial = []
    full.features[-1].register_forward_hook(lambda _m, _i, out: spatial.append(out.shape[-1]))
    full(x)
    assert spatial == [4]  # three halvings from 32, as in the CIFAR variant
    with pytest.raises(ConfigError, match="width must be between"):
        build_model("mobilenetv2", (3, 32, 32), 10, width=0)


def test_the_flexible_student_takes_its_depth_and_widths_as_options():
    x = torch.randn(2, 3, 32, 32)
    default = build_model("flex_cnn", (3, 32, 32), 10)
    layers = [m for m in default.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    assert len(layers) == 5 and default(x).shape == (2, 10)  # 3 conv + 1 hidden + head
    deep = build_model("flex_cnn", (1, 8, 8), 10, conv=[8, 8, 8, 8], fc=[32, 16])
    assert deep(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert [m.out_channels for m in deep.modules() if isinstance(m, torch.nn.Conv2d)] == [8] * 4
    with pytest.raises(ConfigError, match="conv needs at least one width"):
        build_model("flex_cnn", (3, 32, 32), 10, conv=[])


@pytest.mark.parametrize(
    ("name", "options", "plan", "formats", "fpga"),
    [
        ("flex_cnn", {}, "w8a8", ("onnx-qdq", "qonnx"), None),
        ("resnet8x4", {}, {"*": "w8a8", "pool.0": "a8"}, ("onnx-qdq", "qonnx"), None),
        (
            "densenet",
            {"depth": 21, "order": "conv-bn-relu"},
            {"*": "w8a8", **{f"features.{i}.1": "a8" for i in (2, 4, 6)}, "pool.0": "a8"},
            ("onnx-qdq", "qonnx"),
            None,
        ),
        ("mobilenetv2", {"width": 0.5}, {"*": "w8a8", "pool.0": "a8"}, ("onnx-qdq", "qonnx"), None),
    ],
)
def test_the_cifar_models_convert_export_verified_and_estimate(
    tmp_path, name, options, plan, formats, fpga
):
    from qdistill.export import export_model
    from qdistill.hardware.estimate import estimate_dataflow
    from qdistill.hardware.stream import DataflowError
    from qdistill.quant import calibrate, convert, quantize

    x = torch.randn(16, 3, 32, 32)
    model = build_model(name, (3, 32, 32), 10, **options)
    with torch.no_grad():  # BatchNorm statistics of real inputs, as after any training:
        for _ in range(3):  # at their initial values a deep net's logits are all but tied
            model(x)
    quantized = quantize(model.eval(), plan, fold_bn=True)
    calibrate(quantized, [x])
    quantized.eval()
    with torch.no_grad():
        assert torch.equal(convert(quantized)(x).argmax(1), quantized(x).argmax(1))
    for fmt in formats:
        assert export_model(quantized, tmp_path / f"{name}.{fmt}.onnx", fmt, x).passed, fmt
    if fpga is None:
        estimate = estimate_dataflow(quantized, (3, 32, 32))
        assert estimate.total.lut > 0 and estimate.fps > 0
    else:
        with pytest.raises(DataflowError, match=fpga):
            estimate_dataflow(quantized, (3, 32, 32))


def test_cifar_model_sizes_match_their_references():
    from qdistill.quant import count_parameters

    # DenseNet-BC-121 (blocks 6-12-24-16, as the studies' depths) at growth 12 on CIFAR-10:
    # 1.00M; the 0.8M usually quoted is DenseNet-BC L=100, k=12 (Huang et al. 2017), a
    # shallower net. MobileNetV2 for CIFAR-10 (width 1): 2.24M, the usual 2.2M.
    densenet = count_parameters(build_model("densenet", (3, 32, 32), 10, depth=121, growth=12))
    mobilenet = count_parameters(build_model("mobilenetv2", (3, 32, 32), 10))
    assert (densenet, mobilenet) == (1_000_618, 2_236_682)
