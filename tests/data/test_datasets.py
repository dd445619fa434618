import numpy as np
import pytest
import torch

from qdistill.data import Batches, build_dataset
from qdistill.data.idx import read_idx
from qdistill.errors import ConfigError, DatasetError, UnknownNameError


def test_digits_split_is_fixed_stratified_and_normalised(digits):
    again = build_dataset("digits")
    assert torch.equal(digits.test.x, again.test.x)
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    sizes = [len(digits.train), len(digits.val), len(digits.test)]
    assert sum(sizes) == 1797 and sizes[2] == pytest.approx(0.2 * 1797, abs=10)
    assert abs(digits.train.x.mean().item()) < 1e-4
    assert digits.train.x.std().item() == pytest.approx(1.0, abs=1e-3)
    counts = torch.bincount(digits.test.y, minlength=10)
    assert counts.min() >= 34  # every class present in proportion
    other = build_dataset("digits", split_seed=1)
    assert not torch.equal(digits.test.x, other.test.x)


def test_batches_cover_the_split_and_shuffle_deterministically(digits):
    batches = Batches(digits.val, 64, shuffle=True, generator=torch.Generator().manual_seed(3))
    first = torch.cat([y for _, y in batches])
    assert len(batches) == -(-len(digits.val) // 64)
    assert sorted(first.tolist()) == sorted(digits.val.y.tolist())
    again = Batches(digits.val, 64, shuffle=True, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, torch.cat([y for _, y in again]))
    assert len(Batches(digits.val, 64, drop_last=True)) == len(digits.val) // 64


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_datasets_read_real_format(tmp_path, compress, name, fake_mnist):
    fake_mnist(tmp_path, compress)
    data = build_dataset(name, root=str(tmp_path), val_fraction=0.25)
    assert data.input_shape == (1, 28, 28)
    assert (len(data.train), len(data.val), len(data.test)) == (18, 6, 10)
    assert data.test.y.tolist() == list(range(10))


def test_torchvision_layout_is_found(tmp_path, fake_mnist):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    fake_mnist(raw)
    assert len(build_dataset("mnist", root=str(tmp_path)).test) == 10


def test_missing_directory_and_files_name_what_is_expected(tmp_path):
    with pytest.raises(DatasetError, match=r"does not exist.*train-images-idx3-ubyte"):
        build_dataset("mnist", root=str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match=r"missing in .*t10k-labels-idx1-ubyte"):
        build_dataset("fashion_mnist", root=str(tmp_path))
    with pytest.raises(DatasetError, match="needs 'root'"):
        build_dataset("mnist")


def test_corrupt_idx_files(tmp_path, fake_mnist):
    write_idx = fake_mnist.write_idx
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DatasetError, match="magic"):
        read_idx(bad)
    short = tmp_path / "short"
    write_idx(short, np.zeros((5, 3), dtype=np.uint8))
    short.write_bytes(short.read_bytes()[:-2])
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(short)


def test_unknown_dataset_and_option():
    with pytest.raises(UnknownNameError, match="known datasets: cifar10, cifar100, digits"):
        build_dataset("imagenet")
    with pytest.raises(ConfigError, match="options are"):
        build_dataset("digits", rooot="x")


def test_augmentation_shifts_and_noise_are_seeded():
    from qdistill.data import ArraySplit, Augmentation

    x = torch.zeros(6, 1, 5, 5)
    x[:, 0, 2, 2] = 1.0  # one bright pixel in the middle
    split = ArraySplit(x, torch.arange(6))
    shift = Augmentation(shift=1)

    def shifted(seed):
        batches = Batches(split, 6, generator=torch.Generator().manual_seed(seed), augment=shift)
        return next(iter(batches))[0]

    out = shifted(0)
    assert torch.equal(out, shifted(0)) and out.sum() == 6  # the pixel moved, never lost
    rows, cols = out[:, 0].nonzero()[:, 1], out[:, 0].nonzero()[:, 2]
    assert set(rows.tolist()) <= {1, 2, 3} and set(cols.tolist()) <= {1, 2, 3}
    assert len({(r, c) for r, c in zip(rows.tolist(), cols.tolist(), strict=True)}) > 1
    noisy = Augmentation(noise_std=0.1)(x, torch.Generator().manual_seed(0))
    assert 0.05 < (noisy - x).std() < 0.15
    assert Augmentation().describe() == "none" and not Augmentation().active
    with pytest.raises(ValueError):
        Augmentation(shift=-1)


