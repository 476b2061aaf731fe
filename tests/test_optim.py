"""OptimConfig.group_lrs: learning rates of their own for the parameters a name pattern picks (expRNN's orthogonal part)."""

import json

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from zoo.cells.exprnn import orthogonal_parameters
from zoo.errors import ZooError
from zoo.models.rnn import RNNConfig
from zoo.module import SequenceModel
from zoo.optim import OptimConfig, build_optimizer, parameter_groups
from zoo.task_spec import TaskSpec

TASK = TaskSpec(name="toy", input_size=2, output_size=1)
EXPRNN = RNNConfig(cell="exprnn", hidden_size=6, num_layers=2, bidirectional=True)
ORTHOGONAL = "*.skew_weight_hh_*"


def test_without_group_lrs_the_optimizer_has_its_one_group_and_the_config_reads_as_before():
    config = OptimConfig(name="adam", lr=1e-3)
    assert "group_lrs" not in config.to_dict()  # a record or checkpoint written before the field reads the same
    assert OptimConfig.coerce(config.to_dict()) == config
    model = SequenceModel(TASK, RNNConfig(cell="gru", hidden_size=4), config)
    assert parameter_groups(model.named_parameters(), config) == list(model.parameters())
    optimizer = model.configure_optimizers()
    assert len(optimizer.param_groups) == 1 and optimizer.param_groups[0]["lr"] == 1e-3


def test_a_pattern_gives_the_parameters_it_names_their_own_lr():
    optim = OptimConfig(name="rmsprop", lr=1e-3, group_lrs={ORTHOGONAL: 1e-4})
    model = SequenceModel(TASK, EXPRNN, optim)
    rest, orthogonal = model.configure_optimizers().param_groups
    assert rest["lr"] == 1e-3 and orthogonal["lr"] == 1e-4
    # every layer's and direction's X, and nothing else: the parameters zoo.cells.exprnn says are orthogonal
    assert [id(p) for p in orthogonal["params"]] == [id(p) for p in orthogonal_parameters(model)]
    assert len(orthogonal["params"]) == 4
    assert {id(p) for p in rest["params"]} == {id(p) for p in model.parameters()} - {id(p) for p in orthogonal["params"]}
    # the config round-trips through JSON (records, checkpoints' hyperparameters)
    assert OptimConfig.coerce(json.loads(json.dumps(optim.to_dict()))) == optim
    assert model.hparams["optim"]["group_lrs"] == {ORTHOGONAL: 1e-4}


def test_each_group_trains_at_its_lr_and_the_schedule_scales_them_alike():
    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(torch.randn(8, 5, 2), torch.randn(8)), batch_size=4)
    optim = OptimConfig(name="sgd", lr=0.1, schedule="step", step_size=1, gamma=0.5, decay_start=0,
                        group_lrs={"head.*": 0.01})
    model = SequenceModel(TASK, RNNConfig(cell="rnn", hidden_size=3), optim)
    head, rnn = model.head.weight.detach().clone(), model.backbone.rnn.weight_hh_l0.detach().clone()
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    grads = {}
    model.on_before_optimizer_step = lambda opt: grads.update(
        head=model.head.weight.grad.clone(), rnn=model.backbone.rnn.weight_hh_l0.grad.clone())
    trainer.fit(model, loader)
    # decay_start 0: the schedule's factor 0.5 applies from the first step, to both groups
    assert [g["lr"] for g in trainer.optimizers[0].param_groups] == [0.1 * 0.5, 0.01 * 0.5]
    torch.testing.assert_close(model.head.weight.detach(), head - 0.01 * 0.5 * grads["head"])
    torch.testing.assert_close(model.backbone.rnn.weight_hh_l0.detach(), rnn - 0.1 * 0.5 * grads["rnn"])


def test_all_parameters_in_patterns_leaves_no_empty_default_group():
    model = SequenceModel(TASK, RNNConfig(cell="rnn", hidden_size=3))
    groups = parameter_groups(model.named_parameters(), OptimConfig(group_lrs={"backbone.*": 1e-2, "head.*": 1e-3}))
    assert [g["lr"] for g in groups] == [1e-2, 1e-3]
    assert isinstance(build_optimizer(groups, OptimConfig()), torch.optim.Adam)


@pytest.mark.parametrize("group_lrs, message", [
    ([("*", 1e-4)], r"group_lrs must be a mapping of parameter-name patterns to learning rates"),
    ({"": 1e-4}, r"group_lrs: each key must be a parameter-name pattern such as '\*.skew_weight_hh_\*', got ''"),
    ({3: 1e-4}, r"each key must be a parameter-name pattern .*, got 3"),
    ({ORTHOGONAL: 0.0}, r"group_lrs\['\*.skew_weight_hh_\*'\] must be a number > 0, got 0.0"),
    ({ORTHOGONAL: float("nan")}, r"must be a number > 0, got nan"),
    ({ORTHOGONAL: True}, r"must be a number > 0, got True"),
    ({ORTHOGONAL: "1e-4"}, r"must be a number > 0, got '1e-4'"),
])
def test_bad_group_lrs_are_one_error_each(group_lrs, message):
    with pytest.raises(ZooError, match=message):
        OptimConfig(group_lrs=group_lrs)


def test_a_pattern_that_names_no_parameter_lists_the_models_parameters_when_the_model_is_built():
    optim = OptimConfig(group_lrs={"*.skew_weight_hh_*": 1e-4})  # an expRNN pattern on a GRU
    with pytest.raises(ZooError, match=r"group_lrs pattern '\*.skew_weight_hh_\*' matches no parameter of the model; "
                                       r"its parameters: backbone.rnn.weight_ih_l0, backbone.rnn.weight_hh_l0, .*head.bias"):
        SequenceModel(TASK, RNNConfig(cell="gru", hidden_size=4), optim)


def test_a_parameter_two_patterns_match_is_an_error_naming_both():
    optim = OptimConfig(group_lrs={"backbone.*": 1e-4, "*weight_hh*": 1e-5})
    with pytest.raises(ZooError, match=r"parameter 'backbone.rnn.weight_hh_l0' matches group_lrs patterns "
                                       r"'backbone.\*' and '\*weight_hh\*'; give each parameter one learning rate"):
        SequenceModel(TASK, RNNConfig(cell="rnn", hidden_size=3), optim)
