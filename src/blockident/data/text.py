"""Captions to token ids: a regex tokeniser and a vocabulary built from training captions.

:func:`tokenize` lowercases and splits a caption into words (runs of letters, digits and
underscores) and single punctuation characters, e.g. ``'A "red" cow, at the top-left.'`` ->
``a " red " cow , at the top - left .``. No external tokeniser data is needed.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from blockident.errors import ConfigError, DataError
from blockident.io import atomic_write_text

PAD, EOS, UNK = "{pad}", "{eos}", "{unk}"
SPECIAL_TOKENS = (PAD, EOS, UNK)  # ids 0, 1, 2
_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(caption: str) -> list[str]:
    """Lowercased words and punctuation characters of ``caption``, in order."""
    return _TOKEN.findall(caption.lower())


class Vocabulary:
    """Token <-> id map: ``{pad}`` = 0, ``{eos}`` = 1, ``{unk}`` = 2, then the words in order of
    first occurrence. Tokens not in the vocabulary encode as ``{unk}``."""

    pad_id, eos_id, unk_id = 0, 1, 2

    def __init__(self, tokens: Sequence[str]):
        if tuple(tokens[:len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise DataError(f"a vocabulary starts with {SPECIAL_TOKENS}, got {list(tokens[:3])}")
        if len(set(tokens)) != len(tokens):
            raise DataError("the vocabulary lists a token twice")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, captions: Iterable[str], min_freq: int = 1) -> Vocabulary:
        """Vocabulary of the tokens occurring at least ``min_freq`` times in ``captions``."""
        counts = Counter(t for caption in captions for t in tokenize(caption))
        words = [t for t, n in counts.items() if n >= min_freq and t not in SPECIAL_TOKENS]
        return cls([*SPECIAL_TOKENS, *words])

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    def ids(self, caption: str) -> list[int]:
        """Token ids of ``caption`` (no end-of-sequence token)."""
        return [self.index.get(t, self.unk_id) for t in tokenize(caption)]

    def encode(self, captions: Sequence[str], max_length: int | None = None) -> torch.Tensor:
        """LongTensor (N, L): each caption's ids, ``{eos}``, then ``{pad}`` up to length L.

        L = ``max_length``, or the longest caption's token count + 1. A caption with L or more
        tokens is cut to its first L - 1 tokens, so every row ends in ``{eos}``.
        """
        rows = [self.ids(c) for c in captions]
        length = max_length if max_length is not None else max(map(len, rows), default=0) + 1
        if length < 1:
            raise ConfigError(f"max_length must be at least 1, got {length}")
        out = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        for i, ids in enumerate(rows):
            ids = ids[:length - 1] + [self.eos_id]
            out[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def decode(self, ids: Sequence[int] | torch.Tensor) -> list[str]:
        """Tokens of one row of ids, up to (not including) the first ``{eos}`` or ``{pad}``."""
        out = []
        for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids):
            if i in (self.pad_id, self.eos_id):
                break
            out.append(self.tokens[i])
        return out

    def save(self, path: str | Path) -> None:
        """Write ``{"tokens": [...]}`` as JSON (atomically)."""
        atomic_write_text(path, json.dumps({"tokens": self.tokens}, indent=0))

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        path = Path(path)
        try:
            tokens = json.loads(path.read_text(encoding="utf-8"))["tokens"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DataError(f"{path}: not a saved vocabulary ({error})") from error
        return cls(tokens)
