"""CLEVR with masks: the TFRecord reader and writer, the uint8 cache, and the stand-in."""

import gzip
import struct

import numpy as np
import pytest

import blockident.data.clevr.format as fmt
from blockident.data import cache
from blockident.data.clevr.format import (
    CROP,
    FEATURES,
    FILENAME,
    cache_folder,
    encode_example,
    masked_crc,
    parse_example,
    read_clevr,
    read_scenes,
    shape_of,
    split_bounds,
    write_records,
    write_tfrecords,
)
from blockident.data.clevr.generate import generate_clevr, render_scene
from blockident.errors import DataError
from blockident.prepare import main as prepare

N = 20


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """A generated 20-scene file in a folder of its own."""
    return generate_clevr(tmp_path_factory.mktemp("clevr"), N, seed=0)


def _random_scene(rng) -> dict:
    scene = {}
    for name in FEATURES:
        if name in fmt.BYTE_FEATURES:
            scene[name] = rng.integers(0, 256, shape_of(name), dtype=np.uint8)
        else:
            scene[name] = rng.normal(size=shape_of(name)).astype(np.float32)
    return scene


# -- a slow, generic protobuf decode as the reference ------------------------------------------
def _varint(buf, pos):
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _message(buf):
    """[(field number, wire type, value)] of one message; length-delimited values as bytes."""
    out, pos = [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        if key & 7 == 2:
            length, pos = _varint(buf, pos)
            out.append((key >> 3, 2, bytes(buf[pos:pos + length])))
            pos += length
        elif key & 7 == 5:
            out.append((key >> 3, 5, bytes(buf[pos:pos + 4])))
            pos += 4
        else:
            raise AssertionError(f"wire type {key & 7}")
    return out


def _reference_decode(buf) -> dict:
    """Feature name -> list of bytes (BytesList) or list of floats (FloatList)."""
    out = {}
    (_, _, features), = _message(buf)
    for _, _, entry in _message(features):
        fields = dict((n, v) for n, _, v in _message(entry))
        name = fields[1].decode()
        (kind, _, value), = _message(fields[2])
        if kind == 1:
            out[name] = [v for _, _, v in _message(value)]
        else:
            floats = []
            for _, _, v in _message(value):
                floats += list(struct.unpack(f"<{len(v) // 4}f", v))
            out[name] = floats
    return out


def _frame(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return (length + struct.pack("<I", masked_crc(length)) + data
            + struct.pack("<I", masked_crc(data)))


# -- tests ---------------------------------------------------------------------------------------
def test_masked_crc_matches_tfrecord():
    # crc32c("123456789") = 0xE3069283 (the standard check value), then TFRecord's mask
    crc = 0xE3069283
    assert masked_crc(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_round_trip_equals_the_scenes(tmp_path):
    rng = np.random.default_rng(0)
    scenes = [_random_scene(rng) for _ in range(3)]
    file = write_tfrecords(tmp_path / FILENAME, scenes)
    with gzip.open(file) as f:  # a standard GZIP stream
        assert f.read(8) == struct.pack("<Q", len(encode_example(scenes[0])))
    read = list(read_scenes(file))
    assert len(read) == 3
    for got, want in zip(read, scenes, strict=True):
        assert set(got) == set(FEATURES)
        for name in FEATURES:
            assert got[name].shape == want[name].shape
            np.testing.assert_array_equal(got[name], want[name])


def test_fast_parser_agrees_with_a_slow_reference_decode():
    rng = np.random.default_rng(1)
    scene = _random_scene(rng)
    scene["image"] = rng.integers(0, 256, 90, dtype=np.uint8)  # a small record
    scene["mask"] = rng.integers(0, 256, 40, dtype=np.uint8)
    buf = encode_example(scene)
    reference = _reference_decode(buf)
    assert set(reference) == set(FEATURES)
    spans = fmt._feature_spans(buf, "x")
    for name in ("image", "mask", "size", "color"):
        assert all(len(v) == 1 for v in reference[name])
        _, start, end = spans[name]
        fast = fmt._one_byte_strings(buf, start, end, name)
        np.testing.assert_array_equal(fast, [v[0] for v in reference[name]])
    small = [n for n in FEATURES if n not in ("image", "mask")]
    parsed = parse_example(buf, names=small)
    for name in fmt.FLOAT_FEATURES:
        np.testing.assert_array_equal(parsed[name], np.float32(reference[name]))


def test_unpacked_floats_and_extra_features_parse():
    scene = _random_scene(np.random.default_rng(2))
    buf = encode_example(scene)
    # append an unpacked FloatList feature "x2" and an Int64List feature "extra" to the map
    floats = b"".join(b"\x0d" + struct.pack("<f", v) for v in (1.5, -2.0))
    extra = (fmt._field(1, fmt._field(1, b"x2") + fmt._field(2, fmt._field(2, floats)))
             + fmt._field(1, fmt._field(1, b"extra") + fmt._field(2, fmt._field(3, b"\x08\x01"))))
    (_, _, features), = _message(buf)
    parsed = fmt._feature_spans(fmt._field(1, features + extra), "x")
    kind, start, end = parsed["x2"]
    np.testing.assert_array_equal(fmt._floats(fmt._field(1, features + extra), start, end, ""),
                                  [1.5, -2.0])
    assert parsed["extra"][0] == 3


def _records_of(file):
    with gzip.open(file) as f:
        raw = f.read()
    records, pos = [], 0
    while pos < len(raw):
        (length,) = struct.unpack("<Q", raw[pos:pos + 8])
        records.append(raw[pos + 12:pos + 12 + length])
        pos += 16 + length
    return records


def test_truncated_file_names_file_and_record(standin, tmp_path):
    data = standin.read_bytes()
    cut = tmp_path / FILENAME
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(DataError, match=rf"{cut}: record \d+: (data|length): truncated"):
        list(fmt.iter_records(cut))


def test_flipped_byte_is_a_crc_mismatch(standin, tmp_path):
    with gzip.open(standin) as f:
        raw = bytearray(f.read())
    (length,) = struct.unpack("<Q", raw[:8])
    flipped = raw.copy()
    flipped[16 + length + 12 + 5000] ^= 0x01  # inside the data of record 1
    bad = tmp_path / "data" / FILENAME
    bad.parent.mkdir()
    bad.write_bytes(gzip.compress(bytes(flipped), 1))
    with pytest.raises(DataError, match=rf"{bad}: record 1: data: CRC mismatch"):
        list(fmt.iter_records(bad))
    header = raw.copy()
    header[16 + length + 2] ^= 0x01  # the length of record 1
    bad.write_bytes(gzip.compress(bytes(header), 1))
    with pytest.raises(DataError, match=rf"{bad}: record 1: length: CRC mismatch"):
        list(fmt.iter_records(bad))


def test_wrong_length_and_missing_feature_name_the_field(tmp_path):
    scene = _random_scene(np.random.default_rng(3))
    good = encode_example(scene)
    short = dict(scene, mask=scene["mask"].reshape(-1)[:-1])
    file = write_records(tmp_path / FILENAME, [good, encode_example(short)])
    with pytest.raises(DataError, match=rf"{file}: record 1: mask: 844799 values, "
                                        r"expected 844800"):
        list(read_scenes(file))
    missing = fmt._field(1, b"".join(
        fmt._field(1, fmt._field(1, name.encode()) + fmt._field(2, fmt._field(2, fmt._field(
            1, np.zeros(FEATURES[name], "<f4").tobytes()))))
        for name in fmt.FLOAT_FEATURES if name != "rotation"))
    write_records(file, [missing])
    with pytest.raises(DataError, match=rf"{file}: record 0: image: feature missing"):
        list(read_scenes(file))
    with pytest.raises(DataError, match=r"record 0: rotation: feature missing"):
        parse_example(missing, f"{file}: record 0", names=["x", "rotation"])


def test_bad_gzip(tmp_path):
    plain = tmp_path / "plain.tfrecords"
    plain.write_bytes(_frame(b"abc"))
    with pytest.raises(DataError, match=rf"{plain}: not a GZIP-compressed"):
        list(fmt.iter_records(plain))
    garbage = tmp_path / "garbage.tfrecords"
    garbage.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4)
    with pytest.raises(DataError, match=rf"{garbage}: record 0: length: bad GZIP data"):
        list(fmt.iter_records(garbage))


def test_split_bounds():
    assert split_bounds(100_000) == {"train": (0, 70_000), "val": (70_000, 85_000),
                                     "test": (85_000, 100_000)}
    assert split_bounds(N) == {"train": (0, 14), "val": (14, 17), "test": (17, 20)}


def test_conversion_crops_resizes_and_splits(standin, tmp_path):
    clevr = read_clevr(standin.parent, size=32, cache_dir=tmp_path)
    assert clevr.images.shape == (N, 3, 32, 32) and clevr.images.dtype == np.uint8
    assert {k: len(clevr.split(k)) for k in ("train", "val", "test")} == \
        {"train": 14, "val": 3, "test": 3}
    assert clevr.test_masks.shape == (3, 32, 32) and clevr.test_masks.dtype == np.uint8
    assert clevr.test_attributes["pixel_coords"].shape == (3, 11, 3)
    assert clevr.test_attributes["color"].shape == (3, 11)
    scenes = list(read_scenes(standin))
    r0, r1, c0, c1 = CROP
    for t, scene in enumerate(scenes[17:]):
        index = (np.arange(32) * 6 + 3)  # centre sampling of 192 -> 32 pixels
        ids = scene["mask"][..., 0].argmax(0)[r0:r1, c0:c1][index][:, index]
        np.testing.assert_array_equal(clevr.test_masks[t], ids)
        np.testing.assert_array_equal(clevr.test_attributes["x"][t], scene["x"])
        # the image is the crop, downscaled (compare means over 6x6 blocks: antialiased)
        crop = scene["image"][r0:r1, c0:c1].astype(float)
        blocks = crop.reshape(32, 6, 32, 6, 3).mean((1, 3)).transpose(2, 0, 1)
        assert np.abs(clevr.images[17 + t] - blocks).mean() < 4


def test_cache_reused_and_redone_when_the_source_changes(tmp_path, monkeypatch):
    file = generate_clevr(tmp_path / "data", 6, seed=1)
    calls = []
    convert = fmt.convert
    monkeypatch.setattr(fmt, "convert", lambda *a, **k: calls.append(1) or convert(*a, **k))
    first = read_clevr(file, size=16)
    assert cache_folder(file, 16) == file.parent / ".blockident_cache" / f"{FILENAME}.16px"
    again = read_clevr(file, size=16)
    assert len(calls) == 1
    np.testing.assert_array_equal(first.images, again.images)
    read_clevr(file, size=24)  # another size: another entry
    assert len(calls) == 2
    generate_clevr(file, 5, seed=2)
    changed = read_clevr(file, size=16)
    assert len(calls) == 3 and len(changed) == 5


def test_interrupted_conversion_leaves_no_cache(tmp_path, monkeypatch):
    file = generate_clevr(tmp_path / "data", 6, seed=1)
    read_clevr(file, size=16, cache_dir=tmp_path / "cache")
    generate_clevr(file, 6, seed=3)  # the source changes, the conversion is redone ...
    convert_scene, count = fmt.convert_scene, []

    def failing(*args):
        count.append(1)
        if len(count) == 4:
            raise KeyboardInterrupt  # ... and interrupted mid-way
        return convert_scene(*args)

    monkeypatch.setattr(fmt, "convert_scene", failing)
    with pytest.raises(KeyboardInterrupt):
        read_clevr(file, size=16, cache_dir=tmp_path / "cache")
    folder = cache_folder(file, 16, tmp_path / "cache")
    assert cache.read(folder, fmt._settings(16, fmt.FRACTIONS)) is None  # nothing vouches
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [folder.name]  # no temp
    monkeypatch.setattr(fmt, "convert_scene", convert_scene)
    clevr = read_clevr(file, size=16, cache_dir=tmp_path / "cache")
    assert len(count) == 4 and clevr.test_attributes["x"].shape == (1, 11)
    scenes = list(read_scenes(file))
    np.testing.assert_array_equal(clevr.test_attributes["x"][0], scenes[-1]["x"])


def test_generator_is_deterministic_and_in_the_crop(tmp_path):
    a, b = render_scene(0, 3), render_scene(0, 3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(render_scene(1, 3)["image"], a["image"])
    assert prepare(["clevr", str(tmp_path / "x"), "--scenes", "4", "--seed", "5"]) == 0
    assert prepare(["clevr", str(tmp_path / "y"), "--scenes", "4", "--seed", "5"]) == 0
    assert (tmp_path / "x" / FILENAME).read_bytes() == (tmp_path / "y" / FILENAME).read_bytes()
    r0, r1, c0, c1 = CROP
    for i in range(10):
        scene = render_scene(0, i)
        n = int((scene["shape"] > 0).sum())
        assert 3 <= n <= 6 and scene["mask"].shape == (11, 240, 320, 1)
        assert set(np.unique(scene["mask"])) <= {0, 255}
        masks = scene["mask"][..., 0] > 0
        assert np.all(masks.sum(0) == 1)  # every pixel belongs to exactly one entity
        inside = masks[1:n + 1, r0:r1, c0:c1].sum() / masks[1:n + 1].sum()
        assert inside > 0.95
        visible = masks[1:n + 1].any((1, 2))
        np.testing.assert_array_equal(scene["visibility"][1:n + 1] > 0, visible)
