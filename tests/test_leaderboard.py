"""Leaderboards from records: medians of the scored seeds, failed and diverged runs apart, no NaN anywhere;
compare places a run."""

import copy
import csv

import pytest

from zoo.app.runner import execute
from zoo.app.cli import main
from zoo.errors import ZooError
from zoo.app.boards import aggregate, build, compare, median_record
from zoo.records import outcome, record_path, write_record


@pytest.fixture(scope="module")
def real_record(tmp_path_factory, tiny_config):
    return execute(tiny_config(), 0, weights_dir=tmp_path_factory.mktemp("w"))


def variant(record, model, seed, mse=None, diverged=False):
    r = copy.deepcopy(record)
    r["model"], r["seed"] = model, seed
    r["id"] = f"{r['benchmark']}.{r['tier']}.{model}.s{seed}"
    r["config"]["model"]["name"] = model
    if diverged:
        r.update(diverged=True, diverged_reason="diverged at step 3: loss is nan", lengths={}, longest_solved=None)
        r["metrics"]["test"] = {}
    else:
        r["metrics"]["test"]["mse"] = mse
    r.update(outcome(r["task"], r["metrics"]["test"], r["diverged"]))  # decided on the test split, as a run does
    return r


@pytest.fixture
def board(tmp_path, real_record):
    root = tmp_path / "records"
    runs = [variant(real_record, "a", 0, 0.10), variant(real_record, "a", 1, 0.14), variant(real_record, "a", 2, None,
            diverged=True), variant(real_record, "a", 3, 0.1666), variant(real_record, "a", 4, 3429.0),
            variant(real_record, "b", 0, 0.05), variant(real_record, "b", 1, 0.07),
            variant(real_record, "c", 0, None, diverged=True)]
    for r in runs:
        write_record(record_path(root, r["benchmark"], r["tier"], r["model"], r["seed"]), r)
    return root, runs


def test_seeds_aggregate_as_a_median_and_failed_or_diverged_runs_count_apart(board):
    _, runs = board
    rows = {row["model"]: row for row in aggregate(runs)}
    assert [row["model"] for row in aggregate(runs)] == ["b", "a", "c"]  # lower MSE first; all-diverged last
    a = rows["a"]
    # 0.1666 learnt nothing (failed); 3,429 is finite and diverged: neither enters the median of 0.10 and 0.14
    assert a["n"] == 2 and a["runs"] == 5 and a["failed"] == 1 and a["diverged"] == 2 and a["solved"] == 0
    assert (a["median"], a["min"], a["max"]) == (pytest.approx(0.12), 0.10, 0.14) and a["rank"] == 2
    assert rows["c"]["median"] is None and rows["c"]["diverged"] == 1 and rows["c"]["rank"] is None


def test_one_seed_shows_no_spread(real_record):
    from zoo.app.boards import fmt_metric

    (row,) = aggregate([variant(real_record, "a", 0, 0.1)])
    assert fmt_metric(row) == "0.1" and row["n"] == 1


