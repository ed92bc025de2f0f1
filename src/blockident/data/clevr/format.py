"""CLEVR with masks (DeepMind ``multi_object_datasets``): the public TFRecord file, read, written.

The public file ``clevr_with_masks_train.tfrecords`` (100,000 scenes) is one GZIP stream of
TFRecords. A record is ``uint64 length``, ``uint32 masked crc32c(length bytes)``, ``data``,
``uint32 masked crc32c(data)`` (little endian; masked crc = ((crc >> 15) | (crc << 17)) +
0xa282ead8 mod 2**32), and its data is a serialized ``tf.train.Example`` with the features of
:data:`FEATURES`:

- ``image``: 240*320*3 one-byte strings, uint8 in HWC order;
- ``mask``: 11*240*320*1 one-byte strings, entity-major [11, 240, 320, 1], values 0 or 255,
  entity 0 the background;
- ``x``, ``y``, ``z``, ``rotation``, ``visibility``: 11 floats; ``pixel_coords``: 11*3 floats;
- ``size``, ``material``, ``shape``, ``color``: 11 one-byte strings, uint8 codes, 0 where there is
  no object. The names we assume for the codes are :data:`COLORS`, :data:`SHAPES`,
  :data:`MATERIALS` and :data:`SIZES` (code k is name k - 1).

No TensorFlow: the protobuf wire format of ``Example`` / ``Features`` / ``map<string, Feature>``
/ ``BytesList`` / ``FloatList`` is parsed by hand. A BytesList of one-byte strings is a regular
run of the 3-byte triples (0x0A, 0x01, byte), so it is checked and read with numpy as a strided
view, without a copy. Decompression uses zlib-ng (several times faster than zlib; the stdlib
``zlib`` when zlib-ng is not installed); while converting, a background thread inflates and
checks the records as the main thread parses and resizes them. Every error is a
:class:`~blockident.errors.DataError` naming the file, the record index and the field.

:func:`read_clevr` converts the file once into a uint8 cache (:func:`convert`): the standard
CLEVR crop rows 29:221, columns 64:256 (192x192), resized to ``size`` (images bilinear with
antialiasing, masks nearest, stored as the entity id 0..10 per pixel), split in record order
into the first 70 % (train), the next 15 % (val) and the last 15 % (test); only the test scenes
keep masks and attributes.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import struct
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import crc32c
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from blockident.data import cache
from blockident.errors import DataError, MissingError
from blockident.io import atomic_write

try:  # zlib-ng inflates these records about five times faster than zlib
    from zlib_ng import zlib_ng as zlib
except ImportError:  # pragma: no cover - zlib-ng is a dependency
    import zlib

log = logging.getLogger(__name__)

FILENAME = "clevr_with_masks_train.tfrecords"
HEIGHT, WIDTH = 240, 320
MAX_OBJECTS = 11  # entities per scene: the background and up to 10 objects
CROP = (29, 221, 64, 256)  # rows start, stop, columns start, stop: the standard 192x192 crop
FRACTIONS = (0.7, 0.15, 0.15)  # train, val, test, in record order
SPLITS = ("train", "val", "test")
COLORS = ("gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow")
SHAPES = ("cube", "sphere", "cylinder")
MATERIALS = ("rubber", "metal")
SIZES = ("large", "small")
CATEGORIES = {"color": COLORS, "shape": SHAPES, "material": MATERIALS, "size": SIZES}
BYTE_FEATURES = {"image": HEIGHT * WIDTH * 3, "mask": MAX_OBJECTS * HEIGHT * WIDTH,
                 "size": MAX_OBJECTS, "material": MAX_OBJECTS, "shape": MAX_OBJECTS,
                 "color": MAX_OBJECTS}
FLOAT_FEATURES = {"x": MAX_OBJECTS, "y": MAX_OBJECTS, "z": MAX_OBJECTS,
                  "rotation": MAX_OBJECTS, "visibility": MAX_OBJECTS,
                  "pixel_coords": MAX_OBJECTS * 3}
FEATURES = {**BYTE_FEATURES, **FLOAT_FEATURES}  # name -> element count
SHAPE_OF = {"image": (HEIGHT, WIDTH, 3), "mask": (MAX_OBJECTS, HEIGHT, WIDTH, 1),
            "pixel_coords": (MAX_OBJECTS, 3)}  # the rest: (MAX_OBJECTS,)
ATTRIBUTES = ("x", "y", "z", "rotation", "visibility", "pixel_coords", "size", "material",
              "shape", "color")  # kept for the test scenes
CHUNK = 1 << 20  # compressed bytes read at a time
_MASK_DELTA = 0xA282EAD8


def shape_of(name: str) -> tuple[int, ...]:
    """The array shape of feature ``name`` in a scene."""
    return SHAPE_OF.get(name, (MAX_OBJECTS,))


def masked_crc(data) -> int:
    """TFRecord's masked crc32c of ``data``."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


