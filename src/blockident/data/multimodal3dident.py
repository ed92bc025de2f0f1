"""Multimodal3DIdent image/text pairs (Daunhawer et al., ICLR 2023): layout, factors, loader.

Layout, per split ``train``, ``val`` and ``test`` (the published data set, unchanged)::

    ROOT/<split>/images/<i>.png        i = 0..N-1 zero-padded to ceil(log10 N) digits
    ROOT/<split>/text/text_raw.txt     caption of sample i on line i
    ROOT/<split>/latents_image.csv     one row per sample, columns of the image factors
    ROOT/<split>/latents_text.csv      one row per sample, text factors + object_color_name

:func:`load_split` checks a split completely (files present, the same sample count everywhere,
the exact column sets, image names matching the indices, factor values numeric and discrete
ones integral) and raises :class:`DatasetFormatError` naming the file (and row and column)
otherwise. Hidden files (names starting with ``.``) in ``images/`` are ignored.

:data:`FACTORS` is the factor table. Shape and position are the content both modalities share,
the object colour is style (the caption's colour name is only a noisy function of the image's
hue), rotations, spotlight and background are specific to the image and the phrasing to the
text. ``object_zpos`` is constant: it is loaded and checked like every column but never read
out (see :func:`readout_factors`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from blockident.errors import DataError

SPLITS = ("train", "val", "test")
MODALITIES = ("image", "text")
LATENT_FILES = {"image": "latents_image.csv", "text": "latents_text.csv"}
CAPTIONS_FILE = Path("text") / "text_raw.txt"
IMAGES_DIR = "images"
MAX_LISTED = 5  # file names listed in an error message


@dataclass(frozen=True)
class Factor:
    """Ground-truth factor ``name`` (its CSV column) of ``modality``.

    ``kind``: ``content`` | ``style`` | ``modality``; ``type``: ``categorical`` (discrete
    values) | ``continuous``; ``constant`` factors are never read out.
    """

    modality: str
    name: str
    kind: str
    type: str
    constant: bool = False

    @property
    def key(self) -> str:
        """``<modality>.<name>``, the factor's name in readouts."""
        return f"{self.modality}.{self.name}"


FACTORS: tuple[Factor, ...] = (
    Factor("image", "object_shape", "content", "categorical"),
    Factor("image", "object_ypos", "content", "categorical"),
    Factor("image", "object_xpos", "content", "categorical"),
    Factor("image", "object_zpos", "content", "categorical", constant=True),
    Factor("image", "object_alpharot", "modality", "continuous"),
    Factor("image", "object_betarot", "modality", "continuous"),
    Factor("image", "object_gammarot", "modality", "continuous"),
    Factor("image", "spotlight_pos", "modality", "continuous"),
    Factor("image", "object_color", "style", "continuous"),
    Factor("image", "spotlight_color", "modality", "continuous"),
    Factor("image", "background_color", "modality", "continuous"),
    Factor("text", "object_shape", "content", "categorical"),
    Factor("text", "object_ypos", "content", "categorical"),
    Factor("text", "object_xpos", "content", "categorical"),
    Factor("text", "object_zpos", "content", "categorical", constant=True),
    Factor("text", "object_color_index", "style", "categorical"),
    Factor("text", "text_phrasing", "modality", "categorical"),
)
# columns that are no factors: the caption's colour name (its index is the factor)
OTHER_COLUMNS = {"image": (), "text": ("object_color_name",)}


def factors_of(modality: str) -> list[Factor]:
    return [f for f in FACTORS if f.modality == modality]


def readout_factors() -> list[Factor]:
    """The factors read out: all but the constant ones."""
    return [f for f in FACTORS if not f.constant]


def columns(modality: str) -> list[str]:
    """The exact column set of ``latents_<modality>.csv``."""
    return [f.name for f in factors_of(modality)] + list(OTHER_COLUMNS[modality])


def image_name(index: int, n: int) -> str:
    """File name of image ``index`` of ``n``: zero-padded to ceil(log10 n) digits (the width of
    the largest index), as the original generator names them."""
    return f"{index:0{len(str(max(n - 1, 0)))}d}.png"


