"""Hostile configs and records: YAML that asks for Python objects or expands to gigabytes, records made to mislead a board.

A YAML file is read by ``zoo bench run --model_config`` (``load_model_config``) and by
``zoo fit --config`` (checked by ``zoo.app.cli.check_arguments`` before jsonargparse reads it);
run records by ``zoo leaderboard build`` (``load_board``). Each hostile input must end in one
``zoo: error:`` line (exit status 2) naming the file, with nothing run, built or written.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from hostile_suite import BENCH, MODEL, TIER
from hostile_trials import Trial
from zoo.app.cli import main
from zoo.app.runner import load_model_config
from zoo.errors import ZooError
from zoo.records import MAX_RECORD_BYTES


def _zoo(*argv) -> tuple[int, str]:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse and jsonargparse end this way
        code = exit_.code
    return code, err.getvalue()


def _one_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert err.startswith("zoo: error: ") and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)


TAGS = {
    "object-apply": "!!python/object/apply:os.system [\"touch {marker}\"]",
    "object-new": "!!python/object/new:os.system [\"touch {marker}\"]",
    "name": "!!python/name:os.system",
    "module": "!!python/module:os",
}
# Where the tag goes, and how the file is handed to the zoo.
ENTRY_POINTS = ("model-config", "bench-run", "fit-config-yaml", "fit-config-other-suffix", "fit-config-inline")
FIT = ["fit", "--data", "AddingProblem", "--trainer.max_steps", "1"]

PYTHON_TAGS = Trial(
    "configs", "YAML that asks for Python objects",
    does="`!!python/object/apply:os.system`, `object/new`, `name` and `module` tags (the first two would run "
         "`touch MARKER`), in a model config (`load_model_config`, `zoo bench run --model_config`) and in a "
         "`zoo fit --config` given as a .yaml file, a file of another suffix and an inline string.",
    promise="Refused as not plain YAML, in one line naming the file and the tag; the marker file never appears and "
            "nothing is run or written.")


@PYTHON_TAGS
@pytest.mark.parametrize("tag", list(TAGS))
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_python_object_tags_are_refused_and_never_run(tmp_path, monkeypatch, tag, entry):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "MARKER"
    value = TAGS[tag].format(marker=marker)
    if entry.startswith("fit"):
        text = f"model:\n  l1: {value}\n"
    else:
        text = f"name: evil\nbackbone: {{cell: gru}}\nmodule:\n  l1: {value}\n"
    path = tmp_path / ("run.cfg" if entry == "fit-config-other-suffix" else "run.yaml")
    path.write_text(text)
    if entry == "model-config":
        with pytest.raises(ZooError, match=r"model config .*run.yaml is not valid YAML: could not determine a "
                                           r"constructor for the tag 'tag:yaml.org,2002:python/"):
            load_model_config(path)
    elif entry == "bench-run":
        code, err = _zoo("bench", "run", BENCH, "--tier", TIER, "--model_config", path, "--records", "r")
        _one_error(code, err, "run.yaml is not valid YAML", "python/")
    else:
        config = text if entry == "fit-config-inline" else path
        code, err = _zoo(*FIT, "--config", config)
        _one_error(code, err, "is not valid YAML", "python/")
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no records, runs or logs


def _laughs(depth: int = 9) -> str:
    """A flow sequence that defines its own anchors: the last of ``depth`` lists holds 10^depth strings."""
    parts = ["&a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    parts += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, depth)]
    return "[" + ", ".join(parts) + "]"


LAUGHS = _laughs()  # 10^9 strings once expanded; 500 bytes on disk
LOOP = "&loop [*loop]"  # a list that holds itself: infinite once expanded
LAUGH_CASES = {
    "model-config-name": ("model", f"name: {LAUGHS}\nbackbone: {{cell: gru}}\n"),
    "model-config-clip-val": ("model", f"name: x\nbackbone: {{cell: gru}}\nclip_val: {LAUGHS}\n"),
    "model-config-cell-options": ("model", f"name: x\nbackbone: {{cell: gru, cell_options: {{k: {LAUGHS}}}}}\n"),
    "model-config-module": ("model", f"name: x\nbackbone: {{cell: gru}}\nmodule: {{l1: {LAUGHS}}}\n"),
    "model-config-self-loop": ("model", f"name: x\nbackbone: {{cell: gru}}\nmodule: {{l1: {LOOP}}}\n"),
    "fit-print-config-layout": ("model", f"model:\n  backbone: {{cell: gru}}\n  l1: {LAUGHS}\n"),
    "bench-run": ("bench", f"name: x\nbackbone: {{cell: gru}}\nclip_val: {LAUGHS}\n"),
    "fit-config-yaml": ("fit", f"trainer:\n  default_root_dir: {LAUGHS}\n"),
    "fit-config-other-suffix": ("fit", f"model:\n  l1: {LAUGHS}\n"),
    "fit-config-inline": ("inline", f"{{trainer: {{default_root_dir: {LAUGHS}}}}}"),
    "fit-config-self-loop": ("fit", f"trainer:\n  default_root_dir: {LOOP}\n"),
    "fit-option-inline": ("option", f"{{cell: gru, cell_options: {{k: {LAUGHS}}}}}"),
    "fit-option-inline-self-loop": ("option", f"{{cell: gru, cell_options: {{k: {LOOP}}}}}"),
}

BILLION_LAUGHS = Trial(
    "configs", "YAML anchors that expand to gigabytes (billion laughs)",
    does="A 500-byte file whose nine anchors expand to 10^9 strings, and a list that holds itself, placed in a model "
         "config's name, clip_val, cell_options or module settings, in `zoo bench run --model_config`, and in "
         "`zoo fit --config` (a .yaml file, a file of another suffix, inline) and inline as the value of another "
         "`zoo fit` option (`--model.backbone`). `yaml.safe_load` builds aliases as "
         "shared references, so parsing is instant; what would hang is whatever walks the result next (a type "
         "check's message, `str()`, jsonargparse, the record's JSON). Each case runs in a child process, killed "
         "if it is still running after 60 s.",
    promise="Refused right after parsing, by a walk that stops at 100,000 values: one error saying the file expands "
            "past that, within the watchdog's 60 s, with nothing run or written.")


@BILLION_LAUGHS
@pytest.mark.parametrize("case", list(LAUGH_CASES))
def test_billion_laughs_are_refused_before_anything_walks_them(tmp_path, forker, case):
    kind, text = LAUGH_CASES[case]
    path = tmp_path / ("run.cfg" if case == "fit-config-other-suffix" else "run.yaml")
    path.write_text(text)
    if kind == "model":
        child = forker.run("zoo.app.runner:load_model_config", str(path), cwd=tmp_path, kill_after=60)
        message = child.result and child.result.get("message", "")
        assert not child.killed, f"{case}: still running after 60 s"
        assert child.result["type"] == "ZooError", child.result
    else:
        argv = (["bench", "run", BENCH, "--tier", TIER, "--model_config", str(path), "--records", "r"] if kind == "bench"
                else [*FIT, "--model.backbone", text] if kind == "option"
                else [*FIT, "--config", text if kind == "inline" else str(path)])
        child = forker.zoo(*argv, cwd=tmp_path, kill_after=60)
        assert not child.killed, f"{case}: still running after 60 s"
        assert child.code == 2 and child.err.startswith("zoo: error: "), child.err[-2000:]
        message = child.err
    assert "expands to more than 100,000 values once its aliases" in message, message
    assert len(message.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".child")) == [path.name]


# ------------------------------------------------------------------------------------------------- records
def _board_folder(tmp_path: Path, uninterrupted) -> Path:
    """A records folder with two real records (seeds 0 and 1), laid out as zoo bench run writes them."""
    folder = tmp_path / "r" / BENCH / TIER
    folder.mkdir(parents=True)
    for seed in (0, 1):
        shutil.copy(uninterrupted.folder / "r" / BENCH / TIER / f"{MODEL}.s{seed}.json", folder)
    return folder


def _build(tmp_path: Path) -> tuple[int, str]:
    return _zoo("leaderboard", "build", "--records", tmp_path / "r", "--out", tmp_path / "out", "--readme",
                tmp_path / "README.md", "--allow_dirty")


def _changed(folder: Path, **changes) -> Path:
    """Rewrite seed 1's record with ``changes`` (``a__b`` reaches inside ``a``; a value of ... deletes)."""
    path = folder / f"{MODEL}.s1.json"
    record = json.loads(path.read_text())
    for key, value in changes.items():
        *parents, last = key.split("__")
        target = record
        for part in parents:
            target = target[part]
        if value is ...:
            del target[last]
        else:
            target[last] = value
    path.write_text(json.dumps(record))
    return path


