"""Exploding runs: a recurrent matrix of spectral radius 10, and a learning rate of 10^4, through a real suite and board.

``tests/test_bench.py`` (``test_a_run_made_to_explode...``) checks a ReLU RNN at lr 1e4 on the
Markdown, CSV and JSON boards; these add the spectral-radius case, an LSTM at lr 1e4, and the
web site (HTML, its embedded JSON and SVG charts) and ``zoo leaderboard compare``.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import pytest

from hostile_suite import BENCH, MODEL, TIER
from hostile_trials import Trial
from zoo.app.cli import main
from zoo.records import read_record, record_path

EXPLODING = {
    # name: (model config, what the record must show)
    "relu_radius10": ("name: relu_radius10\nbackbone: {cell: rnn, nonlinearity: relu, input_init: xavier_uniform, "
                      "recurrent_init: identity, identity_scale: 10.0, bias_init: 0.0, hidden_size: 32}\n"
                      "optim: {name: adam, lr: 0.001}\n", "radius"),
    "lstm_lr1e4": ("name: lstm_lr1e4\nbackbone: {cell: lstm, hidden_size: 32}\noptim: {name: sgd, lr: 10000.0}\n", "lr"),
}
NUMBERS = re.compile(r"\b(nan|inf|infinity)\b", re.IGNORECASE)


def _numbers_shown(text: str, reasons: list[str]) -> list[str]:
    """Every nan or inf in ``text``, in any spelling, but for the words of a divergence's reason ("loss is nan")."""
    for reason in reasons:
        text = text.replace(reason, "")
    return NUMBERS.findall(text)


def _reasons(root: Path) -> list[str]:
    return [read_record(p)["diverged_reason"] for p in (root / "r").rglob("*.json") if read_record(p)["diverged"]]


def _zoo(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def exploded(tmp_path_factory, uninterrupted):
    """The two exploding models run as a suite beside a real record of a model that trains, then the boards built."""
    root = tmp_path_factory.mktemp("exploded")
    configs = []
    for name, (text, _) in EXPLODING.items():
        (root / f"{name}.yaml").write_text(text)
        configs.append(root / f"{name}.yaml")
    records = root / "r"
    (records / BENCH / TIER).mkdir(parents=True)
    shutil.copy(uninterrupted.folder / "r" / BENCH / TIER / f"{MODEL}.s0.json", records / BENCH / TIER)
    code, out, err = _zoo("bench", "run", BENCH, "--tier", TIER, "--model_config", *configs, "--records", records,
                          "--weights", root / "w", "--checkpoints", "none", "--no_progress")
    assert code == 0, err
    built = _zoo("leaderboard", "build", "--records", records, "--out", root / "boards", "--readme",
                 root / "README.md", "--allow_dirty")
    assert built[0] == 0, built[2]
    return root, out


EXPLODES = Trial(
    "numerics", "a run made to explode",
    does="`zoo bench run` (adding_t100, smoke tier) of a ReLU RNN whose recurrent matrix is 10 x the identity "
         "(spectral radius 10) and of an LSTM trained by SGD at lr 10^4, as `--model_config` files.",
    promise="The suite goes on and prints `diverged at step k: reason`; each run's record is written, complete, in "
            "the `diverged` state with no test metrics and no weights, and no NaN or infinity in it as a number; "
            "the spectral monitor recorded the radius of 10 at initialization.")


@EXPLODES
@pytest.mark.parametrize("name", list(EXPLODING))
def test_an_exploding_run_ends_diverged_with_its_record_written(exploded, name):
    root, out = exploded
    assert re.search(rf"{BENCH}\.{TIER}\.{name}\.s0: diverged at step \d+: ", out), out
    path = record_path(root / "r", BENCH, TIER, name, 0)
    text = path.read_text()
    record = read_record(path)
    assert record["state"] == "diverged" and record["diverged"] and record["stopped_by"] == "diverged"
    assert record["metrics"]["test"] == {} and record["weights"] is None
    assert _numbers_shown(text, [record["diverged_reason"]]) == []
    if EXPLODING[name][1] == "radius":  # what the spectral monitor measured at initialization
        radius = [v for k, v in record["spectral"].items() if "radius" in k and "init" in k]
        assert radius and all(abs(v - 10.0) < 1e-3 for v in radius if v is not None), record["spectral"]


BOARDS = Trial(
    "numerics", "no board shows a NaN",
    does="`zoo leaderboard build` (Markdown, CSV, JSON, figures and the web site) and `zoo leaderboard compare` over "
         "the two diverged records beside a real one.",
    promise="No file of the boards or the site holds `nan` or `inf` in any spelling (but in the words of a "
            "divergence's reason, `training loss is nan`); each diverged model's row has "
            "no median, n = 0 and 1/1 diverged, and compare says it is diverged and has no rank.")


@BOARDS
def test_no_board_or_page_shows_a_nan(exploded):
    root, _ = exploded
    files = [p for p in (root / "boards").rglob("*") if p.suffix in (".md", ".csv", ".json", ".html", ".js", ".svg")]
    assert any(p.suffix == ".html" for p in files) and any(p.suffix == ".csv" for p in files)
    reasons = _reasons(root)
    for path in files:
        assert _numbers_shown(path.read_text(encoding="utf-8"), reasons) == [], path
    table = (root / "boards" / f"{BENCH}.{TIER}.md").read_text()
    for name in EXPLODING:
        row = next(line for line in table.splitlines() if line.startswith("|") and f" {name} " in line)
        assert "| – | 0 | 0/1 | 0/1 | 1/1 |" in row, row


@BOARDS
@pytest.mark.parametrize("name", list(EXPLODING))
def test_compare_places_a_diverged_run_without_a_rank(exploded, name):
    root, _ = exploded
    code, out, err = _zoo("leaderboard", "compare", record_path(root / "r", BENCH, TIER, name, 0), "--records",
                          root / "r")
    assert code == 0, err
    assert "diverged, so it has no rank" in out and _numbers_shown(out, _reasons(root)) == [], out
