"""Object-level evaluation of a model with slots: segmentation, presence probe, per-object readouts.

A data module with object annotations (``object_data(part)`` -> images, entity masks, visibility
and per-entity attributes of the readout halves ``train`` / ``test``) and a module with
``object_outputs(x, transform)`` -> (slots (N, S, D), attention (N, S, h, w)) give rows in the
``results.csv`` schema: FG-ARI, mean IoU and Dice of the slots' attention masks on the test
scenes, the scene-level presence probe (linear layer per slot, max over slots) over the 96
size x colour x material x shape labels, and per-object attribute readouts of the slots matched
to objects. A model without slots is probed on its global encoding as a single slot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from blockident.data.clevr.module import presence_labels
from blockident.io import atomic_savez
from blockident.logs import log
from blockident.readouts.object_attributes import object_attribute_rows, presence_probe
from blockident.readouts.segmentation import (
    predicted_segments,
    segmentation_rows,
    upsample_attention,
)
from blockident.report_objects import plot_slots


def _outputs(module, data, part) -> tuple[np.ndarray, np.ndarray | None]:
    """(slots (N, S, D), attention (N, S, h, w) or None) of the images of ``part``."""
    images = torch.as_tensor(part.images)
    slots, attn = module.object_outputs(images, data.augment.normalize_only)
    if slots is None:  # no object function: the global encoding is the one "slot"
        return module.encode(1, images, data.augment.normalize_only)[:, None], None
    return slots, attn


def object_rows(module, data, cfg, out: Path, prefix: str = "") -> list[dict]:
    """Rows of every object-level readout of ``module``; encodings named ``prefix + slots``.
    Slots and attention maps are saved in ``out/slots_{train,test}.npz``; the trained encoder
    (no ``prefix``) also draws ``out/slots.png``."""
    parts = {name: data.object_data(name) for name in ("train", "test")}
    outputs = {name: _outputs(module, data, part) for name, part in parts.items()}
    for name, (slots, attn) in outputs.items():
        atomic_savez(out / f"slots_{name}.npz",
                     {"slots": slots, **({"attention": attn} if attn is not None else {})})
    encoding = prefix + ("slots" if outputs["test"][1] is not None else "global")
    labels = {name: presence_labels(part)[1] for name, part in parts.items()}
    log.info("%s object readouts: presence probe over %d labels", encoding, labels["test"].shape[1])
    scores = presence_probe(outputs["train"][0], labels["train"], outputs["test"][0],
                            labels["test"], steps=cfg.get("probe_steps", 500), seed=cfg.seed)
    rows = [{"encoding": encoding, "factor": "object_presence", "kind": "content",
             "readout": "slot_probe", "metric": metric, "value": float(value)}
            for metric, value in scores.items()]
    if outputs["test"][1] is None:
        return rows
    size = parts["test"].masks.shape[-2:]
    predicted = {name: predicted_segments(attn, size) for name, (_, attn) in outputs.items()}
    rows += segmentation_rows(parts["test"].masks, outputs["test"][1], encoding)
    train, test = parts["train"], parts["test"]
    rows += object_attribute_rows(
        outputs["train"][0], train.masks, train.attributes, train.visible, predicted["train"],
        outputs["test"][0], test.masks, test.attributes, test.visible, predicted["test"],
        encoding=encoding)
    if not prefix:
        n = min(cfg.get("figure_scenes", 6), len(test.images))
        path = plot_slots(test.images[:n], upsample_attention(outputs["test"][1][:n], size),
                          test.masks[:n], out / "slots.png", f"{encoding}: attention per slot")
        log.info("figure:  %s", path)
    return rows
