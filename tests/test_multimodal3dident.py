"""Multimodal3DIdent layout: the loader on generated sets (well-formed and malformed), the factor
table and the stand-in generator."""

import colorsys
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from blockident.cli import main
from blockident.data.imgtxt_generate import (
    COLORS,
    SHAPES,
    XPOS_WORDS,
    YPOS_WORDS,
    GeneratorConfig,
    generate,
    render,
)
from blockident.data.multimodal3dident import (
    FACTORS,
    SPLITS,
    DatasetFormatError,
    columns,
    image_name,
    load,
    load_split,
    readout_factors,
)

TINY = GeneratorConfig(samples=40, eval_samples=12, size=32, seed=1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("m3di") / "tiny"
    generate(root, TINY)
    return root


@pytest.fixture
def copy(tiny, tmp_path):
    """A private copy of the tiny set to break."""
    return shutil.copytree(tiny, tmp_path / "copy")


def test_factor_table_matches_the_data_set():
    image = [f.name for f in FACTORS if f.modality == "image"]
    text = [f.name for f in FACTORS if f.modality == "text"]
    assert image == ["object_shape", "object_ypos", "object_xpos", "object_zpos",
                     "object_alpharot", "object_betarot", "object_gammarot", "spotlight_pos",
                     "object_color", "spotlight_color", "background_color"]
    assert text == ["object_shape", "object_ypos", "object_xpos", "object_zpos",
                    "object_color_index", "text_phrasing"]
    kinds = {f.key: f.kind for f in readout_factors()}
    assert [k for k, v in kinds.items() if v == "content"] == [
        f"{m}.{n}" for m in ("image", "text") for n in ("object_shape", "object_ypos",
                                                        "object_xpos")]
    assert [k for k, v in kinds.items() if v == "style"] == ["image.object_color",
                                                            "text.object_color_index"]
    assert {f.key for f in FACTORS if f.constant} == {"image.object_zpos", "text.object_zpos"}
    assert not any(f.constant for f in readout_factors())
    categorical = {f.key for f in FACTORS if f.type == "categorical"}
    assert categorical == {f"{m}.{n}" for m in ("image", "text") for n in (
        "object_shape", "object_ypos", "object_xpos", "object_zpos")} | {
        "text.object_color_index", "text.text_phrasing"}


@pytest.mark.parametrize("n", [1, 2, 9, 10, 11, 99, 100, 101, 1000, 125000])
def test_image_names_are_padded_like_the_original(n):
    for i in (0, n // 2, n - 1):  # the original generator's expression
        assert image_name(i, n) == str(i).zfill(int(np.ceil(np.log10(n)))) + ".png"


def test_loads_every_split(tiny):
    splits = load(tiny)
    assert list(splits) == list(SPLITS)
    assert [len(s) for s in splits.values()] == [40, 12, 12]
    train = splits["train"]
    assert [p.name for p in train.image_paths[:2]] == ["00.png", "01.png"]
    assert all(p.exists() for p in train.image_paths)
    for modality, table in train.latents.items():
        assert sorted(table.columns) == sorted(columns(modality)) and len(table) == 40
    assert train.latents["image"]["object_shape"].dtype == np.int64
    assert train.latents["image"]["object_color"].dtype == np.float64
    # the caption names the text latents' shape, position and colour
    row = train.latents["text"].iloc[3]
    caption = train.captions[3]
    for word in (SHAPES[row.object_shape], XPOS_WORDS[row.object_xpos],
                 YPOS_WORDS[row.object_ypos], row.object_color_name):
        assert word in caption
    assert COLORS[row.object_color_index] == row.object_color_name


def test_missing_file_is_named(copy):
    (copy / "val" / "text" / "text_raw.txt").unlink()
    with pytest.raises(DatasetFormatError, match=r"missing .*val/text/text_raw\.txt"):
        load(copy)
    shutil.rmtree(copy / "test")
    with pytest.raises(DatasetFormatError, match="test: split folder missing"):
        load_split(copy, "test")


def test_wrong_counts_name_every_file(copy):
    path = copy / "train" / "latents_text.csv"
    pd.read_csv(path).iloc[:-1].to_csv(path, index=False)
    with pytest.raises(DatasetFormatError, match=r"sample counts disagree .*images/ \(files\): "
                                                 r"40.*text_raw\.txt \(lines\): 40.*"
                                                 r"latents_text\.csv \(rows\): 39"):
        load(copy)


def test_extra_caption_line_is_a_count_mismatch(copy):
    path = copy / "test" / "text" / "text_raw.txt"
    path.write_text(path.read_text() + "\nA stray caption.")
    with pytest.raises(DatasetFormatError, match=r"text_raw\.txt \(lines\): 13"):
        load_split(copy, "test")


def test_empty_caption_line_is_named(copy):
    path = copy / "test" / "text" / "text_raw.txt"
    lines = path.read_text().split("\n")
    lines[4] = " "
    path.write_text("\n".join(lines))
    with pytest.raises(DatasetFormatError, match="line 5 is empty"):
        load_split(copy, "test")


@pytest.mark.parametrize("modality,column", [("image", "spotlight_pos"),
                                             ("text", "object_color_name")])
def test_missing_column_is_named(copy, modality, column):
    path = copy / "train" / f"latents_{modality}.csv"
    pd.read_csv(path).drop(columns=column).to_csv(path, index=False)
    with pytest.raises(DatasetFormatError, match=f"latents_{modality}.csv: missing columns "
                                                 f"\\['{column}'\\]"):
        load(copy)


def test_extra_column_is_named(copy):
    path = copy / "train" / "latents_image.csv"
    pd.read_csv(path).assign(object_size=1.0).to_csv(path, index=False)
    with pytest.raises(DatasetFormatError, match=r"unexpected columns \['object_size'\]"):
        load(copy)


def test_bad_values_name_row_and_column(copy):
    path = copy / "val" / "latents_text.csv"
    table = pd.read_csv(path)
    table["text_phrasing"] = table["text_phrasing"].astype(float)
    table.loc[6, "text_phrasing"] = 1.5
    table.to_csv(path, index=False)
    with pytest.raises(DatasetFormatError, match=r"latents_text\.csv: row 6 \(line 8\), column "
                                                 r"'text_phrasing': '1\.5' is not an integer"):
        load_split(copy, "val")
    path = copy / "val" / "latents_image.csv"
    table = pd.read_csv(path).astype({"object_color": object})
    table.loc[2, "object_color"] = "blue"
    table.to_csv(path, index=False)
    with pytest.raises(DatasetFormatError, match=r"row 2 \(line 4\), column 'object_color'"):
        load_split(copy, "val")


def test_bad_image_name_is_named(copy):
    images = copy / "train" / "images"
    (images / "05.png").rename(images / "5.png")
    with pytest.raises(DatasetFormatError, match=r"zero-padded to 2 digits \(missing: 05\.png; "
                                                 r"unexpected: 5\.png\)"):
        load(copy)


def test_hidden_files_in_images_are_ignored(copy):
    (copy / "train" / "images" / ".DS_Store").write_bytes(b"")
    assert len(load_split(copy, "train")) == 40


def test_generation_is_deterministic_per_seed(tiny, tmp_path):
    again = tmp_path / "again"
    generate(again, TINY)
    for split in SPLITS:
        for name in ("latents_image.csv", "latents_text.csv", "text/text_raw.txt",
                     "images/07.png"):
            assert (again / split / name).read_bytes() == (tiny / split / name).read_bytes()
    other = tmp_path / "other"
    generate(other, GeneratorConfig(samples=40, eval_samples=12, size=32, seed=2))
    assert (other / "train/latents_image.csv").read_bytes() != (
        tiny / "train/latents_image.csv").read_bytes()


def test_caption_colour_is_the_nearest_hue_unless_changed(tmp_path):
    generate(tmp_path / "same", GeneratorConfig(samples=200, eval_samples=1, color_change_prob=0))
    split = load_split(tmp_path / "same", "train")
    hue = split.latents["image"]["object_color"].to_numpy()
    index = split.latents["text"]["object_color_index"].to_numpy()
    distance = np.abs((hue - index / len(COLORS) + 0.5) % 1 - 0.5)
    assert (distance <= 0.5 / len(COLORS) + 1e-9).all()
    generate(tmp_path / "changed", GeneratorConfig(samples=200, eval_samples=1,
                                                   color_change_prob=1))
    split = load_split(tmp_path / "changed", "train")
    hue = split.latents["image"]["object_color"].to_numpy()
    index = split.latents["text"]["object_color_index"].to_numpy()
    assert (np.rint(hue * len(COLORS)) % len(COLORS) != index).all()


@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_object_lies_inside_its_grid_cell(shape):
    """Moving the object from one cell to the next changes the pixels of those two cells only."""
    size = 48
    latents = {"object_shape": shape, "object_zpos": 0.0, "object_alpharot": 0.3,
               "object_betarot": 0.8, "object_gammarot": 0.1, "object_color": 0.6,
               "spotlight_pos": 0.2, "spotlight_color": 0.7, "background_color": 0.4}
    for x in range(3):
        for y in range(3):
            here = render(latents | {"object_xpos": x, "object_ypos": y}, size)
            there = render(latents | {"object_xpos": (x + 1) % 3, "object_ypos": y}, size)
            changed = (here != there).any(-1).reshape(3, 16, 3, 16).any((1, 3))
            assert set(zip(*np.nonzero(changed), strict=True)) == {(y, x), (y, (x + 1) % 3)}


def test_render_uses_the_object_hue():
    latents = {"object_shape": 0, "object_xpos": 1, "object_ypos": 1, "object_zpos": 0.0,
               "object_alpharot": 0.5, "object_betarot": 0.5, "object_gammarot": 0.5,
               "object_color": 2 / 3, "spotlight_pos": 0.5, "spotlight_color": 0.5,
               "background_color": 0.5}
    centre = render(latents, 64)[32, 32] / 255
    assert colorsys.rgb_to_hsv(*centre)[0] == pytest.approx(2 / 3, abs=0.02)


def test_command_writes_the_layout_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "gen"
    args = ["prepare", "imgtxt", str(out), "--samples", "12", "--eval-samples", "3", "--size",
            "16"]
    assert main(args) == 0
    assert [len(s) for s in load(out).values()] == [12, 3, 3]
    assert Image.open(out / "train" / "images" / "11.png").size == (16, 16)
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--seed", "4"]) == 0
    with pytest.raises(SystemExit):
        main(["prepare", "imgtxt", str(out), "--size", "8"])
