"""The long-dependency board: one family's benchmarks side by side per model, test metric against T."""

import copy

import pytest

from zoo.app.boards import build
from zoo.app.families import family_rows
from zoo.app.runner import execute
from zoo.records import outcome, record_path, write_record


@pytest.fixture(scope="module")
def real_record(tiny_config):
    return execute(tiny_config(), 0, weights_dir=None)


def at_length(record, t, model, seed, mse):
    """``record`` as if it were a run of ``model`` on adding_t{t}: a test MSE and the state it gives."""
    r = copy.deepcopy(record)
    r.update(benchmark=f"adding_t{t}", tier="cpu", model=model, seed=seed, id=f"adding_t{t}.cpu.{model}.s{seed}")
    r["config"].update(benchmark=r["benchmark"], tier="cpu")
    r["config"]["model"]["name"] = model
    r["config"]["data"]["args"]["seq_len"] = t
    r["metrics"]["test"]["mse"] = mse
    r.update(outcome(r["task"], r["metrics"]["test"], False))
    return r


def test_the_family_board_puts_each_t_side_by_side_and_finds_the_longest_t_solved(tmp_path, real_record):
    runs = [at_length(real_record, 100, "gru", s, v) for s, v in enumerate((0.004, 0.006, 0.2))]
    runs += [at_length(real_record, 200, "gru", s, v) for s, v in enumerate((0.02, 0.008, 0.009))]
    runs += [at_length(real_record, 100, "rnn", s, 0.1667) for s in range(3)]  # the trivial answer: failed
    root = tmp_path / "records"
    for r in runs:
        write_record(record_path(root, r["benchmark"], r["tier"], r["model"], r["seed"]), r)
    boards = {}
    for r in runs:
        boards.setdefault((r["benchmark"], r["tier"]), []).append(r)
    rows = {row["model"]: row for row in family_rows(boards, "adding", "cpu")}
    assert rows["gru"]["longest_trained_solved"] == 200  # 2 of 3 seeds solve at T=200
    assert rows["rnn"]["longest_trained_solved"] is None and rows["rnn"]["at"][100]["failed"] == 3
    build(root, tmp_path / "boards", allow_dirty=True)
    table = (tmp_path / "boards" / "adding.cpu.md").read_text()
    assert "| model | T = 100 | T = 200 | longest T solved |" in table
    # 0.2 is worse than the trivial 0.1667: a failed seed, counted and never in the median
    assert "| gru | 0.005 [0.004–0.006] (n 2); solved 2/3, failed 1 | 0.009 [0.008–0.02] (n 3); solved 2/3 | 200 |" in table
    assert "| rnn | solved 0/3, failed 3 | not run | – |" in table
    assert (tmp_path / "boards" / "adding.cpu.lengths.png").read_bytes()[:4] == b"\x89PNG"
    assert "[adding.cpu.md](adding.cpu.md)" in (tmp_path / "boards" / "README.md").read_text()


def test_one_length_makes_no_family_board(tmp_path, real_record):
    runs = [at_length(real_record, 100, "gru", 0, 0.004)]
    root = tmp_path / "records"
    write_record(record_path(root, "adding_t100", "cpu", "gru", 0), runs[0])
    build(root, tmp_path / "boards", allow_dirty=True)
    assert not (tmp_path / "boards" / "adding.cpu.md").exists()


def test_the_family_figure_names_a_model_with_no_scored_seed(tmp_path, real_record, monkeypatch):
    """A model failed at every T has no point to draw; the figure must still say it ran and failed."""
    import zoo.app.plots as plots

    seen = {}
    real_plot = plots.plot_lengths

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_plot(*args, **kwargs)

    monkeypatch.setattr(plots, "plot_lengths", spy)
    runs = [at_length(real_record, t, "rnn", s, 0.1667) for t in (100, 200) for s in range(2)]
    runs += [at_length(real_record, 100, "gru", 0, 0.004)]
    root = tmp_path / "records"
    for r in runs:
        write_record(record_path(root, r["benchmark"], r["tier"], r["model"], r["seed"]), r)
    build(root, tmp_path / "boards", allow_dirty=True)
    assert sorted(seen["unscored"]["rnn"]) == [100, 200] and seen["unscored"]["gru"] == []
    assert (tmp_path / "boards" / "adding.cpu.lengths.png").read_bytes()[:4] == b"\x89PNG"
