"""Caption tokeniser and vocabulary: ids, padding, unknown words, JSON round trip."""

import pytest
import torch

from blockident.data.text import EOS, PAD, UNK, Vocabulary, tokenize

CAPTIONS = ['A "red" cow is at the top-left.', "The image shows a cow in red.",
            "At the bottom-right there is a blue hare."]


def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize('A "Red" cow, at the top-left.') == [
        "a", '"', "red", '"', "cow", ",", "at", "the", "top", "-", "left", "."]
    assert tokenize("xkcd:bright aqua") == ["xkcd", ":", "bright", "aqua"]
    assert tokenize("") == []


def test_build_puts_special_tokens_first_then_words_in_order():
    vocab = Vocabulary.build(CAPTIONS)
    assert vocab.tokens[:3] == [PAD, EOS, UNK]
    assert (vocab.pad_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2)
    assert vocab.tokens[3:7] == ["a", '"', "red", "cow"]
    assert len(vocab) == len(set(t for c in CAPTIONS for t in tokenize(c))) + 3


def test_min_freq_makes_rare_words_unknown():
    vocab = Vocabulary.build(CAPTIONS, min_freq=2)
    assert "cow" in vocab.index and "hare" not in vocab.index
    assert vocab.ids("a hare") == [vocab.index["a"], vocab.unk_id]


def test_encode_appends_eos_and_pads_to_the_longest():
    vocab = Vocabulary.build(CAPTIONS)
    ids = vocab.encode(["a cow .", "the cow"])
    assert ids.dtype == torch.long and ids.shape == (2, 4)
    assert ids[0].tolist() == [vocab.index["a"], vocab.index["cow"], vocab.index["."], 1]
    assert ids[1].tolist() == [vocab.index["the"], vocab.index["cow"], 1, 0]
    assert vocab.decode(ids[0]) == ["a", "cow", "."]


def test_encode_with_max_length_pads_or_cuts_keeping_eos():
    vocab = Vocabulary.build(CAPTIONS)
    ids = vocab.encode(["a cow is at the top", "cow"], max_length=4)
    assert ids.shape == (2, 4)
    assert ids[0, -1] == vocab.eos_id and vocab.decode(ids[0]) == ["a", "cow", "is"]
    assert ids[1].tolist() == [vocab.index["cow"], 1, 0, 0]
    with pytest.raises(ValueError, match="max_length"):
        vocab.encode(["cow"], max_length=0)


def test_unknown_tokens_encode_as_unk():
    vocab = Vocabulary.build(CAPTIONS)
    ids = vocab.encode(["A purple dragon!"])
    assert ids[0].tolist() == [vocab.index["a"], 2, 2, 2, 1]


def test_save_load_round_trip(tmp_path):
    vocab = Vocabulary.build(CAPTIONS)
    vocab.save(tmp_path / "vocab.json")
    loaded = Vocabulary.load(tmp_path / "vocab.json")
    assert loaded == vocab and loaded.index == vocab.index
    assert torch.equal(loaded.encode(CAPTIONS + ["an unseen word"]),
                       vocab.encode(CAPTIONS + ["an unseen word"]))


def test_load_rejects_files_that_are_no_vocabulary(tmp_path):
    (tmp_path / "bad.json").write_text('{"w2i": {}}')
    with pytest.raises(ValueError, match="bad.json"):
        Vocabulary.load(tmp_path / "bad.json")
    (tmp_path / "order.json").write_text('{"tokens": ["a", "{pad}", "{eos}", "{unk}"]}')
    with pytest.raises(ValueError, match="starts with"):
        Vocabulary.load(tmp_path / "order.json")