# -- protobuf wire format --------------------------------------------------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2) with number ``tag``."""
    return _varint(tag << 3 | 2) + _varint(len(payload)) + payload


def _bytes_list(values: np.ndarray) -> bytes:
    """A BytesList of one-byte strings: the triples (0x0A, 0x01, value)."""
    triples = np.empty((values.size, 3), np.uint8)
    triples[:, 0], triples[:, 1], triples[:, 2] = 0x0A, 0x01, values.reshape(-1)
    return triples.tobytes()


def encode_example(scene: dict[str, np.ndarray]) -> bytes:
    """The serialized ``tf.train.Example`` of ``scene`` (feature name -> array; one-byte features
    uint8, float features float32; every feature of :data:`FEATURES`, with any element count)."""
    entries = []
    for name in FEATURES:
        value = np.asarray(scene[name])
        if name in BYTE_FEATURES:
            feature = _field(1, _bytes_list(value.astype(np.uint8)))
        else:
            feature = _field(2, _field(1, value.astype("<f4").tobytes()))
        entries.append(_field(1, _field(1, name.encode()) + _field(2, feature)))
    return _field(1, b"".join(entries))


def _read_varint(buf: bytes, pos: int, end: int, where: str) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise DataError(f"{where}: truncated protobuf varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes, start: int, end: int, where: str) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, start, end) of every field in ``buf[start:end]``; for wire type
    2 the span is the payload, for the others the raw value bytes."""
    pos = start
    while pos < end:
        key, pos = _read_varint(buf, pos, end, where)
        number, wire = key >> 3, key & 7
        if wire == 2:
            length, pos = _read_varint(buf, pos, end, where)
            stop = pos + length
        elif wire == 0:
            _, stop = _read_varint(buf, pos, end, where)
        elif wire in (1, 5):
            stop = pos + (8 if wire == 1 else 4)
        else:
            raise DataError(f"{where}: unsupported protobuf wire type {wire}")
        if stop > end:
            raise DataError(f"{where}: protobuf field {number} runs past its message")
        yield number, wire, pos, stop
        pos = stop


def _feature_spans(buf: bytes, where: str) -> dict[str, tuple[int, int, int]]:
    """Feature name -> (kind field number: 1 bytes, 2 float, 3 int64; start; end of the list)."""
    spans = {}
    end = len(buf)
    for number, wire, start, stop in _fields(buf, 0, end, where):
        if number != 1 or wire != 2:
            continue  # Example.features is field 1
        for n, w, entry_start, entry_stop in _fields(buf, start, stop, where):
            if n != 1 or w != 2:
                continue  # Features.feature (a map) is field 1
            name, value = None, None
            for n2, w2, s2, e2 in _fields(buf, entry_start, entry_stop, where):
                if n2 == 1 and w2 == 2:
                    name = bytes(buf[s2:e2]).decode("utf-8", "replace")
                elif n2 == 2 and w2 == 2:
                    value = (s2, e2)
            if name is None:
                continue
            kind = (0, 0, 0)
            if value is not None:
                for n3, w3, s3, e3 in _fields(buf, value[0], value[1], f"{where}: {name}"):
                    if w3 == 2 and n3 in (1, 2, 3):
                        kind = (n3, s3, e3)
            spans[name] = kind
    return spans


def _one_byte_strings(buf: bytes, start: int, end: int, where: str) -> np.ndarray:
    """(n,) uint8 strided view of a BytesList of one-byte strings in ``buf[start:end]``."""
    if (end - start) % 3:
        raise DataError(f"{where}: not a list of one-byte strings ({end - start} bytes)")
    triples = np.frombuffer(buf, np.uint8, end - start, start).reshape(-1, 3)
    if len(triples) and not (triples[:, :2].view("<u2") == 0x010A).all():
        raise DataError(f"{where}: not a list of one-byte strings")
    return triples[:, 2]


def _floats(buf: bytes, start: int, end: int, where: str) -> np.ndarray:
    """(n,) float32 of a FloatList (packed or not) in ``buf[start:end]``."""
    parts = []
    for number, wire, s, e in _fields(buf, start, end, where):
        if number == 1 and wire == 2:
            if (e - s) % 4:
                raise DataError(f"{where}: packed floats of {e - s} bytes")
            parts.append(np.frombuffer(buf, "<f4", (e - s) // 4, s))
        elif number == 1 and wire == 5:
            parts.append(np.frombuffer(buf, "<f4", 1, s))
    return np.concatenate(parts) if len(parts) != 1 else parts[0]


def parse_example(buf: bytes, where: str = "example",
                  names: Iterable[str] = FEATURES) -> dict[str, np.ndarray]:
    """Feature name -> flat array of the serialized ``tf.train.Example`` ``buf``, for ``names``.

    One-byte string lists come back as uint8 strided views into ``buf`` (no copy), float lists
    as float32. Raises :class:`DataError` ``"{where}: {feature}: ..."`` for a missing feature,
    a feature of the wrong kind or the wrong element count (:data:`FEATURES`).
    """
    spans = _feature_spans(buf, where)
    out = {}
    for name in names:
        at = f"{where}: {name}"
        if name not in spans:
            raise DataError(f"{at}: feature missing (found: {', '.join(sorted(spans)) or 'none'})")
        kind, start, end = spans[name]
        want = 1 if name in BYTE_FEATURES else 2
        if kind != want:
            raise DataError(f"{at}: expected a {('BytesList', 'FloatList')[want - 1]}, found "
                            f"{('no value', 'a BytesList', 'a FloatList', 'an Int64List')[kind]}")
        value = (_one_byte_strings if want == 1 else _floats)(buf, start, end, at)
        if len(value) != FEATURES[name]:
            raise DataError(f"{at}: {len(value)} values, expected {FEATURES[name]} "
                            f"(shape {list(shape_of(name))})")
        out[name] = value
    return out


def decode_scene(buf: bytes, where: str = "example") -> dict[str, np.ndarray]:
    """Every feature of the Example ``buf`` as an array of its shape (:func:`shape_of`), copied."""
    return {name: np.array(value).reshape(shape_of(name))
            for name, value in parse_example(buf, where).items()}


# -- TFRecord framing in a GZIP stream ---------------------------------------------------------
class _Inflate:
    """Exact-length reads of the decompressed GZIP stream of an open file (members in turn)."""

    def __init__(self, f, file: Path):
        self.f, self.file, self.pending = f, file, b""
        self.inflater = None
        self.done = False  # the file is exhausted and the last member complete
        self.read_bytes = 0  # compressed bytes consumed
        head = f.read(2)
        f.seek(0)
        if head != b"\x1f\x8b":
            raise DataError(f"{file}: not a GZIP-compressed TFRecord file (starts with "
                            f"{head!r}, not the GZIP magic 1f8b)")

    def read(self, n: int, where: str) -> bytes:
        """Up to ``n`` bytes; fewer only at the end of the stream."""
        parts, have = [], 0
        while have < n:
            if self.inflater is None or self.inflater.eof:
                if self.inflater is not None:
                    self.pending = self.inflater.unused_data + self.pending
                if not self.pending:
                    self.pending = self.f.read(CHUNK)
                    self.read_bytes += len(self.pending)
                if not self.pending:
                    self.done = True
                    break
                self.inflater = zlib.decompressobj(31)
            if not self.pending:
                self.pending = self.f.read(CHUNK)
                self.read_bytes += len(self.pending)
                if not self.pending:
                    raise DataError(f"{where}: truncated file (the GZIP stream ends early)")
            try:
                part = self.inflater.decompress(self.pending, n - have)
            except zlib.error as error:
                raise DataError(f"{where}: bad GZIP data ({error})") from None
            self.pending = self.inflater.unconsumed_tail
            parts.append(part)
            have += len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)


def iter_records(path: Path | str) -> Iterator[bytes]:
    """The data of every record of the GZIP TFRecord file ``path``, lengths and CRCs checked."""
    file = Path(path)
    with open(file, "rb") as f:
        yield from _records(_Inflate(f, file), file)


def read_scenes(path: Path | str) -> Iterator[dict[str, np.ndarray]]:
    """Every scene of the file ``path`` with all its features (:func:`decode_scene`)."""
    for index, data in enumerate(iter_records(path)):
        yield decode_scene(data, f"{path}: record {index}")


def write_records(path: Path | str, records: Iterable[bytes], level: int = 1) -> Path:
    """Write the records ``records`` (serialized data) as a GZIP TFRecord file, atomically."""

    def write(tmp: str) -> None:
        deflate = zlib.compressobj(level, zlib.DEFLATED, 31)
        with open(tmp, "wb") as f:
            for data in records:
                length = struct.pack("<Q", len(data))
                for part in (length, struct.pack("<I", masked_crc(length)), data,
                             struct.pack("<I", masked_crc(data))):
                    f.write(deflate.compress(part))
            f.write(deflate.flush())

    return atomic_write(path, write)


def write_tfrecords(path: Path | str, scenes: Iterable[dict[str, np.ndarray]],
                    level: int = 1) -> Path:
    """Write ``scenes`` (see :func:`encode_example`) as a GZIP TFRecord file, atomically."""
    return write_records(path, (encode_example(scene) for scene in scenes), level)


def find_file(root: Path | str) -> Path:
    """The TFRecord file ``root``, or :data:`FILENAME` in the folder ``root``."""
    root = Path(root)
    if root.is_dir():
        root = root / FILENAME
    if not root.is_file():
        raise MissingError(f"{root}: no such CLEVR-with-masks file (pass the .tfrecords file or "
                           f"the folder holding {FILENAME})")
    return root


# -- conversion into a uint8 cache -----------------------------------------------------------
def split_bounds(n: int, fractions: tuple[float, ...] = FRACTIONS) -> dict[str, tuple[int, int]]:
    """Split name -> (first, stop) scene of the record-order split of ``n`` scenes."""
    cuts = np.round(np.cumsum((0.0, *fractions)) * n).astype(int).clip(0, n)
    return {name: (int(cuts[i]), int(cuts[i + 1])) for i, name in enumerate(SPLITS)}


def _sample_index(size: int, length: int) -> np.ndarray:
    """The source pixel (centre sampling) of each of ``size`` pixels over ``length`` pixels."""
    return ((np.arange(size) + 0.5) * length / size).astype(np.int64)


def convert_scene(fields: dict[str, np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    """(3, size, size) image and (size, size) entity ids of a parsed scene: the standard crop,
    the image resized bilinear with antialiasing, the masks nearest (argmax over entities)."""
    r0, r1, c0, c1 = CROP
    image = fields["image"].reshape(HEIGHT, WIDTH, 3)[r0:r1, c0:c1]
    if image.shape[:2] != (size, size):
        image = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(
            (size, size), Image.Resampling.BILINEAR))
    rows = r0 + _sample_index(size, r1 - r0)
    cols = c0 + _sample_index(size, c1 - c0)
    masks = fields["mask"].reshape(MAX_OBJECTS, HEIGHT, WIDTH)[:, rows][:, :, cols]
    return np.ascontiguousarray(image.transpose(2, 0, 1)), masks.argmax(0).astype(np.uint8)


class _NpyAppender:
    """A .npy file of rows of one shape written in turn; the row count is set on close."""

    HEADER = 128  # bytes of magic, header length and the padded header dict

    def __init__(self, path: Path, row_shape: tuple[int, ...], dtype=np.uint8):
        self.path, self.row_shape, self.dtype, self.rows = path, row_shape, np.dtype(dtype), 0
        self.f = open(path, "wb")
        self.f.write(self._header(0))

    def _header(self, rows: int) -> bytes:
        text = repr({"descr": self.dtype.str, "fortran_order": False,
                     "shape": (rows, *self.row_shape)})
        text = text.ljust(self.HEADER - 10 - 1) + "\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")

    def append(self, rows: np.ndarray) -> None:
        self.f.write(np.ascontiguousarray(rows, self.dtype).tobytes())
        self.rows += len(rows)

    def close(self) -> None:
        self.f.seek(0)
        self.f.write(self._header(self.rows))
        self.f.close()


@dataclass(eq=False)
class Clevr:
    """A converted CLEVR-with-masks file (see :func:`read_clevr`).

    ``images``: uint8 (N, 3, size, size) of every scene in record order (memory-mapped);
    ``bounds``: split name -> (first, stop) scene; ``test_masks``: uint8 (T, size, size) entity
    ids of the test scenes; ``test_attributes``: name -> (T, 11) or (T, 11, 3) arrays of the test
    scenes (:data:`ATTRIBUTES`); ``folder``: the cache folder; ``source``: the TFRecord file.
    """

    source: Path
    folder: Path
    size: int
    images: np.ndarray
    bounds: dict[str, tuple[int, int]]
    test_masks: np.ndarray
    test_attributes: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.images)

    def split(self, name: str) -> np.ndarray:
        """uint8 (n, 3, size, size) images of split ``name`` (a memory-mapped view)."""
        first, stop = self.bounds[name]
        return self.images[first:stop]


def _settings(size: int, fractions: tuple[float, ...]) -> dict:
    return {"format": "clevr_with_masks", "version": 1, "size": int(size), "crop": list(CROP),
            "fractions": [float(f) for f in fractions]}


def cache_folder(file: Path, size: int, cache_dir: Path | str | None = None) -> Path:
    """Where the cache of ``file`` at side ``size`` lives (default: beside it, in
    ``.blockident_cache``)."""
    folder = Path(cache_dir) if cache_dir is not None else file.parent / ".blockident_cache"
    return folder / f"{file.name}.{size}px"


def _load(file: Path, folder: Path, size: int, doc: dict) -> Clevr:
    bounds = {k: tuple(v) for k, v in doc["bounds"].items()}
    return Clevr(file, folder, size, np.load(folder / "images.npy", mmap_mode="r"), bounds,
                 np.load(folder / "test_masks.npy", mmap_mode="r"),
                 {name: np.load(folder / f"test_{name}.npy") for name in ATTRIBUTES})


def read_clevr(root: Path | str, size: int = 64, cache_dir: Path | str | None = None,
               fractions: tuple[float, ...] = FRACTIONS) -> Clevr:
    """The converted scenes of the TFRecord file ``root`` (or the folder holding it).

    The file is converted once (:func:`convert`) into ``cache_folder(file, size, cache_dir)``;
    the cache is reused while its settings (size, crop, fractions) match and the file keeps its
    size and modification time, and converted again otherwise.
    """
    file = find_file(root)
    folder = cache_folder(file, size, cache_dir)
    settings, stamps = _settings(size, fractions), [cache.stamp(file)]
    doc = cache.read(folder, settings)
    if doc is None or cache.changed(stamps, doc["stamps"]):
        doc = convert(file, folder, size, fractions)
    return _load(file, folder, size, doc)


def convert(file: Path, folder: Path, size: int,
            fractions: tuple[float, ...] = FRACTIONS) -> dict:
    """Convert ``file`` into the cache folder ``folder``; returns its manifest.

    The conversion writes into a temporary folder beside ``folder`` and renames it at the end;
    the manifest is removed first and written last, so an interrupted conversion leaves no cache
    that a later read would use.
    """
    file, folder = Path(file), Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    stamps = [cache.stamp(file)]
    cache.manifest_path(folder).unlink(missing_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes the folder private
        n = _convert_into(file, tmp, size, fractions)
        bounds = split_bounds(n, fractions)
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return cache.write(folder, _settings(size, fractions), stamps, scenes=n,
                       bounds={k: list(v) for k, v in bounds.items()})


def _convert_into(file: Path, tmp: Path, size: int, fractions: tuple[float, ...]) -> int:
    """Write images.npy, test_masks.npy and test_<attribute>.npy into ``tmp``; -> scenes.

    Masks and attributes of every scene go to temporary files first (the number of scenes, and
    so where the test split starts, is known only at the end); the test rows are copied out.
    """
    images = _NpyAppender(tmp / "images.npy", (3, size, size))
    kept = {"masks": _NpyAppender(tmp / ".all_masks.npy", (size, size))}
    for name in ATTRIBUTES:
        kept[name] = _NpyAppender(tmp / f".all_{name}.npy", shape_of(name),
                                  np.float32 if name in FLOAT_FEATURES else np.uint8)
    batch: dict[str, list] = {name: [] for name in ("images", *kept)}

    def flush() -> None:
        images.append(np.stack(batch["images"]))
        for name, appender in kept.items():
            appender.append(np.stack(batch[name]).reshape(-1, *appender.row_shape))
        for rows in batch.values():
            rows.clear()

    total = file.stat().st_size
    log.info("%s: converting to %dx%d px into %s", file, size, size, tmp.parent)
    bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"converting {file.name}",
               leave=False, disable=not sys.stderr.isatty())
    n = 0
    try:
        with open(file, "rb") as f:
            stream = _Inflate(f, file)
            with closing(_prefetched(_records(stream, file))) as records:
                for n, data in enumerate(records, 1):
                    fields = parse_example(data, f"{file}: record {n - 1}")
                    image, ids = convert_scene(fields, size)
                    batch["images"].append(image)
                    batch["masks"].append(ids)
                    for name in ATTRIBUTES:
                        batch[name].append(fields[name].copy())  # not a view of the record
                    if len(batch["images"]) == 64:
                        flush()
                        bar.update(stream.read_bytes - bar.n)
            if batch["images"]:
                flush()
        bar.update(total - bar.n)
    finally:
        bar.close()
        for appender in (images, *kept.values()):
            appender.close()
    if n == 0:
        raise DataError(f"{file}: no records")
    first, stop = split_bounds(n, fractions)["test"]
    for name in kept:
        temporary = tmp / f".all_{name}.npy"
        np.save(tmp / f"test_{name}.npy", np.load(temporary, mmap_mode="r")[first:stop])
        temporary.unlink()
    (tmp / "info.json").write_text(json.dumps({"source": str(file), "scenes": n}))
    log.info("%s: converted %d scenes", file, n)
    return n


def _prefetched(items: Iterator, depth: int = 8) -> Iterator:
    """``items`` made by a background thread, up to ``depth`` ahead: inflating and checking the
    records (zlib-ng and crc32c release the GIL) overlaps with converting them."""
    ahead: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                ahead.put((True, item))
            ahead.put((True, end))
        except BaseException as error:  # handed to the consumer, raised there
            ahead.put((False, error))

    thread = threading.Thread(target=produce, daemon=True, name="clevr-inflate")
    thread.start()
    try:
        while True:
            ok, item = ahead.get()
            if not ok:
                raise item
            if item is end:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                ahead.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


def _records(stream: _Inflate, file: Path) -> Iterator[bytes]:
    """Records of an open stream (the framing of :func:`iter_records`)."""
    index = 0
    while True:
        where = f"{file}: record {index}"
        header = stream.read(12, f"{where}: length")
        if not header:
            return
        if len(header) < 12:
            raise DataError(f"{where}: length: truncated record ({len(header)} of 12 header "
                            f"bytes)")
        length, length_crc = struct.unpack("<QI", header)
        if masked_crc(header[:8]) != length_crc:
            raise DataError(f"{where}: length: CRC mismatch (corrupt record header)")
        data = stream.read(length + 4, f"{where}: data")
        if len(data) < length + 4:
            raise DataError(f"{where}: data: truncated record ({len(data)} of {length + 4} "
                            f"bytes)")
        (data_crc,) = struct.unpack("<I", data[length:])
        data = memoryview(data)[:length]
        if masked_crc(data) != data_crc:
            raise DataError(f"{where}: data: CRC mismatch (corrupt record)")
        yield data
        index += 1
