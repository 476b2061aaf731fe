"""What the catalogue asks the boards to hold (issues 21 and 22): every model the seeds name and every frontier cell on
the whole-sequence tasks, 3 seeds a cpu tier, the frontier papers' recipes and published numbers; and that the
committed records are still what the catalogue says."""

import json
import re

import pytest

from zoo.app.catalogue import BENCHMARKS, FIRST_LOOK, get_benchmark
from zoo.app.recipes import EXPRNN_ORTHOGONAL
from zoo.app.runner import build_data, build_model
from zoo.cells.exprnn import orthogonal_parameters
from zoo.records import find_records, read_record
from zoo.registry import architecture, list_models

from test_committed_records import PENDING_RERUN, RECORDS

WHOLE_SEQUENCE = ("adding_t100", "adding_t200", "adding_t500", "adding_t1000", "copy_t100", "copy_t200", "smnist",
                  "psmnist")
LANGUAGE_MODELS = ("ptb_word", "wikitext2_word", "ptb_char")
# issue 22: the seeds' models; issue 21: the frontier cells, by cell
SEED_MODELS = ("rnn_tanh_1x128", "irnn_1x128", "rnn_leaky_relu_1x128", "rnn_elu_1x128", "lstm_1x128", "gru_1x128",
               "lstm_2x128", "gru_2x128", "bilstm_1x128", "bigru_1x128")
FRONTIER_CELLS = ("indrnn", "cornn", "lem", "exprnn", "lru", "mingru", "minlstm")


@pytest.mark.parametrize("name", WHOLE_SEQUENCE)
def test_each_whole_sequence_board_holds_the_seeds_models_and_every_frontier_cell(name):
    bench = get_benchmark(name)
    assert set(SEED_MODELS) <= set(bench.models), sorted(set(SEED_MODELS) - set(bench.models))
    cells = {recipe.backbone.cell for recipe in bench.models.values()}
    assert set(FRONTIER_CELLS) <= cells, sorted(set(FRONTIER_CELLS) - cells)
    assert {m for m, r in bench.models.items() if r.backbone.bidirectional} == {"bilstm_1x128", "bigru_1x128"}
    for model in SEED_MODELS:
        assert model in list_models(pretrained=False)  # each a registered architecture, listed by zoo.list_models
        backbone = bench.run_config("cpu", model)["model"]["backbone"]
        assert {k: v for k, v in backbone.items() if k != "forget_bias"} == \
            {k: v for k, v in architecture(model).to_dict().items() if k != "forget_bias"}, (name, model)


def test_every_cpu_tier_has_three_seeds_but_the_readme_main_job():
    for bench in BENCHMARKS.values():
        if bench is FIRST_LOOK:  # the README's main job: one seed of each model, minutes in all
            assert bench.tier_seeds("cpu") == (0,)
            continue
        assert bench.tier_seeds("cpu") == (0, 1, 2), bench.name


def test_a_language_model_board_holds_no_bidirectional_model():
    for name in LANGUAGE_MODELS:
        assert not any(recipe.backbone.bidirectional for recipe in get_benchmark(name).models.values()), name


def test_the_new_reference_rows_take_the_references_recipe():
    for name in WHOLE_SEQUENCE:
        bench = get_benchmark(name)
        reference = bench.run_config("cpu", "rnn_tanh_1x128")["model"]["optim"]
        for model in ("rnn_leaky_relu_1x128", "rnn_elu_1x128", "lstm_2x128", "gru_2x128", "bilstm_1x128",
                      "bigru_1x128"):
            config = bench.run_config("cpu", model)
            assert config["model"]["optim"] == reference == {**reference, "name": "adam", "lr": 1e-3}
            assert config["trainer"]["gradient_clip_val"] == 1.0
        if name in ("smnist", "psmnist"):  # the benchmark's forget-gate bias for every LSTM on it
            for model in ("lstm_1x128", "lstm_2x128", "bilstm_1x128"):
                assert bench.run_config("cpu", model)["model"]["backbone"]["forget_bias"] == 3.0


