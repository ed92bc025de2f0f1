import numpy as np
import pandas as pd
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from sklearn.linear_model import LinearRegression

from blockident.data.base import ReadoutSplit, ReadoutTask
from blockident.readouts.regression import KernelRidgeCV, regression_rows
from blockident.report import plot_results, summary, write_results


def split(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    factors = {"c": np.sin(x[:, :2]), "s": rng.normal(size=(n, 1))}
    tasks = [ReadoutTask("view1", "view1", "c"), ReadoutTask("view1", "view1", "s")]
    return ReadoutSplit({"view1": (1, x)}, factors, {"c": "content", "s": "style"}, tasks), x


def test_readouts_recover_encoded_factors_and_not_noise(tmp_path):
    (train, x_train), (test, x_test) = split(400, 0), split(300, 1)
    regressors = {"linear": LinearRegression(), "kernel_ridge": KernelRidgeCV(max_samples=200)}
    rows = regression_rows(train, test, {"train": {"view1": x_train}, "test": {"view1": x_test}},
                           regressors)
    values = {(r["factor"], r["readout"]): r["value"] for r in rows}
    assert values["c", "kernel_ridge"] > 0.95 > values["c", "linear"] > 0.5
    assert values["s", "kernel_ridge"] < 0.05 and values["s", "linear"] < 0.05
    assert {r["kind"] for r in rows if r["factor"] == "s"} == {"style"}

    table = write_results(rows, tmp_path / "results.csv")
    assert pd.read_csv(tmp_path / "results.csv").equals(table)
    assert "kernel_ridge" in summary(table) and "content" in summary(table)
    assert plot_results(table, tmp_path / "results.png").stat().st_size > 1000


def test_kernel_ridge_fits_on_a_subsample_and_says_so(caplog):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(500, 2)), rng.normal(size=500)
    with caplog.at_level("INFO", logger="blockident"):
        model = KernelRidgeCV(max_samples=120, cv=2).fit(x, y)
    assert model.dual_coef_.shape[0] == len(model.X_fit_) == 120
    assert "kernel ridge: 32 fits on 120 samples" in caplog.text and "done in" in caplog.text


def test_original_kernel_ridge_protocol_fits_on_all_samples_with_its_grid():
    with initialize_config_module("blockident.conf", version_base="1.3"):
        cfg = compose("config", ["experiment=numerical", "readout=regression_original"])
    model = instantiate(cfg.readout.regressors.kernel_ridge)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 2)), rng.normal(size=300)
    assert model.fit(x, y).dual_coef_.shape[0] == 300
    assert model.cv == 3
    assert np.allclose(model.gammas, np.logspace(-2, 2, 4))
    assert list(model.alphas) == [1.0, 0.1, 0.01, 0.001]
