"""ImageCache (decode once into a uint8 memmap) and Augment (kornia batch augmentation)."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from PIL import Image

from blockident.cli import main
from blockident.data import images
from blockident.data.augment import IMAGENET_MEAN, IMAGENET_STD, Augment
from blockident.data.images import BadImageError, ImageCache

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 120, 40)]


def write_images(folder, colours=COLOURS, size=(40, 30)):
    """Solid-colour images alternating PNG / JPEG; returns their paths."""
    paths = []
    for i, c in enumerate(colours):
        p = folder / (f"img{i}.png" if i % 2 == 0 else f"img{i}.jpg")
        Image.new("RGB", size, c).save(p)
        paths.append(p)
    return paths


def forbid_decoding(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("decoded an image")

    monkeypatch.setattr(PIL.Image, "open", fail)


def test_cache_matches_decoded_colours(tmp_path):
    paths = write_images(tmp_path)
    cache = ImageCache.build(paths, 16, tmp_path / "cache")
    assert len(cache) == 4 and cache.size == 16 and cache.bad == {}
    assert cache.array.shape == (4, 16, 16, 3) and cache.array.dtype == np.uint8
    for i, c in enumerate(COLOURS):
        assert np.abs(cache.array[i].astype(int) - np.array(c)).max() <= 3  # JPEG tolerance
    b = cache.batch([3, 0])
    assert b.dtype == torch.uint8 and b.shape == (2, 3, 16, 16)
    assert torch.equal(b[1, :, 0, 0], torch.tensor(COLOURS[0], dtype=torch.uint8))
    assert torch.equal(cache.batch(torch.tensor([3, 0])), b)


def test_resize_shorter_side_then_centre_crop(tmp_path):
    # 60 x 20 image: left third red, middle green, right blue -> the crop keeps only green
    a = np.zeros((20, 60, 3), np.uint8)
    a[:, :20] = (255, 0, 0)
    a[:, 20:40] = (0, 255, 0)
    a[:, 40:] = (0, 0, 255)
    p = tmp_path / "wide.png"
    Image.fromarray(a).save(p)
    img = ImageCache.build([p], 10, tmp_path / "c").array[0]
    assert img.shape == (10, 10, 3)
    assert np.abs(img[:, 2:8].astype(int) - (0, 255, 0)).max() <= 10


def test_reuse_without_decoding(tmp_path, monkeypatch):
    paths = write_images(tmp_path)
    first = ImageCache.build(paths, 12, tmp_path / "cache")
    mtime = first.file.stat().st_mtime_ns
    forbid_decoding(monkeypatch)
    second = ImageCache.build(paths, 12, tmp_path / "cache")
    assert second.file == first.file and second.file.stat().st_mtime_ns == mtime
    assert np.array_equal(second.array, first.array)


def test_rebuild_on_other_size_or_paths(tmp_path):
    paths = write_images(tmp_path)
    a = ImageCache.build(paths, 12, tmp_path / "cache")
    b = ImageCache.build(paths, 8, tmp_path / "cache")
    c = ImageCache.build(paths[::-1], 12, tmp_path / "cache")
    assert len({a.file, b.file, c.file}) == 3
    assert b.array.shape == (4, 8, 8, 3)
    assert np.array_equal(c.array, a.array[::-1])
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 3
    assert not list((tmp_path / "cache").glob(".*"))  # no temporary files left


def test_corrupt_and_missing_raise_naming_paths(tmp_path):
    paths = write_images(tmp_path)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"not a jpeg at all")
    missing = tmp_path / "missing.png"
    with pytest.raises(BadImageError) as err:
        ImageCache.build([*paths, corrupt, missing], 8, tmp_path / "cache")
    assert str(corrupt) in str(err.value) and str(missing) in str(err.value)
    assert err.value.paths == [str(corrupt), str(missing)]
    assert isinstance(err.value, ValueError)
    assert not list((tmp_path / "cache").glob(".*"))  # no temporary files left


def test_error_message_truncates(tmp_path):
    missing = [tmp_path / f"m{i}.png" for i in range(13)]
    with pytest.raises(BadImageError, match="13 missing") as err:
        ImageCache.build(missing, 4, tmp_path / "cache")
    assert "and 3 more" in str(err.value) and str(missing[12]) not in str(err.value)


def test_skip_bad_fills_zeros_and_records(tmp_path, monkeypatch):
    paths = write_images(tmp_path, COLOURS[:2])
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG garbage")
    missing = tmp_path / "missing.png"
    inputs = [paths[0], corrupt, paths[1], missing]
    cache = ImageCache.build(inputs, 8, tmp_path / "cache", skip_bad=True)
    assert cache.bad == {1: str(corrupt), 3: str(missing)}
    assert not cache.array[1].any() and not cache.array[3].any()
    assert cache.array[0].any() and cache.array[2].any()
    forbid_decoding(monkeypatch)  # reuse keeps the record; without skip_bad it still raises
    assert ImageCache.build(inputs, 8, tmp_path / "cache", skip_bad=True).bad == cache.bad
    with pytest.raises(BadImageError, match="corrupt.png"):
        ImageCache.build(inputs, 8, tmp_path / "cache")


def test_a_replaced_image_is_decoded_again_and_only_it(tmp_path, monkeypatch):
    paths = write_images(tmp_path)
    first = ImageCache.build(paths, 8, tmp_path / "cache")
    Image.new("RGB", (40, 30), (9, 9, 9)).save(paths[2])  # new bytes, same name
    decoded = []
    monkeypatch.setattr(images, "load_image", lambda p, size: decoded.append(p) or
                        np.full((size, size, 3), 9, np.uint8))
    again = ImageCache.build(paths, 8, tmp_path / "cache")
    assert decoded == [paths[2]] and (again.array[2] == 9).all()
    assert np.array_equal(first.array[0], again.array[0])
    assert (first.array[2] != 9).any()  # an open cache keeps the pixels it was opened with


def test_a_repaired_bad_image_is_used_again(tmp_path):
    paths = write_images(tmp_path, COLOURS[:2])
    paths[1].write_bytes(b"truncated")
    assert ImageCache.build(paths, 8, tmp_path / "cache", skip_bad=True).bad == {1: str(paths[1])}
    Image.new("RGB", (40, 30), COLOURS[1]).save(paths[1])
    cache = ImageCache.build(paths, 8, tmp_path / "cache")
    assert cache.bad == {} and cache.array[1].any()


def test_prepare_cache_clear_removes_every_entry(tmp_path, capsys):
    paths = write_images(tmp_path)
    ImageCache.build(paths, 8, tmp_path / "data" / ".blockident_cache")
    ImageCache.build(paths, 4, tmp_path / "data" / ".blockident_cache")
    assert main(["prepare", "cache", str(tmp_path / "data")]) == 0
    assert "2 cache entries" in capsys.readouterr().out
    assert main(["prepare", "cache", str(tmp_path / "data"), "--clear"]) == 0
    assert not list((tmp_path / "data").rglob("*.npy"))
    assert not list((tmp_path / "data").rglob("*.json"))


def random_batch(b=6, h=20, w=24):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8, generator=g)


def test_augment_shape_dtype_range():
    x = random_batch()
    for crop in (None, (0.5, 1.0)):
        out = Augment(16, resized_crop=crop)(x)
        assert out.shape == (6, 3, 16, 16) and out.dtype == torch.float32
        lo = (0 - max(IMAGENET_MEAN)) / min(IMAGENET_STD)
        hi = (1 - min(IMAGENET_MEAN)) / min(IMAGENET_STD)
        assert out.min() >= lo - 1e-5 and out.max() <= hi + 1e-5
    raw = Augment(16, normalize=False, resized_crop=(0.3, 1.0))(x)
    assert raw.min() >= 0 and raw.max() <= 1


def test_normalisation_values():
    x = torch.full((2, 3, 8, 8), 255, dtype=torch.uint8)
    x[:, 1] = 0
    out = Augment(8).normalize_only(x)
    expect = [(1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], -IMAGENET_MEAN[1] / IMAGENET_STD[1],
              (1 - IMAGENET_MEAN[2]) / IMAGENET_STD[2]]
    assert torch.allclose(out, torch.tensor(expect).view(1, 3, 1, 1).expand_as(out), atol=1e-5)


def test_flip_follows_torch_seed():
    x = random_batch(16, 8, 8)
    aug = Augment(8, jitter=0.0, normalize=False)
    torch.manual_seed(1)
    a = aug(x)
    torch.manual_seed(1)
    b = aug(x)
    assert torch.equal(a, b)
    xf = x.float() / 255  # Augment scales by 1 / 255 inside its affine map: within an ulp
    flipped = [torch.allclose(a[i], xf[i].flip(-1), rtol=0, atol=1e-6) for i in range(16)]
    kept = [torch.allclose(a[i], xf[i], rtol=0, atol=1e-6) for i in range(16)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert any(flipped) and any(kept)  # p = 0.5 over 16 samples


def test_jitter_and_crop_seeded():
    x = random_batch()
    aug = Augment(12, jitter=0.4, resized_crop=(0.4, 1.0))
    torch.manual_seed(3)
    a = aug(x)
    torch.manual_seed(3)
    assert torch.equal(aug(x), a)
    assert not torch.equal(aug(x), a)  # fresh randomness without reseeding


def test_eval_mode_deterministic():
    x = random_batch()
    aug = Augment(12, jitter=0.8, resized_crop=(0.2, 1.0)).eval()
    a, b = aug(x), aug(x)
    assert torch.equal(a, b) and torch.equal(a, aug.normalize_only(x))
    assert a.shape == (6, 3, 12, 12)
