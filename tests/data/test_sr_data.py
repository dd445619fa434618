import numpy as np
import pytest
import torch
from PIL import Image

from qdistill.data import build_dataset
from qdistill.data.images import bicubic_resize, downscale_uint8, read_image
from qdistill.errors import ConfigError, DatasetError


def _write_png(path, height, width, seed, grey=False):
    rng = np.random.default_rng(seed)
    shape = (height, width) if grey else (height, width, 3)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)


@pytest.fixture
def folders(tmp_path):
    train, test, lr = tmp_path / "DIV2K_HR", tmp_path / "Set5", tmp_path / "DIV2K_LR_X2"
    for folder in (train, test, lr):
        folder.mkdir()
    for i in range(3):
        _write_png(train / f"000{i}.png", 40, 50, i)
        _write_png(lr / f"000{i}x2.png", 20, 25, 10 + i)
    _write_png(test / "baby.png", 33, 41, 5, grey=True)
    return train, test, lr


def test_folder_dataset_pairs_and_bicubic_lr(folders):
    train, test, _ = folders
    data = build_dataset("sr_folder", train=str(train), test=str(test), lr_patch=8)
    assert [p.name for p in data.train] == ["0000", "0001"] and data.val[0].name == "0002"
    baby = data.test[0]
    assert tuple(baby.hr.shape) == (3, 32, 40)  # cropped to multiples of the scale
    assert tuple(baby.lr.shape) == (3, 16, 20)
    expected = downscale_uint8(baby.hr, 2)
    assert torch.equal(baby.lr, expected)
    assert data.input_shape == (3, 8, 8) and data.summary()["images"]["test"] == ["baby"]


def test_folder_dataset_reads_div2k_lr_files(folders):
    train, test, lr = folders
    data = build_dataset(
        "sr_folder", train=str(train), train_lr=str(lr), test=str(test), lr_patch=8
    )
    assert torch.equal(data.train[0].lr, read_image(lr / "0000x2.png"))


def test_folder_errors_say_what_to_fix(folders, tmp_path):
    train, test, lr = folders
    with pytest.raises(DatasetError, match="does not exist; point the option"):
        build_dataset("sr_folder", train=str(tmp_path / "nope"), test=str(test))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="has no images"):
        build_dataset("sr_folder", train=str(train), test=str(empty))
    with pytest.raises(DatasetError, match="needs option 'test'"):
        build_dataset("sr_folder", train=str(train))
    (lr / "0001x2.png").unlink()
    with pytest.raises(DatasetError, match=r"no LR image for 0001\.png"):
        build_dataset("sr_folder", train=str(train), train_lr=str(lr), test=str(test))
    (test / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DatasetError, match="cannot decode image"):
        build_dataset("sr_folder", train=str(train), test=str(test))
    (test / "broken.png").unlink()
    with pytest.raises(DatasetError, match="smaller than lr_patch"):
        build_dataset("sr_folder", train=str(train), test=str(folders[1]), lr_patch=64)


def test_patches_are_aligned_shaped_and_deterministic(folders):
    train, test, _ = folders
    data = build_dataset("sr_folder", train=str(train), test=str(test), lr_patch=8)
    batches = list(data.patches(4, torch.Generator().manual_seed(0), augment=False))
    assert len(batches) == data.patches_per_epoch // 4
    lr, hr = batches[0]
    assert lr.shape == (4, 3, 8, 8) and hr.shape == (4, 3, 16, 16)
    assert float(lr.min()) >= 0 and float(hr.max()) <= 1
    again = list(data.patches(4, torch.Generator().manual_seed(0), augment=False))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))
    # every LR patch is the LR image cut at the HR patch's position / scale
    pair = data.train[0]
    full_lr = pair.lr.float() / 255
    found = any(
        torch.equal(full_lr[:, i : i + 8, j : j + 8], lr[0])
        for i in range(pair.lr.shape[1] - 7)
        for j in range(pair.lr.shape[2] - 7)
    ) or any(
        torch.equal(data.train[1].lr.float()[:, i : i + 8, j : j + 8] / 255, lr[0])
        for i in range(data.train[1].lr.shape[1] - 7)
        for j in range(data.train[1].lr.shape[2] - 7)
    )
    assert found
    augmented = next(iter(data.patches(64, torch.Generator().manual_seed(1))))
    assert augmented[0].shape == (64, 3, 8, 8)


