"""The CLI's choices: listed by ``zoo fit --help``, checked with one error naming the valid ones, and read
from the one place each list lives (the cell registry, the init schemes, the optimizers, Lightning's clip
algorithms), so the help, the check and the library cannot drift apart. Also: ``zoo bench run
--model_config`` takes what ``zoo fit --print_config`` writes."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from typing import get_args

import pytest
import torch
import yaml

from zoo.app import recipes
from zoo.app.cli import choice_options, main
from zoo.app.runner import load_model_config
from zoo.cells import cell_names, get_cell, list_cells, register_cell, unregister_cell
from zoo.init import INIT_SCHEMES, InitScheme, apply_init
from zoo.models import rnn
from zoo.models.sequence_kernels import NONLINEARITIES
from zoo.optim import (CLIP_ALGORITHMS, OPTIMIZERS, SCHEDULES, ClipAlgorithm, OptimConfig, build_optimizer,
                       build_schedule)
from cell_checks import TINY_FIT

CHOICES = {  # option -> (what an error calls it, the registry's own list)
    "model.backbone.cell": ("cell", lambda: cell_names()),
    "model.backbone.nonlinearity": ("nonlinearity", lambda: NONLINEARITIES),
    "model.backbone.input_init": ("input_init", lambda: INIT_SCHEMES),
    "model.backbone.recurrent_init": ("recurrent_init", lambda: INIT_SCHEMES),
    "model.optim.name": ("optimizer", lambda: OPTIMIZERS),
    "model.optim.schedule": ("schedule", lambda: SCHEDULES),
    "trainer.gradient_clip_algorithm": ("gradient_clip_algorithm", lambda: CLIP_ALGORITHMS),
}


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:  # --help and jsonargparse's own errors end this way
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def help_text() -> str:
    code, out, _ = run("fit", "--help")
    assert code == 0
    return out


# ----------------------------------------------------------------------------- one list each
def test_each_literal_is_its_registry():
    assert get_args(rnn.refresh_cell_choices()) == cell_names() and sorted(cell_names()) == list_cells()
    assert get_args(rnn.Nonlinearity) == NONLINEARITIES
    assert get_args(InitScheme) == INIT_SCHEMES
    assert recipes.CLIP_ALGORITHMS is CLIP_ALGORITHMS == get_args(ClipAlgorithm)
    assert {option: choices for option, (_, choices) in choice_options().items()} == {
        option: tuple(registry()) for option, (_, registry) in CHOICES.items()}


def test_clip_algorithms_are_lightnings():
    from lightning.pytorch.utilities.enums import GradClipAlgorithmType

    assert set(CLIP_ALGORITHMS) == {a.value for a in GradClipAlgorithmType}


def test_every_listed_optimizer_schedule_and_init_is_implemented():
    params = [torch.nn.Parameter(torch.zeros(2))]
    for name in OPTIMIZERS:
        assert isinstance(build_optimizer(params, OptimConfig(name=name)), torch.optim.Optimizer)
    for schedule in SCHEDULES:
        build_schedule(build_optimizer(params, OptimConfig()), OptimConfig(schedule=schedule), total_steps=10)
    for scheme in INIT_SCHEMES:
        apply_init(torch.nn.RNN(4, 4), "rnn", input_init=scheme, recurrent_init=scheme)


# ----------------------------------------------------------------------------- --help and the check
@pytest.mark.parametrize("option", sorted(CHOICES))
def test_help_lists_the_choices(help_text, option):
    """Each option's help line names its type as a Literal of exactly the registry's values."""
    flat = " ".join(help_text.split())
    start = flat.index(f"  --{option} ".strip() + " ", flat.index("options:"))  # the entry, not the usage line
    entry = flat[start:flat.index(" --", start + len(option) + 3)]  # up to the next option
    literal = "Literal[" + ", ".join(repr(v) for v in CHOICES[option][1]()) + "]"
    assert literal in entry.replace("[ ", "[").replace(" ]", "]"), entry


@pytest.mark.parametrize("option", sorted(CHOICES))
@pytest.mark.parametrize("where", ["command line", "config file"])
def test_a_bad_value_is_one_error_naming_the_valid_ones(option, where, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    setting, registry = CHOICES[option]
    if where == "command line":
        args = [f"--{option}", "bogus"]
    else:
        config: dict = {}
        node = config
        *parents, key = option.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[key] = "bogus"
        (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
        args = ["--config", str(tmp_path / "run.yaml")]
    code, _, err = run("fit", *TINY_FIT, *args)
    assert code == 2
    assert err.strip() == f"zoo: error: unknown {setting} 'bogus'; valid choices: {', '.join(registry())}"
    assert not list(tmp_path.rglob("*.ckpt"))


def test_a_cell_registered_after_import_is_a_choice(help_text):
    twin = dataclasses.replace(get_cell("gru"), name="gru_twin")
    register_cell(twin)
    try:
        code, out, _ = run("fit", "--help")
        assert code == 0 and "gru_twin" in out
    finally:
        unregister_cell("gru_twin")
    assert "gru_twin" not in help_text and "gru_twin" not in get_args(rnn.refresh_cell_choices())


# ----------------------------------------------------------------------------- print_config -> bench run
def test_print_config_runs_as_a_bench_model_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, printed, err = run("fit", "--data", "AddingProblem", "--model.backbone.cell", "gru",
                             "--model.backbone.hidden_size", "8", "--model.backbone.recurrent_init", "orthogonal",
                             "--model.optim.lr", "0.002", "--model.l2", "0.0001", "--trainer.gradient_clip_val", "0.5",
                             "--trainer.gradient_clip_algorithm", "value", "--print_config")
    assert code == 0, err
    path = tmp_path / "my_gru.yaml"
    path.write_text(printed)
    recipe = load_model_config(path)
    assert (recipe.name, recipe.backbone.cell, recipe.backbone.hidden_size, recipe.clip_val, recipe.clip_algorithm) == \
        ("my_gru", "gru", 8, 0.5, "value")
    out = tmp_path / "out"
    code, _, err = run("bench", "run", "adding_t100", "--tier", "smoke", "--model_config", str(path), "--seeds", "0",
                       "--no_progress", "--records", str(out / "records"), "--weights", str(out / "weights"),
                       "--checkpoints", str(out / "checkpoints"))
    assert code == 0, err
    record = json.loads((out / "records" / "adding_t100" / "smoke" / "my_gru.s0.json").read_text())
    model, trainer = record["config"]["model"], record["config"]["trainer"]
    assert model["backbone"] == {**recipe.backbone.to_dict()} and model["backbone"]["recurrent_init"] == "orthogonal"
    assert model["optim"]["lr"] == 0.002 and model["module"]["l2"] == 0.0001
    assert (trainer["gradient_clip_val"], trainer["gradient_clip_algorithm"]) == (0.5, "value")


def test_a_fit_config_without_a_backbone_is_one_error(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  l2: 0.1\ntrainer:\n  max_steps: 5\n")
    with pytest.raises(Exception, match="its 'model' section has no 'backbone'"):
        load_model_config(path)
