"""3DIdent layout: the reader on generated sets (well-formed and malformed) and the stand-in
renderer (each latent changes the image the way it should)."""

import colorsys
import shutil

import numpy as np
import pytest
from PIL import Image

from blockident.cli import main
from blockident.data.threedident import generate as gen
from blockident.data.threedident.format import FACTORS, FormatError, image_name, read_3dident
from blockident.data.threedident.generate import generate_3dident, render, to_physical

SIZE = 32


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return generate_3dident(tmp_path_factory.mktemp("3dident") / "tiny", 12, 6, size=SIZE, seed=1)


@pytest.fixture
def copy(tiny, tmp_path):
    """A private copy of the tiny set to break."""
    return shutil.copytree(tiny, tmp_path / "copy")


def test_image_names_are_zero_padded_to_ceil_log10_n():
    assert [image_name(i, 12) for i in (0, 11)] == ["00.png", "11.png"]
    assert image_name(5, 6) == "5.png" and image_name(9, 10) == "9.png"
    assert image_name(0, 1) == "0.png" and image_name(99, 101) == "099.png"
    assert image_name(999, 1000) == "999.png" and image_name(7, 1001) == "0007.png"


def test_generated_set_reads_as_a_factor_dataset(tiny):
    assert sorted(p.name for p in (tiny / "train" / "images").iterdir())[:2] == ["00.png", "01.png"]
    assert sorted(p.name for p in (tiny / "test" / "images").iterdir())[0] == "0.png"
    assert sorted(p.name for p in tiny.iterdir()) == ["test", "train"]  # no temporary folders
    train = read_3dident(tiny, "train")
    raw = np.load(tiny / "train" / "raw_latents.npy")
    assert train.names == FACTORS and len(train) == 12 and train.values.dtype == np.float64
    np.testing.assert_array_equal(train.values, raw)
    assert raw.min() >= -1 and raw.max() <= 1
    np.testing.assert_allclose(np.load(tiny / "train" / "latents.npy"), to_physical(raw))
    images = train.load(np.array([0, 3, 11]))
    assert images.shape == (3, SIZE, SIZE, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, render(to_physical(raw[[0, 3, 11]]), SIZE))
    assert read_3dident(tiny, "train", size=16).load([2]).shape == (1, 16, 16, 3)
    single = read_3dident(tiny / "test")  # a split folder as root
    assert len(single) == 6 and single.load([5]).shape == (1, SIZE, SIZE, 3)


def test_a_cached_read_gives_the_decoded_images(tiny, tmp_path):
    cached = read_3dident(tiny, "train", size=SIZE, cache_dir=tmp_path / "cache")
    index = np.array([11, 0, 5, 5])
    np.testing.assert_array_equal(cached.load(index), read_3dident(tiny, "train").load(index))
    assert {p.suffix for p in (tmp_path / "cache").iterdir()} == {".json", ".npy"}
    with pytest.raises(ValueError, match="cache_dir needs size"):
        read_3dident(tiny, "train", cache_dir=tmp_path / "cache")


