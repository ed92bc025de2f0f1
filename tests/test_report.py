"""Per-category report: kind means, figures and the ``blockident report`` command."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

import blockident.report as report
from blockident.cli import main
from blockident.report import kind_means, plot_boxes, plot_categories, write_results

METRICS = ["accuracy", "balanced_accuracy", "roc_auc", "positives"]


def results_table(seed: int, content: int = 5, style: int = 30) -> pd.DataFrame:
    """Two encodings x two readouts x (content + style) categories; about 10% NaN values."""
    rng = np.random.default_rng(seed)
    rows = [{"encoding": encoding, "factor": f"{kind}_{c}", "kind": kind, "readout": readout,
             "metric": metric, "value": rng.uniform(0.3, 1.0) if rng.random() > 0.1 else np.nan}
            for encoding in ["frames", "untrained:frames"] for readout in ["mlp", "logreg"]
            for kind, n in [("content", content), ("style", style)] for c in range(n)
            for metric in METRICS]
    return pd.DataFrame(rows)


def make_run(path, table: pd.DataFrame, name: str = "realworld", **config):
    path.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"info": {"name": name}, "seed": 0, **config}),
                   path / "config.yaml")
    write_results(table.to_dict("records"), path / "results.csv")
    return path


def test_kind_means_skip_undefined_values():
    rows = [("e", "c0", "content", "mlp", 0.6), ("e", "c1", "content", "mlp", np.nan),
            ("e", "c2", "content", "mlp", 1.0), ("e", "s0", "style", "mlp", 0.5),
            ("e", "s1", "style", "mlp", 0.7), ("e", "s0", "style", "gp", np.nan)]
    table = pd.DataFrame([{"encoding": e, "factor": f, "kind": k, "readout": r,
                           "metric": "balanced_accuracy", "value": v} for e, f, k, r, v in rows])
    table = pd.concat([table, table.assign(metric="f1", value=0.0)], ignore_index=True)
    means = kind_means(table)
    assert list(means.index) == [("e", "mlp", "content"), ("e", "mlp", "style"),
                                 ("e", "gp", "style")]
    assert means["mean"].iloc[:2].tolist() == pytest.approx([0.8, 0.6])
    assert np.isnan(means["mean"].iloc[2])
    assert means["n"].tolist() == [2, 2, 0]
    assert kind_means(table, "f1")["mean"].tolist() == [0.0, 0.0, 0.0]


def test_kind_means_of_a_generated_table_match_a_direct_mean():
    table = results_table(0)
    means = kind_means(table)
    assert len(means) == 8
    part = table[(table.metric == "balanced_accuracy") & (table.encoding == "frames")
                 & (table.readout == "logreg") & (table.kind == "style")]
    assert means.loc[("frames", "logreg", "style"), "mean"] == pytest.approx(
        part.value.dropna().mean())
    assert means.loc[("frames", "logreg", "style"), "n"] == part.value.notna().sum()


@pytest.mark.parametrize("runs", [1, 2])
def test_figures_for_one_and_several_runs(tmp_path, runs):
    tables = {f"run{i}": results_table(i) for i in range(runs)}
    readout = "mlp" if runs > 1 else None
    for path in [plot_categories(tables, tmp_path / "categories.png", readout=readout),
                 plot_boxes(tables, tmp_path / "boxes.png")]:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="r2"):
        plot_boxes(tables, tmp_path / "r2.png", metric="r2")


def test_hundreds_of_categories(tmp_path):
    path = plot_categories({"many": results_table(0, 20, 200)}, tmp_path / "many.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_command_compares_runs(tmp_path, capsys):
    first = make_run(tmp_path / "a", results_table(0))
    second = make_run(tmp_path / "b", results_table(1))
    out = tmp_path / "report"
    assert main(["report", str(first), str(second), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"categories.png", "boxes.png", "summary.csv"}
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == ["run", "encoding", "readout", "kind", "mean", "n"]
    assert set(summary.run) == {"realworld/a", "realworld/b"} and len(summary) == 16
    expected = kind_means(results_table(1)).loc[("frames", "mlp", "content"), "mean"]
    row = summary[(summary.run == "realworld/b") & (summary.encoding == "frames")
                  & (summary.readout == "mlp") & (summary.kind == "content")]
    assert row["mean"].item() == pytest.approx(expected)
    printed = capsys.readouterr().out
    assert "realworld/a" in printed and str(out / "boxes.png") in printed


def test_runs_are_labelled_by_the_config_keys_that_differ(tmp_path):
    runs = [make_run(tmp_path / str(i), results_table(i), seed=i % 2, loss={"tau": tau})
            for i, tau in enumerate([0.1, 0.1, 1.0])]
    assert main(["report", *map(str, runs), "--out", str(tmp_path / "out")]) == 0
    assert set(pd.read_csv(tmp_path / "out" / "summary.csv").run) == {
        "loss.tau=0.1, seed=0", "loss.tau=0.1, seed=1", "loss.tau=1.0, seed=0"}


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plot functions save, by file name, with a check that an artist lies
    inside its figure as drawn (on the Agg canvas the file is written with)."""
    figures, save = {}, report._save

    def keep(fig, path):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        fig.inside = lambda artist: fig.bbox.contains(*artist.get_window_extent(renderer).p0) \
            and fig.bbox.contains(*artist.get_window_extent(renderer).p1)
        figures[path.name] = fig
        return save(fig, path)

    monkeypatch.setattr(report, "_save", keep)
    yield figures
    plt.close("all")


