"""Image/text experiment: text encoder, encoder pair, data module, a tiny fit, the config."""

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from blockident.cli import main
from blockident.data.imgtxt import VOCAB_FILE, ImgTxtData
from blockident.data.imgtxt_generate import GeneratorConfig, generate
from blockident.data.multimodal3dident import readout_factors
from blockident.engine import ContrastiveModule
from blockident.losses import InfoNCE
from blockident.models.multimodal import imgtxt_pair
from blockident.models.text import TextConvNet

SIZE = 32


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("imgtxt") / "data"
    generate(path, GeneratorConfig(samples=40, eval_samples=12, size=SIZE, seed=0))
    return path


@pytest.fixture
def data(root, tmp_path):
    return ImgTxtData(str(root), size=SIZE, batch_size=16, cache_dir=str(tmp_path / "cache"),
                      readout_train=25, seed=3)


def _tiny_pair(vocab_size, **kwargs):
    return imgtxt_pair(vocab_size, hidden_size=16, encoding_size=8, text_embedding_dim=8,
                       text_channels=[12], text_features=16, **kwargs)


# -- models ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("length", [5, 23])
def test_text_convnet_shapes(length):
    net = TextConvNet(30, embedding_dim=8, channels=[12, 12], output_dim=20)
    tokens = torch.randint(3, 30, (4, length))
    assert net(tokens).shape == (4, 20) and net.feature_dim == 20


def test_text_convnet_ignores_padding():
    torch.manual_seed(0)
    net = TextConvNet(30, embedding_dim=8, channels=[12, 12], kernel_size=5, output_dim=20)
    tokens = torch.tensor([[5, 6, 7, 1, 0], [8, 9, 1, 0, 0]])
    padded = torch.cat([tokens, torch.zeros(2, 9, dtype=torch.long)], dim=1)
    assert torch.allclose(net(tokens), net(padded), atol=1e-6)
    assert not torch.allclose(net(tokens)[0], net(tokens)[1])
    with pytest.raises(ValueError, match="odd"):
        TextConvNet(30, kernel_size=4)
    with pytest.raises(ValueError, match=r"\(N, L\)"):
        net(torch.zeros(2, 3, 4, dtype=torch.long))


@pytest.mark.parametrize("shared", [False, True])
def test_imgtxt_pair_shapes_and_shared_projection(shared):
    pair = _tiny_pair(30, shared_projection=shared)
    assert pair(1, torch.randn(3, 3, SIZE, SIZE)).shape == (3, 8)
    assert pair(2, torch.randint(0, 30, (3, 11))).shape == (3, 8)
    assert not pair.shared
    last1, last2 = pair.encoder1.head[-1], pair.encoder2.head[-1]
    assert (last1 is last2) == shared
    unique = sum(p.numel() for p in pair.parameters())
    separate = sum(p.numel() for e in (pair.encoder1, pair.encoder2) for p in e.parameters())
    assert separate - unique == (sum(p.numel() for p in last1.parameters()) if shared else 0)


# -- data module ----------------------------------------------------------------------------------
def test_training_batches_pair_images_with_their_captions(data):
    batch = next(iter(data.train_dataloader()))
    images, tokens = batch["view1"], batch["view2"]
    assert images.dtype == torch.uint8 and images.shape == (16, 3, SIZE, SIZE)
    assert tokens.dtype == torch.long and tokens.shape[0] == 16
    assert ((tokens == data.vocab.eos_id).sum(1) == 1).all()
    all_images = data.caches["train"].batch(np.arange(40))
    rows = [int(torch.nonzero((all_images == im).flatten(1).all(1))[0]) for im in images]
    assert len(set(rows)) == 16  # distinct samples
    assert torch.equal(tokens, data.tokens("train")[rows])
    normalised = data.on_after_batch_transfer(batch, 0)
    assert normalised["view1"].dtype == torch.float32
    assert torch.allclose(normalised["view1"], data.augment.normalize_only(images))
    assert normalised["view2"] is tokens


def test_batch_stream_is_reproducible_and_resumable(data):
    loader = data.train_dataloader()
    first = [b["view2"] for _, b in zip(range(3), loader, strict=False)]
    data.stream.start_step = 2
    assert torch.equal(next(iter(loader))["view2"], first[2])
    val = list(data.val_dataloader())
    assert len(val) == 2 and val[0]["view1"].shape[0] == 12  # all of val when it is smaller