def test_generation_is_deterministic_and_atomic(tiny, tmp_path, monkeypatch):
    again = generate_3dident(tmp_path / "again", 12, 6, size=SIZE, seed=1)
    other = generate_3dident(tmp_path / "other", 12, 0, size=SIZE, seed=2)
    for name in ("raw_latents.npy", "latents.npy", "images/07.png"):
        assert (again / "train" / name).read_bytes() == (tiny / "train" / name).read_bytes()
    assert not np.array_equal(read_3dident(other, "train").values, read_3dident(tiny, "train")
                              .values)
    assert not (other / "test").exists()
    with pytest.raises(FileExistsError, match="train"):
        generate_3dident(again, 3, 2, size=8)
    generate_3dident(again, 3, 2, size=8, overwrite=True)
    assert len(read_3dident(again, "train")) == 3

    def broken(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(gen, "render", broken)
    with pytest.raises(KeyboardInterrupt):
        generate_3dident(tmp_path / "cut", 4, 2, size=8)
    assert list((tmp_path / "cut").iterdir()) == []  # nothing that looks like a split


def test_prepare_command(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["prepare", "3dident", str(out), "--train", "3", "--test", "2", "--size", "8"]
    assert main(args) == 0
    assert "images/s" in capsys.readouterr().out
    assert read_3dident(out, "test").load([1]).shape == (1, 8, 8, 3)
    assert main(args) == 2  # existing splits are kept


# --- the renderer: each latent moves the image the expected way ------------------------------

def _one(**raw_values) -> np.ndarray:
    """float (64, 64, 3) image of raw latents 0 except ``raw_values`` (factor name -> value)."""
    raw = np.zeros((1, len(FACTORS)), np.float32)
    for name, value in raw_values.items():
        raw[0, FACTORS.index(name)] = value
    return render(to_physical(raw), 64)[0].astype(np.float64)


def _mask(image: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels that differ from the background (the top-left corner)."""
    return np.abs(image - image[0, 0]).sum(-1) > 3


def _centroid(image: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(_mask(image))
    return np.array([cols.mean(), rows.mean()])


def _circular_hue(image: np.ndarray) -> float:
    """Mean hue (turns) of the object's pixels."""
    hsv = np.asarray(Image.fromarray(image.astype(np.uint8)).convert("HSV"), np.float64)
    angle = hsv[..., 0][_mask(image)] / 256 * 2 * np.pi
    return np.arctan2(np.sin(angle).mean(), np.cos(angle).mean()) / (2 * np.pi) % 1


def test_position_moves_and_scales_the_object():
    left, right = _centroid(_one(pos_x=-0.8)), _centroid(_one(pos_x=0.8))
    assert right[0] - left[0] > 15 and abs(right[1] - left[1]) < 1
    down, up = _centroid(_one(pos_y=-0.8)), _centroid(_one(pos_y=0.8))
    assert down[1] - up[1] > 15 and abs(down[0] - up[0]) < 1  # rows grow downwards
    assert _mask(_one(pos_z=-1)).sum() > 1.5 * _mask(_one(pos_z=1)).sum()  # further is smaller


def _orientation(mask: np.ndarray) -> float:
    """Angle (radians, counter-clockwise from the image's x axis) of the mask's long axis."""
    rows, cols = np.nonzero(mask)
    x, y = cols - cols.mean(), -(rows - rows.mean())
    return 0.5 * np.arctan2(2 * (x * y).mean(), (x * x).mean() - (y * y).mean())


def test_rotations_change_the_image():
    assert abs(_orientation(_mask(_one()))) < 0.05
    np.testing.assert_allclose(_orientation(_mask(_one(rot_gamma=0.5))), np.pi / 4, atol=0.1)
    np.testing.assert_allclose(_orientation(_mask(_one(rot_gamma=-0.5))), -np.pi / 4, atol=0.1)
    base = _one()
    for name in ("rot_alpha", "rot_beta"):
        turned = _one(**{name: 0.8})
        assert np.abs(turned - base)[_mask(turned) | _mask(base)].mean() > 15, name
        left, right = _one(**{name: -0.5}), _one(**{name: 0.5})  # the cap shows the sign
        assert np.abs(left - right)[_mask(left) | _mask(right)].mean() > 40, name


def test_colours_and_light_follow_their_latents():
    # a hue angle h (radians, raw value x pi/2) is the hue h / 2pi turns; a light of the same
    # hue keeps it, a red one (spotlight_hue 0) pulls it towards red
    for raw in (-0.5, 0.5):
        hue = _circular_hue(_one(object_hue=raw, spotlight_hue=raw))
        assert abs(hue - raw / 4 % 1) < 0.04
    hues = [(_circular_hue(_one(object_hue=raw)) + 0.5) % 1 for raw in np.linspace(-1, 1, 5)]
    assert np.all(np.diff(hues) > 0.02)
    for raw in (-1, 0.3):
        expected = colorsys.hsv_to_rgb(raw / 4 % 1, 0.6, 1)
        np.testing.assert_allclose(_one(background_hue=raw)[0, 0] / 255, expected, atol=0.01)
    tinted = [_one(object_hue=0.5, spotlight_hue=s) for s in (-0.8, 0.8)]  # magenta, green
    assert (tinted[1] - tinted[0])[_mask(_one()), 1].mean() > 20  # a greener light: greener
    half = _mask(_one()) & (np.arange(64) < 32)[None, :]  # left half of the object
    brightness_left = [_one(spotlight_pos=s).sum(-1)[half].mean() for s in (-1, 1)]
    assert brightness_left[0] > brightness_left[1] + 20  # light from the left lights the left


# --- malformed sets: every error names its file ------------------------------------------------

def test_missing_folders_and_files_are_named(copy):
    with pytest.raises(FormatError, match=r"val: split folder missing \(found: train, test"):
        read_3dident(copy, "val")
    with pytest.raises(FormatError, match="holds the splits train, test; pass split="):
        read_3dident(copy)
    (copy / "test" / "raw_latents.npy").unlink()
    with pytest.raises(FormatError, match=r"test/raw_latents\.npy: missing"):
        read_3dident(copy, "test")
    (copy / "train" / "latents.npy").unlink()
    with pytest.raises(FormatError, match=r"train/latents\.npy: missing"):
        read_3dident(copy, "train")


def test_a_missing_image_is_named_with_its_path(copy):
    (copy / "train" / "images" / "07.png").unlink()
    with pytest.raises(FormatError, match=r"11 images for 12 rows .*missing: \S*train/images/"
                                          r"07\.png; unexpected: none"):
        read_3dident(copy, "train")


def test_misnamed_images_are_refused(copy):
    images = copy / "test" / "images"
    (images / "3.png").rename(images / "03.png")
    with pytest.raises(FormatError, match=r"test/images: .*padded to 1 digits .*unexpected: 03"):
        read_3dident(copy, "test")


def test_an_image_removed_after_reading_is_named_when_loaded(copy):
    data = read_3dident(copy, "test")
    (copy / "test" / "images" / "2.png").unlink()
    with pytest.raises(FormatError, match=r"test/images/2\.png: missing or unreadable"):
        data.load([1, 2])


def test_bad_raw_latents_are_named(copy):
    path = copy / "train" / "raw_latents.npy"
    raw = np.load(path)
    np.save(path, raw[:10])  # fewer rows than images
    with pytest.raises(FormatError, match=r"12 images for 10 rows of \S*raw_latents\.npy"):
        read_3dident(copy, "train")
    np.save(path, raw[:, :9])
    with pytest.raises(FormatError, match=r"raw_latents\.npy: shape \(12, 9\), expected \(N, 10\)"):
        read_3dident(copy, "train")
    outside = raw.copy()
    outside[4, 7] = 1.5
    np.save(path, outside)
    with pytest.raises(FormatError, match=r"raw_latents\.npy: row 4, column 7 \('object_hue'\)"):
        read_3dident(copy, "train")
    np.save(path, raw * (1 + 1e-5))  # rounding beyond 1 is tolerated
    assert len(read_3dident(copy, "train")) == 12
    path.write_bytes(b"not an array")
    with pytest.raises(FormatError, match=r"raw_latents\.npy: not a readable \.npy array"):
        read_3dident(copy, "train")


def test_latents_with_other_rows_are_named(copy):
    path = copy / "test" / "latents.npy"
    np.save(path, np.load(path)[:5])
    with pytest.raises(FormatError, match=r"test/latents\.npy: shape \(5, 10\), expected 6 rows"):
        read_3dident(copy, "test")