class DatasetFormatError(DataError):
    """A split does not have the Multimodal3DIdent layout; the message names the file."""


@dataclass
class Split:
    """One checked split: ``image_paths`` and ``captions`` of its N samples and ``latents``
    (modality -> DataFrame with N rows, categorical factors as int64)."""

    name: str
    root: Path
    image_paths: list[Path]
    captions: list[str]
    latents: dict[str, pd.DataFrame]

    def __len__(self) -> int:
        return len(self.captions)


def _listed(names) -> str:
    names = sorted(names)
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


def _read_latents(path: Path, modality: str) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DatasetFormatError(f"{path}: not a readable CSV file ({error})") from error
    expected = columns(modality)
    missing = [c for c in expected if c not in table.columns]
    extra = [c for c in table.columns if c not in expected]
    if missing or extra:
        parts = [f"missing columns {missing}"] * bool(missing)
        parts += [f"unexpected columns {extra}"] * bool(extra)
        raise DatasetFormatError(f"{path}: {'; '.join(parts)} (expected exactly {expected})")
    for factor in factors_of(modality):
        values = pd.to_numeric(table[factor.name], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if factor.type == "categorical":
            bad |= np.where(np.isfinite(values), values != np.round(values), False)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            want = "an integer" if factor.type == "categorical" else "a finite number"
            raise DatasetFormatError(
                f"{path}: row {row} (line {row + 2}), column {factor.name!r}: "
                f"{str(table[factor.name].iloc[row])!r} is not {want}"
                + (f" ({int(bad.sum())} such rows)" if bad.sum() > 1 else ""))
        table[factor.name] = (values.astype(np.int64) if factor.type == "categorical"
                              else values)
    return table


def _read_captions(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DatasetFormatError(f"{path}: not UTF-8 text ({error})") from error
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            raise DatasetFormatError(f"{path}: line {i + 1} is empty (one caption per sample)")
    return lines


def load_split(root: str | Path, split: str) -> Split:
    """Check and load ``root/split``; raises :class:`DatasetFormatError` on any mismatch."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise DatasetFormatError(f"{folder}: split folder missing (a Multimodal3DIdent root has "
                                 f"{', '.join(SPLITS)})")
    required = [folder / IMAGES_DIR, folder / CAPTIONS_FILE,
                *(folder / name for name in LATENT_FILES.values())]
    missing = [str(p) for p in required if not p.exists()]
    if missing:
        raise DatasetFormatError(f"{folder}: missing {', '.join(missing)}")
    captions = _read_captions(folder / CAPTIONS_FILE)
    latents = {m: _read_latents(folder / name, m) for m, name in LATENT_FILES.items()}
    images = [e.name for e in os.scandir(folder / IMAGES_DIR) if not e.name.startswith(".")]

    counts = {f"{IMAGES_DIR}/ (files)": len(images), f"{CAPTIONS_FILE} (lines)": len(captions),
              **{f"{LATENT_FILES[m]} (rows)": len(t) for m, t in latents.items()}}
    if len(set(counts.values())) != 1:
        listed = ", ".join(f"{name}: {n}" for name, n in counts.items())
        raise DatasetFormatError(f"{folder}: sample counts disagree ({listed})")
    n = len(captions)
    if n == 0:
        raise DatasetFormatError(f"{folder}: no samples")
    names = [image_name(i, n) for i in range(n)]
    absent, unexpected = set(names) - set(images), set(images) - set(names)
    if absent or unexpected:
        raise DatasetFormatError(
            f"{folder / IMAGES_DIR}: file names do not match the sample indices 0..{n - 1} "
            f"zero-padded to {len(names[0]) - 4} digits (missing: {_listed(absent) or 'none'}; "
            f"unexpected: {_listed(unexpected) or 'none'})")
    return Split(split, folder, [folder / IMAGES_DIR / name for name in names], captions,
                 latents)


def load(root: str | Path, splits: tuple[str, ...] = SPLITS) -> dict[str, Split]:
    """:func:`load_split` of each of ``splits``."""
    return {split: load_split(root, split) for split in splits}