@pytest.mark.parametrize("name, model, lr, orthogonal_lr", [
    ("smnist", "exprnn_1x170", 7e-4, 7e-5), ("psmnist", "exprnn_1x170", 1e-3, 1e-4),
    ("copy_t100", "exprnn_1x190", 2e-4, 2e-5), ("copy_t200", "exprnn_1x190", 2e-4, 2e-5),
    ("adding_t1000", "exprnn_1x128", 2e-4, 2e-5),
])
def test_exprnn_trains_its_orthogonal_part_at_its_own_lr_as_the_authors_do(name, model, lr, orthogonal_lr):
    config = get_benchmark(name).run_config("cpu", model)
    assert json.loads(json.dumps(config)) == config
    assert config["model"]["optim"]["name"] == "rmsprop" and config["model"]["optim"]["lr"] == lr
    assert config["model"]["optim"]["group_lrs"] == {EXPRNN_ORTHOGONAL: orthogonal_lr}
    assert config["trainer"]["gradient_clip_val"] is None
    built = build_model(config, build_data(config).task_spec)
    rest, orthogonal = built.configure_optimizers().param_groups
    assert (rest["lr"], orthogonal["lr"]) == (lr, orthogonal_lr)
    assert [id(p) for p in orthogonal["params"]] == [id(p) for p in orthogonal_parameters(built)]


def test_the_frontier_cells_on_copy_take_the_sequence_lengths_bound():
    for seq_len in (100, 200):
        options = get_benchmark(f"copy_t{seq_len}").run_config("cpu", "indrnn_2x128")["model"]["backbone"]
        assert options["cell_options"]["recurrent_max_len"] == seq_len + 20


def test_every_model_of_every_board_builds_for_its_task():
    """Each new row is a model the runner can build: its architecture fits the task, its group_lrs its parameters."""
    for bench in BENCHMARKS.values():
        if bench.name in LANGUAGE_MODELS:  # their task needs the corpus' vocabulary; tests/test_language.py builds them
            continue
        task = None
        for model in bench.models:
            config = bench.run_config("cpu", model)
            task = task or build_data(config).task_spec
            assert build_model(config, task).backbone.config.num_directions in (1, 2), (bench.name, model)


def test_the_frontier_papers_numbers_sit_beside_the_boards_with_their_sources():
    expected = {
        "smnist": {"IndRNN 6x128": 0.990, "coRNN 256": 0.994, "LEM 128": 0.995},
        "psmnist": {"IndRNN 6x128": 0.960, "coRNN 256": 0.973, "LEM 128": 0.966},
        "ptb_word": {"res-IndRNN 11 layers": 65.3, "LEM, one layer": 72.8},
        "ptb_char": {"IndRNN 6 layers, 50 steps": 1.26, "LEM, one layer": 1.25},
    }
    for name, anchors in expected.items():
        published = {anchor.model: anchor for anchor in get_benchmark(name).anchors}
        for model, value in anchors.items():
            assert published[model].value == value, (name, model)
            assert re.search(r"Table \d|README", published[model].source), published[model].source
    for name in ("smnist", "psmnist"):
        assert all(0 < a.value < 1 for a in get_benchmark(name).anchors)  # accuracies, as the board's metric


def test_the_committed_records_are_what_the_catalogue_says():
    """Nothing here changed an existing recipe: each committed record's config is its catalogue entry's.

    Records older than a config key (``val_check_interval``) lack it; every key a record has must agree.
    """
    records = [read_record(path) for path in find_records(RECORDS)]
    assert records
    for record in records:
        if record["id"] in PENDING_RERUN:
            continue
        recorded = record["config"]
        config = get_benchmark(record["benchmark"]).run_config(record["tier"], record["model"])
        assert recorded["model"] == config["model"] and recorded["data"] == config["data"], record["id"]
        assert {k: config["trainer"][k] for k in recorded["trainer"]} == recorded["trainer"], record["id"]
        assert {k: config[k] for k in recorded if k not in ("model", "data", "trainer")} == \
            {k: v for k, v in recorded.items() if k not in ("model", "data", "trainer")}, record["id"]
