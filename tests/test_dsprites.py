"""dSprites: the npz reader, its checks, and the generated stand-in."""

import numpy as np
import pytest

from blockident.data.dsprites.format import FACTORS, FILENAME, grid_rows, read_dsprites
from blockident.data.dsprites.generate import (
    BOX,
    GRID,
    SIZES,
    base_sprites,
    generate_dsprites,
)
from blockident.prepare import main as prepare

TINY = (1, 2, 2, 3, 2, 2)  # a full grid small enough to write by hand


@pytest.fixture(scope="module")
def sub(tmp_path_factory):
    """A generated 2,000-row subsample in a folder of its own."""
    return generate_dsprites(tmp_path_factory.mktemp("sub"), subsample=2000, seed=0)


def _tiny(path, order=None, **change):
    """Write the full TINY grid in row-major order (rows permuted by ``order``); -> its path."""
    classes = np.stack(np.unravel_index(np.arange(np.prod(TINY)), TINY), axis=1)
    arrays = {"imgs": np.random.default_rng(0).integers(0, 2, (len(classes), 64, 64), np.uint8),
              "latents_values": classes * 0.5 + 1.0, "latents_classes": classes}
    if order is not None:
        arrays = {key: value[order] for key, value in arrays.items()}
    arrays.update(change)
    path.mkdir(exist_ok=True)
    file = path / "dsprites_tiny.npz"
    np.savez(file, **{key: value for key, value in arrays.items() if value is not None})
    return file


def test_reads_the_file_or_its_folder(sub):
    assert sub.name == FILENAME
    by_file, by_folder = read_dsprites(sub), read_dsprites(sub.parent)
    assert len(by_file.data) == len(by_folder.data) == 2000
    np.testing.assert_array_equal(by_file.classes, by_folder.classes)


def test_a_folder_needs_exactly_one_dsprites_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="found \\[\\]"):
        read_dsprites(tmp_path)
    _tiny(tmp_path)
    (tmp_path / "dsprites_other.npz").write_bytes((tmp_path / "dsprites_tiny.npz").read_bytes())
    with pytest.raises(FileNotFoundError, match="dsprites_other.npz"):
        read_dsprites(tmp_path)


def test_grid_values_sizes_and_factor_kinds(sub):
    d = read_dsprites(sub)
    assert d.sizes == SIZES == (1, 3, 6, 40, 32, 32)
    assert d.data.names == FACTORS
    for name, grid in zip(FACTORS, GRID, strict=True):
        np.testing.assert_allclose(d.data.grids[name], grid)
        np.testing.assert_array_equal(d.data.grid_index(name), d.classes[:, FACTORS.index(name)])
    assert d.data.categorical == {"shape"}
    assert d.data.periodic == {"orientation": pytest.approx(2 * np.pi)}


def test_full_grid_in_row_major_order_is_read(tmp_path):
    d = read_dsprites(_tiny(tmp_path))
    assert d.sizes == TINY
    np.testing.assert_array_equal(d.rows.reshape(-1), np.arange(np.prod(TINY)))
    np.testing.assert_allclose(d.data.grids["orientation"], [1.0, 1.5, 2.0])


def test_shuffled_full_grid_is_refused(tmp_path):
    order = np.random.default_rng(1).permutation(np.prod(TINY))
    file = _tiny(tmp_path, order=order)
    with pytest.raises(ValueError, match="row-major") as error:
        read_dsprites(file)
    assert str(file) in str(error.value) and "latents_classes" in str(error.value)


def test_lookup_finds_each_row_and_marks_absent_tuples(sub):
    d = read_dsprites(sub)
    np.testing.assert_array_equal(d.row_of(d.classes), np.arange(2000))
    assert (d.rows >= 0).sum() == 2000
    absent = np.argwhere(d.rows < 0)[:3]
    assert d.row_of(absent).tolist() == [-1, -1, -1]
    assert grid_rows(np.array([[1, 0], [0, 2]]), (2, 3)).tolist() == [[-1, -1, 1], [0, -1, -1]]
    with pytest.raises(ValueError, match="same classes"):
        grid_rows(np.array([[1, 0], [1, 0]]), (2, 3))


N = int(np.prod(TINY))