RECORDS = {
    # name: (make the bad record in the folder, what the one error line must say)
    "oversized-sparse-file": (lambda f: _oversized(f / "huge.json"), f"over the {MAX_RECORD_BYTES:,} a record may have"),
    "nested-100k-deep": (lambda f: (f / "deep.json").write_text("[" * 100_000 + "]" * 100_000), "nested too deeply"),
    "schema-version-3": (lambda f: _changed(f, schema_version=3), "has schema version 3; this rnn-zoo reads versions 1, 2"),
    "schema-version-0": (lambda f: _changed(f, schema_version=0), "has schema version 0"),
    "schema-version-string": (lambda f: _changed(f, schema_version="2"), "has schema version '2'"),
    "schema-version-missing": (lambda f: _changed(f, schema_version=...), "has schema version None"),
    "another-schema": (lambda f: _changed(f, schema="someone/else"), "is not an rnn-zoo run record"),
    "duplicate-id": (lambda f: shutil.copy(f / f"{MODEL}.s0.json", f / "copy.json"), "have the same id "
                     f"'{BENCH}.{TIER}.{MODEL}.s0'; a board counts each run once"),
    "duplicate-id-other-folder": (lambda f: _copied_elsewhere(f), "have the same id"),
    "seed-a-string": (lambda f: _changed(f, seed="1"), "its 'seed' field is str '1', expected an integer"),
    "seed-a-bool": (lambda f: _changed(f, seed=True), "its 'seed' field is bool True, expected an integer"),
    "metrics-a-list": (lambda f: _changed(f, metrics=[]), "its 'metrics' field is list of 0 items, expected a dict"),
    "test-metrics-a-string": (lambda f: _changed(f, metrics__test="0.1"), "cannot go on a board"),
    "no-convergence": (lambda f: _changed(f, convergence=...), "cannot go on a board: a field the boards read is missing"),
    "no-state": (lambda f: _changed(f, state=...), "cannot go on a board"),
    "no-diverged": (lambda f: _changed(f, diverged=...), "cannot go on a board"),
    "no-gradients": (lambda f: _changed(f, gradients=...), "cannot go on a board"),
    "no-environment": (lambda f: _changed(f, environment=...), "cannot go on a board"),
    "no-data-config": (lambda f: _changed(f, config__data=...), "cannot go on a board"),
    "not-a-record": (lambda f: (f / "notes.json").write_text('{"todo": 1}'), "is not an rnn-zoo run record"),
}