def test_titles_and_legends_fit_their_figures(tmp_path, drawn):
    tables = {f"realworld/2026-11-23_12-00-00_{i}": results_table(i) for i in range(2)}
    plot_categories(tables, tmp_path / "categories.png")  # 8 series with long labels
    one = {"realworld/2026-11-23_12-00-00_0": results_table(0).query("readout == 'mlp'")}
    plot_boxes({k: t.query("encoding == 'frames'") for k, t in one.items()},
               tmp_path / "boxes.png")  # a long common title over a narrow figure
    categories, boxes = drawn["categories.png"], drawn["boxes.png"]
    assert categories.inside(categories._suptitle) and boxes.inside(boxes.axes[0].title)
    legend = categories.legends[0]
    assert len(legend.get_texts()) == 8 and categories.inside(legend)


def test_undefined_categories_show_na_and_ticks_the_positives(tmp_path, drawn):
    table = results_table(0, content=3, style=3)
    table.loc[(table.factor == "content_1") & (table.metric == "balanced_accuracy"), "value"] = \
        np.nan
    table.loc[table.metric == "positives", "value"] = 7.0
    plot_categories({"run": table}, tmp_path / "categories.png")
    fig = drawn["categories.png"]
    content = fig.axes[0]
    assert [t.get_text() for t in content.texts].count("n/a") >= 4  # every series' slot
    assert {t.get_text() for t in content.get_xticklabels()} == {
        "content_0 (7)", "content_1 (7)", "content_2 (7)"}


@pytest.mark.parametrize(("metric", "chance"), [("r2", 0.0), ("balanced_accuracy", 0.5)])
def test_the_chance_line_is_the_metrics(tmp_path, drawn, metric, chance):
    plot_boxes({"run": results_table(0).replace({"metric": {"balanced_accuracy": metric}})},
               tmp_path / "boxes.png", metric=metric)
    plot_categories({"run": results_table(0).replace({"metric": {"balanced_accuracy": metric}})},
                    tmp_path / "categories.png", metric=metric)
    for name in ("boxes.png", "categories.png"):
        lines = [line for ax in drawn[name].axes for line in ax.get_lines()
                 if line.get_linestyle() == "--"]
        assert lines and {tuple(line.get_ydata()) for line in lines} == {(chance, chance)}


def test_report_of_one_run_writes_into_it_with_labels_and_readout(tmp_path):
    run = make_run(tmp_path / "a", results_table(0))
    assert main(["report", str(run), "--readout", "logreg", "--labels", "mine"]) == 0
    summary = pd.read_csv(run / "summary.csv")
    assert set(summary.run) == {"mine"} and set(summary.readout) == {"logreg"}
    assert (run / "categories.png").stat().st_size and (run / "boxes.png").stat().st_size


def test_missing_results_are_named(tmp_path, capsys):
    run = make_run(tmp_path / "a", results_table(0))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(run), str(empty), "--out", str(tmp_path / "out")]) == 2
    assert str(empty / "results.csv") in capsys.readouterr().err


def test_wrong_columns_are_named(tmp_path, capsys):
    run = tmp_path / "a"
    run.mkdir()
    pd.DataFrame({"factor": ["x"], "value": [1.0]}).to_csv(run / "results.csv", index=False)
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert str(run / "results.csv") in err and "encoding" in err


def test_absent_metric_or_readout_fails(tmp_path, capsys):
    regression = results_table(0).assign(metric="r2")
    run = make_run(tmp_path / "a", regression)
    assert main(["report", str(run)]) == 2
    assert "no 'balanced_accuracy' rows" in capsys.readouterr().err
    run = make_run(tmp_path / "b", results_table(0))
    assert main(["report", str(run), "--readout", "svc"]) == 2
    assert "no readout 'svc'" in capsys.readouterr().err
    assert not (run / "summary.csv").exists()