@pytest.mark.parametrize("change, key, message", [
    ({"imgs": None}, "imgs", "missing"),
    ({"latents_values": None}, "latents_values", "missing"),
    ({"latents_classes": None}, "latents_classes", "missing"),
    ({"latents_values": np.zeros((N, 5))}, "latents_values", "expected"),
    ({"latents_values": np.zeros((N, 6), np.float32)}, "latents_values", "float64"),
    ({"latents_classes": np.zeros((N, 6), np.int32)}, "latents_classes", "int64"),
    ({"imgs": np.zeros((N, 32, 32), np.uint8)}, "imgs", "expected"),
    ({"imgs": np.zeros((N, 64, 64), np.float32)}, "imgs", "uint8"),
    ({"imgs": np.zeros((N - 1, 64, 64), np.uint8)}, "imgs", "row counts disagree"),
    ({"latents_values": np.arange(N * 6.0).reshape(N, 6)}, "latents_values", "two values"),
    ({"latents_values": -np.stack(np.unravel_index(np.arange(N), TINY), axis=1) * 1.0},
     "latents_values", "do not increase"),
])
def test_bad_input_names_file_and_key(tmp_path, change, key, message):
    file = _tiny(tmp_path, **change)
    with pytest.raises(ValueError, match=message) as error:
        read_dsprites(file)
    assert str(file) in str(error.value) and f": {key}:" in str(error.value)


def test_a_file_that_is_not_an_npz_is_refused(tmp_path):
    file = tmp_path / FILENAME
    file.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not an npz"):
        read_dsprites(tmp_path)


def test_repeated_rows_of_a_subsample_are_refused(tmp_path):
    file = _tiny(tmp_path, order=np.r_[0, np.arange(N - 2)])
    with pytest.raises(ValueError, match="latents_classes: rows 0 and 1 have the same"):
        read_dsprites(file)


def test_loader_extracts_once_and_gives_uint8_0_255(sub, tmp_path):
    d = read_dsprites(sub, cache_dir=tmp_path)
    cache = tmp_path / f"{FILENAME}.imgs.npy"
    assert not cache.exists()
    images = d.data.load(np.array([7, 3, 1999]))
    assert images.shape == (3, 64, 64, 1) and images.dtype == np.uint8
    assert set(np.unique(images)) == {0, 255}
    with np.load(sub) as npz:
        np.testing.assert_array_equal(images[..., 0], npz["imgs"][[7, 3, 1999]] * 255)
    stamp = cache.stat().st_mtime_ns
    read_dsprites(sub, cache_dir=tmp_path).data.load(np.array([0]))
    assert cache.stat().st_mtime_ns == stamp


def test_loader_refuses_images_other_than_0_1(tmp_path):
    file = _tiny(tmp_path, imgs=np.full((N, 64, 64), 255, np.uint8))
    with pytest.raises(ValueError, match="imgs: values must be 0/1"):
        read_dsprites(file).data.load(np.array([0]))


def test_generator_is_deterministic(tmp_path):
    first = generate_dsprites(tmp_path / "a.npz", subsample=300, seed=4)
    again = generate_dsprites(tmp_path / "b.npz", subsample=300, seed=4)
    other = generate_dsprites(tmp_path / "c.npz", subsample=300, seed=5)
    with np.load(first) as a, np.load(again) as b, np.load(other) as c:
        assert sorted(a.files) == ["imgs", "latents_classes", "latents_values"]
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])
        assert not np.array_equal(a["latents_classes"], c["latents_classes"])
    with pytest.raises(ValueError, match="subsample"):
        generate_dsprites(tmp_path / "d.npz", subsample=0)


def test_shapes_differ_and_stay_inside_their_box():
    sprites = base_sprites()
    assert sprites.shape == (3, 6, 40, BOX, BOX)
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert (sprites[a] != sprites[b]).any(axis=(-1, -2)).all()
    assert not sprites[..., [0, -1], :].any() and not sprites[..., :, [0, -1]].any()
    areas = sprites.sum(axis=(-1, -2))
    assert (np.diff(areas, axis=1) > 0).all()  # larger scale, larger sprite


def test_sprites_move_with_pos_x(sub):
    d = read_dsprites(sub)
    offsets = np.round(GRID[4] * (64 - BOX)).astype(int)
    others = [j for j in range(6) if FACTORS[j] != "posX"]
    _, group, counts = np.unique(d.classes[:, others], axis=0, return_inverse=True,
                                 return_counts=True)
    first, second = np.flatnonzero(group == np.flatnonzero(counts >= 2)[0])[:2]
    a, b = d.data.load(np.array([first, second]))[..., 0]
    shift = offsets[d.classes[second, 4]] - offsets[d.classes[first, 4]]
    assert shift > 0 and a.any() and not np.array_equal(a, b)
    np.testing.assert_array_equal(np.roll(a, shift, axis=1), b)


def test_prepare_command_writes_the_file(tmp_path, capsys):
    assert prepare(["dsprites", str(tmp_path), "--subsample", "50", "--seed", "2"]) == 0
    assert f"{tmp_path / FILENAME}: 50 images" in capsys.readouterr().out
    assert len(read_dsprites(tmp_path).data) == 50
