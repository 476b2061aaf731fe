"""``zoo.create_model``, timm style: an architecture or a pretrained name, checked overrides, released weights."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import zoo
from zoo import pretrained
from zoo.errors import ZooError
from zoo.module import SequenceModel
from zoo.task_spec import TaskSpec

RELEASE = "gru_1x128.adding_t100"


def test_import_zoo_and_create_an_architecture_in_a_fresh_process():
    result = subprocess.run([sys.executable, "-c", "import zoo; m = zoo.create_model('lstm_1x128'); print(type(m).__name__)"],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "SequenceModel"


def test_a_bare_architecture_gets_the_default_interface_and_trains():
    model = zoo.create_model("lstm_1x128")
    assert isinstance(model, SequenceModel) and model.training
    assert (model.task.input_size, model.task.output_size, model.task.head) == (1, 1, "last")
    assert model.backbone_config == zoo.registry.architecture("lstm_1x128")
    x, y = torch.randn(4, 7, 1), torch.randn(4)
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    assert all(p.grad is not None for p in model.backbone.parameters())


def test_overrides_reach_the_backbone_the_module_the_optimizer_and_the_interface():
    model = zoo.create_model("rnn_tanh_1x128", hidden_size=32, num_layers=2, dropout=0.1, nonlinearity="relu",
                             l2=1e-4, optim={"name": "sgd", "lr": 0.1, "momentum": 0.9},
                             input_size=3, output_size=5, head="every")
    b = model.backbone_config
    assert (b.hidden_size, b.num_layers, b.dropout, b.nonlinearity) == (32, 2, 0.1, "relu")
    assert model.l2 == 1e-4 and (model.optim_config.name, model.optim_config.lr) == ("sgd", 0.1)
    assert model(torch.randn(2, 6, 3)).shape == (2, 6, 5)


def test_a_task_spec_sets_the_interface():
    task = TaskSpec(name="mine", input_size=4, output_size=3, head="last", loss="cross_entropy", metrics=("accuracy",),
                    target_metric="accuracy", target_mode="max")
    model = zoo.create_model("gru_1x128", task=task)
    assert model.task == task and model(torch.randn(2, 5, 4)).shape == (2, 3)
    with pytest.raises(ZooError, match="got task and input_size; give the task alone"):
        zoo.create_model("gru_1x128", task=task, input_size=2)


@pytest.mark.parametrize("name,kwargs,message", [
    ("lstm_1x128", {"hidden_sz": 64},
     r"create_model\('lstm_1x128'\) got unknown setting\(s\) hidden_sz; valid settings: cell, hidden_size, .*optim, "
     r"task, input_size, output_size, head"),
    ("rnn_tanh_1x128", {"nonlinearity": "sigmoid"},
     r"create_model\('rnn_tanh_1x128'\): unknown nonlinearity 'sigmoid'; valid choices: tanh, relu, leaky_relu, elu"),
    ("lstm_1x128", {"nonlinearity": "relu"}, r"create_model\('lstm_1x128'\): nonlinearity 'relu' was given for cell 'lstm'"),
    ("lstm_1x128", {"dropout": 0.2}, r"dropout 0.2 acts between layers, so it needs num_layers >= 2"),
    ("lstm_1x128", {"recurrent_init": "glorot"}, r"unknown recurrent_init 'glorot'; valid choices: default, "),
    ("lstm_1x128", {"optim": {"name": "adagrad"}}, r"unknown optimizer 'adagrad'; valid choices: sgd, adam, adamw"),
    ("lstm_1x128", {"head": "first"}, r"unknown task head 'first'; valid choices: last, every"),
    ("lstm_9x9", {}, r"unknown model 'lstm_9x9'; valid choices: bigru_1x128, bilstm_1x128, cornn_1x128, .*gru_1x128.adding_t100"),
    (RELEASE, {"input_size": 3}, r"cannot take input_size: a pretrained name's task is its card's"),
])
def test_a_bad_override_or_name_is_one_error_naming_what_is_valid(name, kwargs, message):
    with pytest.raises(ZooError, match=message):
        zoo.create_model(name, **kwargs)


def test_pretrained_loads_the_released_weights_checked_by_sha256():
    model = zoo.create_model(RELEASE, pretrained=True)
    reference = pretrained.load(RELEASE).model  # the loader create_model reuses
    assert model.training and not reference.training
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in model.state_dict().items())
    card = pretrained.entry(RELEASE)
    assert model.task.name == card["task"]["name"] and model.optim_config.lr == card["recipe"]["optim"]["lr"]


def test_pretrained_takes_only_settings_that_keep_the_weights():
    model = zoo.create_model(RELEASE, pretrained=True, l2=1e-3, optim={"name": "sgd", "lr": 0.01})
    assert model.l2 == 1e-3 and model.optim_config.name == "sgd"
    with pytest.raises(ZooError, match=r"pretrained=True\) cannot take hidden_size: the released weights fix it; "
                                       r"settings it takes: dropout, implementation, io_dropout, l1, l2"):
        zoo.create_model(RELEASE, pretrained=True, hidden_size=64)


def test_pretrained_by_architecture_name():
    assert zoo.create_model("lstm_1x128", pretrained=True).task.name == pretrained.entry("lstm_1x128.smnist")["task"]["name"]
    with pytest.raises(ZooError, match="architecture 'gru_1x128' has 2 pretrained releases: gru_1x128.adding_t100, "
                                       "gru_1x128.copy_t100; name the one to load"):
        zoo.create_model("gru_1x128", pretrained=True)
    with pytest.raises(ZooError, match="architecture 'lru_1x128' has no pretrained weights; pretrained models: "):
        zoo.create_model("lru_1x128", pretrained=True)
    with pytest.raises(ZooError, match="pretrained must be True or False, got 'yes'"):
        zoo.create_model("lstm_1x128", pretrained="yes")


def test_a_pretrained_name_without_weights_is_its_network_freshly_initialized():
    fresh = zoo.create_model(RELEASE)
    released = zoo.create_model(RELEASE, pretrained=True)
    assert fresh.state_dict().keys() == released.state_dict().keys()
    assert not all(torch.equal(v, released.state_dict()[k]) for k, v in fresh.state_dict().items())
