"""``blockident prepare SOURCE ...``: one preparation command per data source."""

from __future__ import annotations

import importlib
import sys

# source -> (module, function taking argv and returning an exit code, one-line help)
SOURCES = {
    "cache": ("blockident.data.cache", "main", "list or --clear the caches under a folder"),
    "burst": ("blockident.data.burst_prepare", "main", "list/delete frames no annotation uses"),
    "scenes": ("blockident.data.scenes", "main", "generate videos with BURST annotations"),
    "imgtxt": ("blockident.data.imgtxt_generate", "main", "generate Multimodal3DIdent-like pairs"),
    "dsprites": ("blockident.data.dsprites.generate", "main",
                 "generate a dSprites stand-in (the official npz layout)"),
    "3dident": ("blockident.data.threedident.generate", "main",
                "generate a 3DIdent stand-in (the cl-ica layout)"),
    "captions": ("blockident.data.captions.generate", "main",
                 "generate a captioned stand-in (the RedCaps layout)"),
    "clevr": ("blockident.data.clevr.generate", "main",
              "generate a CLEVR-with-masks stand-in (the TFRecord file)"),
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in SOURCES:
        print("usage: blockident prepare SOURCE [ARGS...]\n\nsources:", file=sys.stderr)
        for name, (_, _, text) in SOURCES.items():
            print(f"  {name:<10} {text}", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module, function, _ = SOURCES[argv[0]]
    return getattr(importlib.import_module(module), function)(argv[1:]) or 0