def test_idx_readers_refuse_damaged_files_with_one_clear_error(tmp_path, fake_mnist):
    import gzip

    fake_mnist(tmp_path, compress=True)
    images = tmp_path / "train-images-idx3-ubyte.gz"
    good = images.read_bytes()
    images.write_bytes(good[: len(good) // 2])  # a download cut short
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        read_idx(images)
    with gzip.open(images, "wb") as handle:  # a header announcing 60000^3 bytes
        handle.write(bytes([0, 0, 0x08, 3]) + (60000).to_bytes(4, "big") * 3)
    with pytest.raises(DatasetError, match="qdistill reads IDX files of at most"):
        read_idx(images)
    images.write_bytes(good)
    fake_mnist.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(24, 11, np.uint8), True)
    with pytest.raises(DatasetError, match=r"train labels range 11..11 but it has 10 classes"):
        build_dataset("mnist", root=str(tmp_path))
    with pytest.raises(DatasetError, match="empty val split"):
        build_dataset("digits", val_fraction=0.0)


def test_cifar_binary_versions_read_in_their_real_layout(tmp_path, fake_cifar):
    data = build_dataset("cifar10", root=str(fake_cifar(tmp_path / "cifar-10-batches-bin")))
    assert data.input_shape == (3, 32, 32) and data.num_classes == 10
    assert len(data.train) + len(data.val) == 60 and len(data.test) == 12
    assert sorted(data.test.y.tolist()) == sorted(i % 10 for i in range(12))
    means = data.train.x.mean((0, 2, 3))
    assert torch.allclose(means, torch.zeros(3), atol=1e-5)  # per-channel normalisation
    # the pixel layout: record bytes 1..1024 are the red plane, row-major
    raw = np.frombuffer(
        (tmp_path / "cifar-10-batches-bin" / "test_batch.bin").read_bytes(), np.uint8
    )
    red = raw[1 : 1 + 1024].reshape(32, 32).astype(np.float32) / 255
    mean, std = data.info["normalisation"]["mean"][0], data.info["normalisation"]["std"][0]
    assert torch.allclose(data.test.x[0, 0], torch.from_numpy((red - mean) / std), atol=1e-5)
    # the parent folder works too; CIFAR-100 has fine and coarse labels
    assert len(build_dataset("cifar10", root=str(tmp_path)).test) == 12
    hundred = fake_cifar(tmp_path / "c100" / "cifar-100-binary", hundred=True)
    fine = build_dataset("cifar100", root=str(hundred))
    coarse = build_dataset("cifar100", root=str(hundred), labels="coarse")
    assert (fine.num_classes, coarse.num_classes) == (100, 20)
    assert fine.test.y.tolist() == list(range(12)) and coarse.test.y.max() < 20


def test_cifar_errors_say_what_to_fix(tmp_path, fake_cifar):
    with pytest.raises(DatasetError, match="needs 'root'"):
        build_dataset("cifar10")
    python = tmp_path / "cifar-10-batches-py"
    python.mkdir()
    (python / "data_batch_1").write_bytes(b"\x80\x04pickle")
    with pytest.raises(DatasetError, match="never unpickles; download the binary version"):
        build_dataset("cifar10", root=str(tmp_path))
    folder = fake_cifar(tmp_path / "bin")
    (folder / "test_batch.bin").write_bytes(b"\x00" * 5000)
    with pytest.raises(DatasetError, match="truncated or not a CIFAR binary file"):
        build_dataset("cifar10", root=str(folder))
    (folder / "test_batch.bin").unlink()
    with pytest.raises(DatasetError, match="files missing"):
        build_dataset("cifar10", root=str(folder))


def _image_classes(folder, classes, per_class, size=(12, 10)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for index, name in enumerate(classes):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((*size, 3), 40 * index, np.uint8) + rng.integers(
                0, 20, (*size, 3), dtype=np.uint8
            )
            Image.fromarray(pixels).save(folder / name / f"{i}.png")


def test_image_folders_read_one_class_per_folder(tmp_path):
    _image_classes(tmp_path / "flat", ["cat", "dog", "eel"], per_class=10)
    data = build_dataset("image_folder", root=str(tmp_path / "flat"), size=16)
    assert data.input_shape == (3, 16, 16) and data.num_classes == 3
    assert data.info["classes"] == ["cat", "dog", "eel"]
    assert (len(data.train), len(data.val), len(data.test)) == (21, 3, 6)
    assert torch.bincount(data.test.y).tolist() == [2, 2, 2]  # stratified
    _image_classes(tmp_path / "split" / "train", ["a", "b"], per_class=10)
    _image_classes(tmp_path / "split" / "test", ["a", "b"], per_class=3)
    grey = build_dataset("image_folder", root=str(tmp_path / "split"), size=8, channels="grey")
    assert grey.input_shape == (1, 8, 8) and len(grey.test) == 6 and len(grey.val) == 2
    # class b is brighter: the normalised means keep the order
    assert grey.test.x[grey.test.y == 1].mean() > grey.test.x[grey.test.y == 0].mean()


def test_image_folder_errors_say_what_to_fix(tmp_path):
    with pytest.raises(DatasetError, match="needs 'root'"):
        build_dataset("image_folder")
    with pytest.raises(DatasetError, match="does not exist"):
        build_dataset("image_folder", root=str(tmp_path / "nope"))
    _image_classes(tmp_path / "one", ["only"], per_class=3)
    with pytest.raises(DatasetError, match="one folder per class"):
        build_dataset("image_folder", root=str(tmp_path / "one"))
    _image_classes(tmp_path / "two" / "train", ["a", "b"], per_class=5)
    _image_classes(tmp_path / "two" / "test", ["a", "zebra"], per_class=1)
    with pytest.raises(DatasetError, match=r"test classes \['zebra'\] have no training folder"):
        build_dataset("image_folder", root=str(tmp_path / "two"))


def test_horizontal_flips_mirror_about_half_the_images_and_are_seeded():
    from qdistill.data import Augmentation

    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4).repeat(200, 1, 1, 1)
    flip = Augmentation(hflip=True)
    out = flip(x, torch.Generator().manual_seed(0))
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert bool((mirrored ^ kept).all())  # each image whole: mirrored or untouched
    assert 70 < int(mirrored.sum()) < 130
    assert torch.equal(out, flip(x, torch.Generator().manual_seed(0)))
    assert flip.describe() == "shift=0,noise_std=0.0,hflip" and flip.active
    # off, it draws nothing: shifted batches are the same as before flips existed
    shifted = Augmentation(shift=1)(x, torch.Generator().manual_seed(3))
    assert torch.equal(
        shifted, Augmentation(shift=1, hflip=False)(x, torch.Generator().manual_seed(3))
    )
    assert Augmentation(shift=2).describe() == "shift=2,noise_std=0.0"


def test_a_labelled_fraction_withholds_the_other_labels_class_by_class():
    from qdistill.data import ArraySplit
    from qdistill.data.base import UNLABELLED, labelled_subset

    labels = torch.arange(200) % 10
    keep = labelled_subset(labels, 0.05, seed=0)
    assert keep.sum() == 10 and set(labels[keep].tolist()) == set(range(10))  # one per class
    assert torch.equal(keep, labelled_subset(labels, 0.05, seed=0))
    assert not torch.equal(keep, labelled_subset(labels, 0.05, seed=1))
    assert labelled_subset(labels, 0.001, seed=0).sum() == 10  # never a class without labels
    split = ArraySplit(torch.zeros(200, 1, 2, 2), labels)
    batches = Batches(split, 50, shuffle=True, generator=torch.Generator(), labelled=keep)
    seen = torch.cat([y for _, y in batches])
    assert int((seen != UNLABELLED).sum()) == 10


def test_cross_entropy_learns_only_from_labelled_samples():
    from qdistill.data.base import UNLABELLED
    from qdistill.distill.losses import kd_kl_loss
    from qdistill.train.loop import labelled_cross_entropy

    logits = torch.randn(6, 4, requires_grad=True)
    labels = torch.tensor([0, UNLABELLED, 2, UNLABELLED, 1, 3])
    kept = labels != UNLABELLED
    expected = torch.nn.functional.cross_entropy(logits[kept], labels[kept])
    assert torch.allclose(labelled_cross_entropy(logits, labels), expected)
    none = torch.full((6,), UNLABELLED)
    loss = labelled_cross_entropy(logits, none)
    loss.backward()
    assert loss.item() == 0 and logits.grad.abs().sum() == 0  # no label, no signal, no NaN
    teacher = torch.randn(6, 4)
    soft_only = kd_kl_loss(logits, teacher, none, alpha=0.9, temperature=4)
    assert torch.isfinite(soft_only) and soft_only > 0  # the teacher still teaches
