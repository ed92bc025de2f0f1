"""HTML reports: seeds aggregated per group of runs, and the pages of a real tiny sweep checked
in headless Chromium (console errors, headline numbers, figure sizes, sorting)."""

import os
import shutil

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from scipy import stats

from blockident.cli import main
from blockident.runinfo import repeat_command
from blockident.sweep import differences, interval
from browser import CHROMIUM, Page
from test_cli import TINY

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


def test_t_interval_of_three_seeds_and_of_one():
    table = pd.DataFrame({"g": ["a"] * 3 + ["b"], "value": [1.0, 2.0, 3.0, 5.0]})
    out = interval(table, ["g"]).set_index("g")
    assert out.loc["a", "mean"] == 2.0 and out.loc["a", "n"] == 3
    assert out.loc["a", "half"] == pytest.approx(stats.t.ppf(0.975, 2) / np.sqrt(3))
    assert out.loc["b", "n"] == 1 and np.isnan(out.loc["b", "half"])


def test_runs_are_grouped_by_config_differences_but_the_seed(tmp_path):
    runs = []
    for i, (seed, lr) in enumerate([(0, 0.1), (1, 0.1), (0, 0.01)]):
        runs.append(tmp_path / str(i))
        runs[-1].mkdir()
        OmegaConf.save({"seed": seed, "run_dir": str(runs[-1]), "data": {"seed": seed},
                        "optim": {"lr": lr}, "model": {"width": 3}}, runs[-1] / "config.yaml")
    table, keys = differences(runs)
    assert keys == ["optim.lr"]
    assert list(table.columns) == ["run", "group", "seed", "optim.lr"]
    assert table["group"].tolist() == ["optim.lr=0.1", "optim.lr=0.1", "optim.lr=0.01"]


