"""Figures of object-centric encodings: scenes, true masks, predicted segments, slot maps."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from blockident.io import atomic_write  # noqa: E402
from blockident.readouts.segmentation import hard_masks, upsample_attention  # noqa: E402

TITLE_SIZE = 10  # points


SLOT_MAPS = (("tab10", 10), ("tab20b", 20), ("tab20c", 20))
OBJECT_MAPS = (("Set1", 9), ("Dark2", 8), ("Set2", 8))  # other colours than the slots'


def _palette(n: int, maps=SLOT_MAPS) -> np.ndarray:
    """``n`` RGB colours in [0, 1], from the qualitative colour maps ``maps`` in turn."""
    colours = [plt.get_cmap(name)(np.arange(k))[:, :3] for name, k in maps]
    colours = np.concatenate(colours)
    return colours[np.arange(n) % len(colours)]


def _images(images: np.ndarray) -> np.ndarray:
    """(n, H, W, 3) floats in [0, 1] from uint8 or float images, channels first or last."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be (n, 3, H, W) or (n, H, W, 3), got {images.shape}")
    if images.shape[1] == 3 and images.shape[-1] != 3:
        images = images.transpose(0, 2, 3, 1)
    images = images.astype(np.float64)
    if images.max(initial=0) > 1.0:
        images = images / 255.0
    return np.clip(images, 0, 1)


def overlay(image: np.ndarray, ids: np.ndarray, colours: np.ndarray, alpha: float = 0.55,
            skip: int | None = None) -> np.ndarray:
    """``image`` (H, W, 3) tinted by the colour of each pixel's id (H, W); pixels of id
    ``skip`` (e.g. background) are left as they are."""
    tinted = (1 - alpha) * image + alpha * colours[ids % len(colours)]
    if skip is not None:
        tinted[ids == skip] = image[ids == skip]
    return tinted


def plot_slots(images, attn_up, masks, path: Path | str, title: str = "") -> Path:
    """One row per scene: the input, its true objects over it (background untinted), the
    predicted segments (each pixel's most attended slot) over it, then every slot's attention
    map (0 to 1), titled in its segment colour. ``images`` (n, 3, H, W) or (n, H, W, 3), uint8
    or floats in [0, 1]; ``attn_up`` (n, S, h, w), resized bilinearly to (H, W) where it differs;
    ``masks`` (n, H, W) entity ids. Saved atomically (format from the suffix); returns ``path``.
    """
    images = _images(images)
    masks = np.asarray(masks).astype(np.int64)
    n, height, width = images.shape[:3]
    attn = upsample_attention(attn_up, (height, width))
    if len(attn) != n or len(masks) != n or masks.shape[1:] != (height, width):
        raise ValueError(f"images {images.shape}, attention {np.shape(attn_up)} and masks "
                         f"{masks.shape} disagree on the scenes or their size")
    slots = attn.shape[1]
    pred = hard_masks(attn)
    slot_colours = _palette(slots)
    true_colours = _palette(int(masks.max(initial=0)) + 1, OBJECT_MAPS)
    columns = 3 + slots
    fig, axes = plt.subplots(n, columns, squeeze=False, figsize=(1.6 * columns, 1.6 * n + 0.4))
    for i in range(n):
        panels = [(images[i], "input"),
                  (overlay(images[i], masks[i], true_colours, skip=0), "true objects"),
                  (overlay(images[i], pred[i], slot_colours), "slots (argmax)")]
        for j, (picture, name) in enumerate(panels):
            axes[i, j].imshow(picture, interpolation="nearest")
            if i == 0:
                axes[i, j].set_title(name, fontsize=TITLE_SIZE - 2)
        for s in range(slots):
            ax = axes[i, 3 + s]
            ax.imshow(attn[i, s], vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
            if i == 0:
                ax.set_title(f"slot {s}", fontsize=TITLE_SIZE - 2, color=slot_colours[s])
            for spine in ax.spines.values():
                spine.set_edgecolor(slot_colours[s])
                spine.set_linewidth(2)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=TITLE_SIZE)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format=Path(path).suffix[1:]))
    plt.close(fig)
    return Path(path)