def test_y_channel_data(folders):
    train, test, _ = folders
    data = build_dataset("sr_folder", train=str(train), test=str(test), channels="y", lr_patch=8)
    lr, hr = next(iter(data.patches(2, torch.Generator().manual_seed(0))))
    assert lr.shape == (2, 1, 8, 8) and hr.shape == (2, 1, 16, 16)
    assert float(hr.min()) >= 16 / 255 - 1e-6 and float(hr.max()) <= 235 / 255 + 1e-6
    assert data.sample_inputs(3).shape == (3, 1, 8, 8)


def test_bicubic_resize_keeps_constant_images():
    flat = torch.full((1, 3, 16, 16), 0.25)
    assert torch.allclose(bicubic_resize(flat, (8, 8)), torch.full((1, 3, 8, 8), 0.25))
    assert torch.allclose(bicubic_resize(flat, (32, 32)), torch.full((1, 3, 32, 32), 0.25))


def test_bundled_photos_split():
    data = build_dataset("photos", scale=3, lr_patch=16)
    names = data.summary()["images"]
    assert not set(names["train"]) & (set(names["test"]) | set(names["val"]))
    assert len(names["train"]) == 10 and len(names["test"]) == 4
    for pair in data.test:
        assert pair.hr.shape[-2] == 3 * pair.lr.shape[-2]


def test_bundled_photos_eval_crop():
    full = build_dataset("photos", scale=2)
    data = build_dataset("photos", scale=2, eval_crop=64)
    for pair, whole in zip(data.test + data.val, full.test + full.val, strict=True):
        assert pair.hr.shape[-2:] == (64, 64) and pair.lr.shape[-2:] == (32, 32)
        top, left = (whole.hr.shape[-2] - 64) // 2, (whole.hr.shape[-1] - 64) // 2
        assert torch.equal(pair.hr, whole.hr[:, top : top + 64, left : left + 64])
    assert [p.hr.shape for p in data.train] == [p.hr.shape for p in full.train]
    with pytest.raises(DatasetError, match="eval_crop 3 is too small"):
        build_dataset("photos", scale=2, eval_crop=3)


def test_images_are_bounded_in_pixels_and_below_the_scale_refused(folders, tmp_path, monkeypatch):
    from qdistill.data import images

    train = folders[0]
    big = tmp_path / "big"
    big.mkdir()
    Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(big / "wide.png")
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 100_000)
    with pytest.raises(DatasetError, match=r"400x300 pixels; qdistill reads images of at most"):
        build_dataset("sr_folder", train=str(train), test=str(big))
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    Image.fromarray(np.zeros((2, 5, 3), np.uint8)).save(tiny / "thin.png")
    with pytest.raises(DatasetError, match=r"\(2, 5\) pixels, smaller than the scale 3"):
        build_dataset("sr_folder", train=str(train), test=str(tiny), scale=3, lr_patch=4)


def test_a_test_folder_alone_evaluates_a_model_trained_on_other_patches(folders, tmp_path):
    from qdistill.experiment.commands import evaluate_checkpoint
    from qdistill.models import build_model, save_model

    _, test, _ = folders
    data = build_dataset("sr_folder", test=str(test), scale=2, channels="y")
    assert data.train == [] and data.val == [] and data.summary()["images"]["test"] == ["baby"]
    with pytest.raises(DatasetError, match=r"has no training images .* give the option 'train'"):
        data.patches(4)
    torch.manual_seed(0)
    model = build_model("espcn", (1, 17, 17), 1, scale=2)
    path = tmp_path / "espcn.safetensors"
    save_model(path, model, model_name="espcn", model_options={"scale": 2},
               input_shape=(1, 17, 17), num_outputs=1)  # fmt: skip
    options = {"test": str(test), "scale": 2, "channels": "y"}
    result = evaluate_checkpoint(path, "sr_folder", options)  # no train folder, 16x20 LR image
    assert result["dataset"] == data.name and result["test_psnr_y"] > 0
    assert result["test_psnr_y@baby"] == result["test_psnr_y"]  # one image: its own mean
    assert "bicubic_test_ssim_y@baby" in result
    with pytest.raises(ConfigError, match=r"gives \(3,\); read it with --data-option channels=y"):
        evaluate_checkpoint(path, "sr_folder", {**options, "channels": "rgb"})
    from typer.testing import CliRunner

    from qdistill.cli import app

    args = ["evaluate", str(path), "--data", "sr_folder"]
    args += [f"--data-option={k}={v}" for k, v in options.items()]
    output = CliRunner().invoke(app, args, env={"COLUMNS": "160"}).output
    assert "Per test image" in output and "baby" in output
