"""``blockident prepare burst DATA_DIR [--delete]``: frames on disk that no annotation uses.

TAO ships every frame of every video; BURST annotates about one per second. This lists the
image files (``.jpg``, ``.jpeg``, ``.png``) under ``<images root>/<split>/`` that are not in any
``annotated_image_paths`` and, with ``--delete``, removes them (dry run by default). Annotated
frames missing on disk are reported too. Nothing outside the split folders is touched.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from blockident.data.burst import (
    SPLITS,
    images_root_message,
    read_burst,
)
from blockident.errors import MissingError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
EXAMPLES = 5


def frames_on_disk(images_root: Path) -> set[str]:
    """Image files under ``images_root/<split>/``, as paths relative to ``images_root``."""
    found = set()
    for split in SPLITS:
        for folder, _, files in os.walk(images_root / split):
            relative = Path(folder).relative_to(images_root).as_posix()
            found.update(f"{relative}/{name}" for name in files
                         if Path(name).suffix.lower() in IMAGE_SUFFIXES)
    return found


def _show(title: str, paths: list[str], verbose: bool) -> None:
    print(f"{title}: {len(paths)}")
    for path in paths if verbose else paths[:EXAMPLES]:
        print(f"  {path}")
    if not verbose and len(paths) > EXAMPLES:
        print(f"  ... ({len(paths) - EXAMPLES} more; --verbose lists all)")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="blockident prepare burst", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path, help="folder with the split files and frames")
    parser.add_argument("--delete", action="store_true", help="remove the unannotated frames")
    parser.add_argument("--verbose", action="store_true", help="list every path")
    args = parser.parse_args(argv)
    annotations = read_burst(args.data_dir)
    root = annotations.images_root
    if root is None:
        raise MissingError(images_root_message(args.data_dir))
    print(f"images root: {root}")
    annotated = set(annotations.image_paths().tolist())
    on_disk = frames_on_disk(root)
    unused = sorted(on_disk - annotated)
    _show("annotated frames missing on disk", sorted(annotated - on_disk), args.verbose)
    _show("frames no annotation references", unused, args.verbose)
    if not args.delete:
        if unused:
            print("dry run: nothing deleted (--delete removes them)")
        return 0
    freed = 0
    for path in unused:
        target = root / path
        freed += target.stat().st_size
        target.unlink()
    print(f"deleted {len(unused)} frames ({freed / 2**20:.1f} MiB)")
    return 0
