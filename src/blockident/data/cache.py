"""Caches of derived data: one mechanism for every file blockident derives from other files.

A cache entry is a data file (or folder) plus a manifest ``<data file>.cache.json`` holding
the settings the data were derived with and a stamp of every source file (size and modification
time in ns). An entry is reused only while its settings match; sources whose stamps changed are
derived again (:func:`changed`). Where caches live: the image cache in ``data.cache_dir``
(default ``DATA_DIR/.blockident_cache``), the extracted dSprites images beside their npz, the
converted CLEVR folders in ``.blockident_cache`` beside the TFRecord file.
``blockident prepare cache --clear DIR`` removes every entry under DIR; deleting the files by
hand is just as safe.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from blockident.io import atomic_write_text

FORMAT = "blockident-cache"
SUFFIX = ".cache.json"

Stamp = tuple[int, int] | None


def stamp(path: str | Path) -> Stamp:
    """(size, mtime_ns) of ``path``; ``None`` when it is missing."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def manifest_path(data: Path) -> Path:
    return data.with_name(data.name + SUFFIX)


def read(data: Path, settings: dict) -> dict | None:
    """The manifest of ``data`` if both exist and it was written with ``settings``."""
    try:
        doc = json.loads(manifest_path(data).read_text())
    except (OSError, ValueError):
        return None
    ok = (isinstance(doc, dict) and doc.get("format") == FORMAT and data.exists()
          and doc.get("settings") == json.loads(json.dumps(settings)))
    return doc if ok else None


def write(data: Path, settings: dict, stamps: Sequence[Stamp], **extra) -> dict:
    """Write the manifest of ``data`` (after ``data`` itself, so that it vouches for it)."""
    doc = {"format": FORMAT, "settings": settings, "stamps": list(stamps), **extra}
    atomic_write_text(manifest_path(data), json.dumps(doc))
    return json.loads(json.dumps(doc))


def changed(stamps: Sequence[Stamp], recorded: Sequence) -> list[int]:
    """Indices of the sources whose stamp differs from the recorded one."""
    recorded = [tuple(s) if s is not None else None for s in recorded]
    if len(recorded) != len(stamps):
        return list(range(len(stamps)))
    return [i for i, (now, then) in enumerate(zip(stamps, recorded, strict=True)) if now != then]


def clear(directory: str | Path) -> list[Path]:
    """Remove every cache entry (manifest and data file or folder) under ``directory``."""
    removed = []
    for manifest in sorted(Path(directory).rglob(f"*{SUFFIX}")):
        data = manifest.with_name(manifest.name[:-len(SUFFIX)])
        for path in (manifest, data):  # the manifest first: a half-removed entry is unused
            if path.is_dir():
                shutil.rmtree(path)
                removed.append(path)
            elif path.exists():
                path.unlink()
                removed.append(path)
    return removed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="blockident prepare cache", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path, help="a data folder or cache folder")
    parser.add_argument("--clear", action="store_true", help="remove every cache entry under it")
    args = parser.parse_args(argv)
    entries = sorted(args.directory.rglob(f"*{SUFFIX}"))
    if not args.clear:
        for manifest in entries:
            print(manifest.with_name(manifest.name[:-len(SUFFIX)]))
        print(f"{len(entries)} cache entries under {args.directory} (--clear removes them)")
        return 0
    removed = clear(args.directory)
    print(f"removed {len(entries)} cache entries ({len(removed)} files) under {args.directory}")
    return 0