def test_build_writes_tables_csv_figures_and_index_without_nan(board, tmp_path):
    root, _ = board
    out = tmp_path / "boards"
    written = build(root, out, allow_dirty=True)  # records made in the working tree, dirty while developing
    names = {p.name for p in written}
    assert {"README.md", "gradient_study.smoke.md", "gradient_study.smoke.csv"} <= names
    table = (out / "gradient_study.smoke.md").read_text()
    assert "The gradient-problem study" in table and "0.12 [0.1–0.14]" in table and "| 2/5 |" in table
    assert "nan" not in table.lower() and "gradient_study.smoke.a.s2" in table
    rows = list(csv.DictReader((out / "gradient_study.smoke.csv").open()))
    assert [r["model"] for r in rows] == ["b", "a", "c"] and rows[2]["median"] == "" and rows[1]["diverged"] == "2"
    assert "[gradient_study.smoke.md](gradient_study.smoke.md)" in (out / "README.md").read_text()
    assert "![gradient_study.smoke.curves](gradient_study.smoke.curves.png)" in table
    assert (out / "gradient_study.smoke.curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_board_draws_the_median_seed_of_each_model_and_never_a_diverged_one(board):
    _, runs = board
    rows = {row["model"]: row for row in aggregate(runs)}
    # a: 0.10, 0.14, 0.1666 (failed) tested; 3,429 and NaN diverged -> the middle of three is seed 1
    assert median_record(rows["a"], runs)["seed"] == 1
    assert median_record(rows["b"], runs)["seed"] == 0  # two: the lower middle
    assert median_record(rows["c"], runs) is None  # every seed diverged: nothing to draw


def test_compare_ranks_a_run_and_checks_apples_to_apples(board, tmp_path, real_record):
    root, _ = board
    mine = variant(real_record, "mine", 0, 0.065)
    path = write_record(tmp_path / "mine.json", mine)
    (result,) = compare(path, root)
    assert result["rank"] == 2 and result["ranked"] == 2 and result["best_model"] == "b"  # b and a have medians
    assert result["to_best"] == pytest.approx(0.005) and result["same_model"] is None
    assert result["apples_to_apples"]
    other = variant(real_record, "a", 7, 0.12)
    other["config"]["trainer"]["max_steps"] = 999
    (result,) = compare(write_record(tmp_path / "other.json", other), root)
    assert result["to_same_model"] == pytest.approx(0.0) and not result["apples_to_apples"]
    assert result["differences"] == ["trainer.max_steps 999 vs 6"]


def test_leaderboard_cli(board, tmp_path, capsys):
    root, runs = board
    assert main(["leaderboard", "build", "--records", str(root), "--out", str(tmp_path / "o"),
                 "--readme", str(tmp_path / "README.md"), "--allow_dirty"]) == 0
    path = record_path(root, runs[0]["benchmark"], runs[0]["tier"], "a", 0)
    assert main(["leaderboard", "compare", str(path), "--records", str(root)]) == 0
    assert "apples to apples" in capsys.readouterr().out
    with pytest.raises(ZooError, match="no records folder"):
        build(tmp_path / "nowhere", tmp_path / "o")


def test_study_heat_map_leaves_diverged_cells_blank(tmp_path, real_record):
    root = tmp_path / "records"
    runs = [variant(real_record, "rnn_tanh.identity.clip1", 0, 0.12),
            variant(real_record, "rnn_tanh.default.noclip", 0, 0.16),
            variant(real_record, "rnn_relu.default.noclip", 0, None, diverged=True)]
    runs[2]["config"]["model"]["backbone"].update(nonlinearity="relu", input_init="default", recurrent_init="default")
    runs[2]["config"]["trainer"].update(gradient_clip_val=None, gradient_clip_algorithm=None)
    for r in runs:
        write_record(record_path(root, r["benchmark"], r["tier"], r["model"], r["seed"]), r)
    written = build(root, tmp_path / "out", allow_dirty=True)
    assert (tmp_path / "out" / "gradient_study.smoke.study.png") in written
    table = (tmp_path / "out" / "gradient_study.smoke.md").read_text()
    # axes, test mse (no scored seed), n, solved, failed, diverged
    assert "| rnn_relu.default.noclip | relu | default | none | – | 0 | 0/1 | 0/1 | 1/1 |" in table


def test_build_regenerates_the_readme_block_only(board, tmp_path):
    root, _ = board
    readme = tmp_path / "README.md"
    readme.write_text("# top\n<!-- leaderboard:start -->\nold\n<!-- leaderboard:end -->\nbottom\n")
    build(root, tmp_path / "leaderboards", readme=readme, allow_dirty=True)
    text = readme.read_text()
    assert text.startswith("# top\n<!-- leaderboard:start -->") and text.endswith("<!-- leaderboard:end -->\nbottom\n")
    assert "old" not in text and "](leaderboards/gradient_study.smoke.md)" in text and "gradient-problem study" in text


def test_committed_leaderboards_are_exactly_what_the_records_build(tmp_path):
    """No hand-edited number: rebuilding from the committed records gives the committed tables and site byte for
    byte."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "leaderboards"
    if not (root / "records").is_dir():
        pytest.skip("no committed records")
    readme = tmp_path / "README.md"  # the repo's README, its block rebuilt: links relative to it as in the repo
    readme.write_text((root.parent / "README.md").read_text(encoding="utf-8"), encoding="utf-8")
    out = tmp_path / "leaderboards"
    build(root / "records", out, readme=readme, allow_dirty=True)  # until the sMNIST record is re-run clean
    committed = sorted(p.name for p in root.glob("*.md")) + sorted(p.name for p in root.glob("*.csv"))
    rebuilt = sorted(p.name for p in out.glob("*.md")) + sorted(p.name for p in out.glob("*.csv"))
    assert committed == rebuilt
    for name in committed:
        assert (out / name).read_text() == (root / name).read_text(), name
    assert readme.read_text(encoding="utf-8") == (root.parent / "README.md").read_text(encoding="utf-8"), \
        "the README's leaderboard block is not what `zoo leaderboard build` writes"
    # The web site too, file for file: its pages byte for byte; its images are the committed boards' figures.
    site, rebuilt_site = root / "site", out / "site"
    files = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert files == {p.relative_to(rebuilt_site).as_posix() for p in rebuilt_site.rglob("*") if p.is_file()}, \
        "the committed site is not what `zoo leaderboard build` writes"
    for name in sorted(files):
        if name.startswith("img/"):
            assert (site / name).read_bytes() == (root / Path(name).name).read_bytes(), name
        else:
            assert (site / name).read_bytes() == (rebuilt_site / name).read_bytes(), name


def test_records_from_a_dirty_checkout_are_refused_unless_allowed(tmp_path, real_record):
    root = tmp_path / "records"
    clean, dirty = variant(real_record, "a", 0, 0.1), variant(real_record, "b", 0, 0.1)
    clean["environment"]["git"] = {"commit": "0" * 40, "dirty": False}
    dirty["environment"]["git"] = {"commit": "0" * 40, "dirty": True}
    for r in (clean, dirty):
        write_record(record_path(root, r["benchmark"], r["tier"], r["model"], r["seed"]), r)
    with pytest.raises(ZooError, match=r"1 record\(s\) were made from a checkout with local changes.*"
                                       r"gradient_study.smoke.b.s0.*pass --allow_dirty"):
        build(root, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing half-written
    build(root, tmp_path / "out", allow_dirty=True)
    assert "**Made from a checkout with local changes**" in (tmp_path / "out" / "gradient_study.smoke.md").read_text()


def test_published_numbers_sit_in_the_ranking_marked_external_and_unranked(real_record):
    from zoo.app.boards import results_table
    from zoo.app.catalogue import Anchor

    rows = aggregate([variant(real_record, "a", 0, 0.1)])
    table = results_table(rows, (Anchor(0.05, "LSTM 128", "Someone et al. 2020, Table 1"),)).splitlines()
    ours, external = table[2], table[3]
    assert ours.startswith("| 1 | a | 0.1 |")
    assert external.startswith("| external | *published: LSTM 128* (Someone et al. 2020, Table 1) | *0.05* |")
    assert external.count("|") == ours.count("|")  # the same columns, the rest left empty