def test_the_repeat_command_names_experiment_and_seed_but_not_the_folder():
    command = repeat_command("run", ["run_dir=/x", "data.k=[1, 2]", "~readout.mlp=null",
                                     "hydra/launcher=submitit_local"], "numerical", 3)
    assert command == ("blockident run experiment=numerical 'data.k=[1, 2]' '~readout.mlp' "
                       "seed=3")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A two-seed sweep of the tiny numerical run: each job writes its report, the sweep its
    summary.csv and report."""
    root = tmp_path_factory.mktemp("sweep")
    assert main(["run", "-m", *TINY, "trainer.max_steps=5", "checkpoint_every=5",
                 "trainer.val_check_interval=5",
                 "readout.control_steps=5", "~readout.regressors.mlp", "seed=0,1",
                 f"hydra.sweep.dir={root}"]) == 0
    return root


def test_a_sweep_writes_one_summary_row_per_job_kind_readout_and_metric(sweep):
    summary = pd.read_csv(sweep / "summary.csv")
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    jobs = [pd.read_csv(sweep / job / "summary.csv") for job in ("0", "1")]
    assert len(summary) == sum(map(len, jobs))
    assert summary.groupby("job")["seed"].first().to_dict() == {0: 0, 1: 1}
    assert summary[summary.job == 1]["trained"].tolist() == pytest.approx(
        jobs[1]["trained"].tolist(), nan_ok=True)
    record = (sweep / "1" / "run.json").read_text()
    assert "seed=1" in record and "wall_time_s" in record
    assert all((sweep / job / "report.html").stat().st_size for job in ("0", "1"))
    assert (sweep / "report.html").stat().st_size


def _checked(page: Page, path) -> None:
    """Open ``path``: no console error, every figure decoded and drawn at non-zero size."""
    page.open(path)
    assert page.errors == []
    sizes = page.evaluate("Array.from(document.images).map(i => [i.naturalWidth, "
                          "i.naturalHeight, i.getBoundingClientRect().width])")
    assert sizes and all(min(size) > 0 for size in sizes)
    assert page.evaluate("document.querySelectorAll('link[href^=http], script[src]').length") == 0


def _rows(page: Page, table: str) -> list[list[str]]:
    return page.evaluate(f"Array.from(document.querySelectorAll('#{table} tbody tr'))"
                         ".map(r => Array.from(r.cells).map(c => c.textContent))")


@needs_chromium
def test_run_report_in_a_browser(sweep, tmp_path):
    run = sweep / "0"
    summary, results = pd.read_csv(run / "summary.csv"), pd.read_csv(run / "results.csv")
    page = Page()
    try:
        _checked(page, run / "report.html")
        columns = page.evaluate("Array.from(document.querySelectorAll('#headline th'))"
                                ".map(c => c.textContent)")
        headline = pd.DataFrame(_rows(page, "headline"), columns=columns)
        assert len(headline) == len(summary)
        for column in ("trained", "supervised", "identified_share"):
            expected = [f"{v:.3f}" if not np.isnan(v) else "–" for v in summary[column]]
            assert headline[column].tolist() == expected
        # the headline is the mean over the readable factors of results.csv
        shares = results[(results.metric == "identified_share") & results.value.notna()]
        key = shares.iloc[0][["encoding", "readout", "kind"]]
        readable = shares[(shares[["encoding", "readout", "kind"]] == key).all(axis=1)].factor
        r2 = results[(results.metric == "r2") & (results.encoding == key.encoding)
                     & (results.readout == key.readout) & results.factor.isin(readable)]
        row = headline[(headline.encoding == key.encoding) & (headline.readout == key.readout)
                       & (headline.kind == key.kind)]
        assert row["trained"].item() == f"{r2.value.mean():.3f}"
        # the per-factor table holds every row of results.csv and sorts on a click
        factors = _rows(page, "factors")
        assert len(factors) == len(results.drop_duplicates(
            ["kind", "factor", "readout", "metric"]))
        column = page.evaluate("Array.from(document.querySelectorAll('#factors th'))"
                               ".findIndex(c => c.textContent === 'view1')")
        page.evaluate(f"document.querySelectorAll('#factors th')[{column}].click()")
        values = [float(r[column]) for r in _rows(page, "factors") if r[column] != "–"]
        assert values == sorted(values) and len(values) > 1
        assert "blockident run experiment=numerical" in page.evaluate(
            "document.getElementById('run-info').textContent")
        shot = page.screenshot(tmp_path / "report.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("BLOCKIDENT_SCREENSHOT"):  # docs/report.png is made this way
            page.open(run / "report.html")
            shutil.copyfile(page.screenshot(tmp_path / "full.png", height=1400),
                            os.environ["BLOCKIDENT_SCREENSHOT"])
    finally:
        page.close()


@needs_chromium
def test_sweep_and_comparison_reports_in_a_browser(sweep, tmp_path):
    out = tmp_path / "compare.html"
    assert main(["report", str(sweep / "0"), str(sweep / "1"), "--html", str(out)]) == 0
    assert main(["report", str(sweep), "--html"]) == 0
    page = Page()
    try:
        for path in (sweep / "report.html", out):
            _checked(page, path)
            assert len(_rows(page, "differences")) == 2
        kinds = pd.DataFrame(_rows(page, "kinds"), columns=page.evaluate(
            "Array.from(document.querySelectorAll('#kinds th')).map(c => c.textContent)"))
    finally:
        page.close()
    jobs = pd.concat(pd.read_csv(sweep / job / "summary.csv") for job in ("0", "1"))
    values = jobs[(jobs.encoding == "view1") & (jobs.readout == "linear")
                  & (jobs.kind == "content")]["trained"].dropna()
    cell = kinds[(kinds.encoding == "view1") & (kinds.readout == "linear")
                 & (kinds.kind == "content") & (kinds.stat == "trained")]["all runs"].item()
    half = stats.t.ppf(0.975, len(values) - 1) * values.std() / np.sqrt(len(values))
    expected = f"{values.mean():.3f}" + (f" ± {half:.3f}" if len(values) > 1 else "")
    assert cell == f"{expected} ({len(values)})"