def test_readout_data_has_every_factor_of_both_modalities(data):
    splits = data.readout_data()
    keys = [f.key for f in readout_factors()]
    for name, n in (("train", 25), ("test", 12)):
        split = splits[name]
        assert split.inputs["image"][0] == 1 and split.inputs["image"][1].shape == (n, 3, SIZE,
                                                                                    SIZE)
        assert split.inputs["text"][0] == 2 and split.inputs["text"][1].dtype == torch.long
        assert list(split.factors) == keys
        assert all(v.shape == (n,) for v in split.factors.values())
        assert split.factors["text.object_shape"].dtype == np.int64
        assert split.factor_type("image.object_xpos") == "categorical"
        assert split.factor_type("image.background_color") == "continuous"
        assert split.kinds["text.text_phrasing"] == "modality"
        assert split.kinds["image.object_color"] == "style"
        assert len(split.tasks) == 2 * len(keys)
        assert {(t.encoding, t.inputs) for t in split.tasks} == {("image", "image"),
                                                                 ("text", "text")}
        # image and caption of a row are the same sample: shared content agrees
        assert np.array_equal(split.factors["image.object_shape"],
                              split.factors["text.object_shape"])
        assert split.transforms[1](split.inputs["image"][1][:2]).dtype == torch.float32
    assert "image.object_zpos" not in splits["train"].factors


def test_readouts_from_val(root, tmp_path):
    data = ImgTxtData(str(root), size=SIZE, cache_dir=str(tmp_path), readout_source="val",
                      readout_train=None, readout_test=5)
    splits = data.readout_data()
    assert len(splits["train"].factors["text.text_phrasing"]) == 12
    assert len(splits["test"].factors["text.text_phrasing"]) == 5


def test_vocabulary_is_saved_with_the_run(data, root, tmp_path):
    run_dir = tmp_path / "run"
    data.save_state(run_dir)
    assert (run_dir / VOCAB_FILE).exists()
    other = ImgTxtData(str(root), size=SIZE, cache_dir=str(tmp_path / "cache"), min_freq=1000)
    assert other.model_kwargs() == {"vocab_size": 3}  # every word is rarer than 1000
    other.load_state(run_dir)
    assert other.vocab == data.vocab and other.model_kwargs() == data.model_kwargs()
    assert torch.equal(other.tokens("test"), data.tokens("test"))
    with pytest.raises(FileNotFoundError, match=VOCAB_FILE):
        other.load_state(tmp_path / "elsewhere")


def test_invalid_options(root):
    with pytest.raises(ValueError, match="flip"):
        ImgTxtData(str(root), augment={"flip": True})
    with pytest.raises(ValueError, match="readout_source"):
        ImgTxtData(str(root), readout_source="test")


def test_tiny_fit_has_a_finite_loss(data):
    torch.manual_seed(0)
    module = ContrastiveModule(_tiny_pair(**data.model_kwargs()), InfoNCE(tau=0.1), lr=1e-3)
    trainer = L.Trainer(max_steps=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, datamodule=data)
    assert trainer.global_step == 3
    assert torch.isfinite(trainer.callback_metrics["train/loss"])


def test_experiment_runs_end_to_end(root, tmp_path):
    """``blockident run experiment=imgtxt``: the vocabulary is saved with the run, the model
    gets its size, every factor of both modalities is read out of both encodings with the
    readout its type calls for, and the figure of mixed R2 and accuracy panels is drawn."""
    run_dir = tmp_path / "run"
    overrides = [f"data.root={root}", f"run_dir={run_dir}", f"data.size={SIZE}",
                 "data.batch_size=8", "data.val_batches=1", f"data.cache_dir={tmp_path}",
                 "model.hidden_size=16", "model.encoding_size=8", "model.text_features=16",
                 "trainer.max_steps=2", "trainer.val_check_interval=2", "checkpoint_every=2",
                 "trainer.enable_progress_bar=false", "~readout.regressors.kernel_ridge",
                 "~readout.regressors.mlp", "~readout.categorical.mlp"]
    assert main(["run", "experiment=imgtxt", *overrides]) == 0
    config = OmegaConf.load(run_dir / "config.yaml")
    assert config.info.name == "imgtxt" and config.loss.sim == "cosine"
    assert (run_dir / VOCAB_FILE).exists() and (run_dir / "checkpoints" / "step=2.ckpt").exists()
    results = pd.read_csv(run_dir / "results.csv")
    assert set(results.encoding) == {"image", "text", "supervised:image", "supervised:text"}
    assert set(results.factor) == {f.key for f in readout_factors()}
    # one readout per factor and encoding, trained and control, and the identified share
    assert len(results) == 3 * 2 * len(readout_factors())
    assert (results.metric == "identified_share").sum() == 2 * len(readout_factors())
    metric = results.drop_duplicates("factor").set_index("factor")["metric"]
    assert metric["image.object_shape"] == "accuracy" and metric["text.text_phrasing"] == "accuracy"
    assert metric["image.object_alpharot"] == "r2"
    kind = results.drop_duplicates("factor").set_index("factor")["kind"]
    assert kind["text.object_xpos"] == "content" and kind["image.object_color"] == "style"
    assert (run_dir / "results.png").stat().st_size > 1000
    # evaluating again reads the saved vocabulary (a different min_freq would change it)
    assert main(["evaluate", f"run_dir={run_dir}", "data.min_freq=1000"]) == 0
    again = pd.read_csv(run_dir / "evaluations" / "step_2" / "results.csv")
    assert again.value.tolist() == pytest.approx(results.value.tolist(), nan_ok=True)