def _oversized(path: Path) -> None:
    with open(path, "wb") as f:  # sparse: 17 MiB that take no disk
        f.truncate(MAX_RECORD_BYTES + (1 << 20))


def _copied_elsewhere(folder: Path) -> None:
    other = folder.parent / "other"
    other.mkdir()
    shutil.copy(folder / f"{MODEL}.s1.json", other / "x.json")


BAD_RECORDS = Trial(
    "configs", "records made to mislead a board",
    does="`zoo leaderboard build` over a folder of real records plus one hostile one: a 17 MiB (sparse) file, JSON "
         "nested 100,000 deep, schema versions 3, 0, \"2\" or none, another schema, a copy of a record under another "
         "name (the same id twice), a seed that is a string or a bool, metrics that are a list, and records missing "
         "a field the boards read (convergence, state, diverged, gradients, environment, the data config).",
    promise="One `zoo: error:` line (exit status 2) naming the file and what is wrong, never a traceback; no board "
            "is written, so a duplicate is never counted twice in a median and a bad record never averaged in.")


@BAD_RECORDS
@pytest.mark.parametrize("case", list(RECORDS))
def test_a_hostile_record_stops_the_build_with_one_line_naming_it(tmp_path, uninterrupted, case):
    folder = _board_folder(tmp_path, uninterrupted)
    make, message = RECORDS[case]
    make(folder)
    code, err = _build(tmp_path)
    _one_error(code, err, message)
    assert not (tmp_path / "out").exists() and not (tmp_path / "README.md").exists()


@BAD_RECORDS
def test_the_same_folder_without_the_hostile_record_builds(tmp_path, uninterrupted):
    """The control: the two real records build a board of one model, n = 2."""
    _board_folder(tmp_path, uninterrupted)
    code, err = _build(tmp_path)
    assert code == 0, err
    csv = (tmp_path / "out" / f"{BENCH}.{TIER}.csv").read_text().splitlines()
    header, row = csv[0].split(","), csv[1].split(",")
    assert row[header.index("model")] == MODEL and row[header.index("runs")] == "2"


OVERSIZED_VALUES = Trial(
    "configs", "oversized values on the command line",
    does="`zoo fit` given a 2 MiB value inline: to `--config`, to `--model.backbone` (as `--opt value` and as "
         "`--opt=value`), each parsed as YAML by jsonargparse if it got that far.",
    promise="One error naming the option and the byte limit (1 MiB, a config file's), before anything parses, "
            "runs or writes.")


@OVERSIZED_VALUES
@pytest.mark.parametrize("form", ["config", "option", "option-equals"])
def test_an_oversized_inline_value_is_refused_naming_the_option(tmp_path, forker, form):
    value = "{cell: gru, cell_options: {k: '" + "x" * (2 << 20) + "'}}"
    argv = {"config": [*FIT, "--config", "{model: " + value + "}"], "option": [*FIT, "--model.backbone", value],
            "option-equals": [*FIT, f"--model.backbone={value}"]}[form]
    child = forker.zoo(*argv, cwd=tmp_path, kill_after=60)
    assert not child.killed and child.code == 2, child.err[-2000:]
    option = "--config" if form == "config" else "--model.backbone"
    assert f"the value given to {option}" in child.err and "over the 1,048,576 a config or a value may have" in child.err
    assert len(child.err.strip().splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".child")] == []
