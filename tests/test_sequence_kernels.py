"""The zoo's own LSTM/GRU kernels: same numbers as PyTorch's, chosen where they should be, memory reused safely."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo.models import sequence_kernels
from zoo.models.rnn import RNNBackbone, RNNConfig, ZooGRU, ZooLSTM, _wants_own_kernel
from zoo.models.rnn import LoopRNN
from zoo.models.sequence_kernels import (POOL, GRUSequence, LSTMSequence, RNNSequence, own_kernel_wins, own_kernels,
                                         run_stack)

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


def _run(fn, module, x, hx, loss_kind):
    """Outputs, final states and the gradients of every input, state and parameter."""
    out, state = fn(module, x, hx)
    states = state if isinstance(state, tuple) else (state,)
    if loss_kind == "every_step":  # a gradient for every output step (a language model)
        loss = (out * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)).sum()
    else:  # only the final state carries a gradient (a last-step classifier): the kernels get no d_out
        loss = (states[0][-1] ** 2).sum()
    if loss_kind == "both":
        loss = loss + out.sum()
    inputs = [x, *(hx if isinstance(hx, tuple) else (hx,)), *module.parameters()]
    return [out, *states, *torch.autograd.grad(loss, inputs)]


def _max_relative_error(ours, theirs):
    return max(((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item() for a, b in zip(ours, theirs))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True), (3, False)])
@pytest.mark.parametrize("loss_kind", ["last_state", "every_step", "both"])
def test_outputs_and_gradients_match_pytorch(cell, layers, bidirectional, loss_kind):
    torch.manual_seed(0)
    module = CELLS[cell](3, 6, num_layers=layers, bidirectional=bidirectional, batch_first=True).double()
    directions = 2 if bidirectional else 1
    x = torch.randn(4, 9, 3, dtype=torch.double, requires_grad=True)

    def state():
        return torch.randn(layers * directions, 4, 6, dtype=torch.double, requires_grad=True)

    hx = (state(), state()) if cell == "lstm" else state()
    theirs = _run(lambda m, a, h: m(a, h), module, x, hx, loss_kind)
    ours = _run(run_stack, module, x, hx, loss_kind)
    assert _max_relative_error(ours, theirs) < 1e-12


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_float32_at_a_long_sequence_agrees_to_1e_4(cell):
    """The issue's bar: 1e-4 relative in outputs and gradients, in float32, over a long sequence."""
    torch.manual_seed(1)
    module = CELLS[cell](1, 32, batch_first=True)
    x = torch.rand(16, 300, 1, requires_grad=True)
    def zero_state():
        return torch.zeros(1, 16, 32, requires_grad=True)

    hx = (zero_state(), zero_state()) if cell == "lstm" else zero_state()
    theirs = _run(lambda m, a, h: m(a, h), module, x, hx, "both")
    ours = _run(run_stack, module, x, hx, "both")
    assert _max_relative_error(ours, theirs) < 1e-4


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
def test_vanilla_matches_pytorch_where_pytorch_has_a_kernel(nonlinearity, layers, bidirectional):
    torch.manual_seed(5)
    module = nn.RNN(3, 6, num_layers=layers, nonlinearity=nonlinearity, bidirectional=bidirectional,
                    batch_first=True).double()
    x = torch.randn(4, 9, 3, dtype=torch.double, requires_grad=True)
    hx = torch.randn(layers * (2 if bidirectional else 1), 4, 6, dtype=torch.double, requires_grad=True)
    theirs = _run(lambda m, a, h: m(a, h), module, x, hx, "both")
    ours = _run(run_stack, module, x, hx, "both")
    assert _max_relative_error(ours, theirs) < 1e-12


@pytest.mark.parametrize("nonlinearity", ["leaky_relu", "elu"])
def test_vanilla_without_a_pytorch_kernel_matches_autograd_through_the_cell(nonlinearity):
    """Against the diagnostics' unrolled cell, which autograd differentiates step by step."""
    from zoo.diagnostics.unroll import unrolled_forward

    torch.manual_seed(6)
    backbone = RNNBackbone(3, RNNConfig(cell="rnn", nonlinearity=nonlinearity, hidden_size=6, num_layers=2,
                                        bidirectional=True)).double()
    assert isinstance(backbone.rnn, LoopRNN)
    x = torch.randn(4, 9, 3, dtype=torch.double)
    results = []
    for forward in (lambda: backbone(x), lambda: unrolled_forward(backbone, x)[:2]):
        out, h_n = forward()
        loss = (out * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)).sum() + (h_n ** 2).sum()
        results.append([out, h_n, *torch.autograd.grad(loss, list(backbone.parameters()))])
    assert _max_relative_error(*results) < 1e-12


def test_gradcheck_of_the_functions():
    torch.manual_seed(2)
    T, B, I, H = 5, 3, 2, 4

    def t(*shape):
        return torch.randn(*shape, dtype=torch.double, requires_grad=True)

    assert torch.autograd.gradcheck(LSTMSequence.apply, (t(T, B, I), t(B, H), t(B, H), t(4 * H, I), t(4 * H),
                                                         t(4 * H, H)))
    assert torch.autograd.gradcheck(GRUSequence.apply, (t(T, B, I), t(B, H), t(3 * H, I), t(3 * H), t(3 * H, H),
                                                        t(3 * H)))
    for nonlinearity in ("tanh", "relu", "leaky_relu", "elu"):
        assert torch.autograd.gradcheck(lambda *a: RNNSequence.apply(*a, nonlinearity, 0.01, 1.0),
                                        (t(T, B, I), t(B, H), t(H, I), t(H), t(H, H)))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_zoo_modules_are_the_torch_modules_with_a_choice(cell):
    config = RNNConfig(cell=cell, hidden_size=8, num_layers=2)
    backbone = RNNBackbone(3, config)
    assert isinstance(backbone.rnn, CELLS[cell]) and isinstance(backbone.rnn, (ZooLSTM, ZooGRU))
    plain = CELLS[cell](3, 8, num_layers=2, batch_first=True)
    assert list(backbone.rnn.state_dict()) == list(plain.state_dict())  # checkpoints and weights interchange
    plain.load_state_dict(backbone.rnn.state_dict())
    x = torch.randn(2, 5, 3)
    forced = RNNBackbone(3, RNNConfig(cell=cell, hidden_size=8, num_layers=2, implementation="loop"))
    forced.rnn.load_state_dict(plain.state_dict())
    torch.testing.assert_close(forced(x)[0], plain(x)[0], rtol=1e-5, atol=1e-6)


def _calls_to_run_stack(monkeypatch, module, x, *, grad=True):
    calls = []

    def spy(*args, **kwargs):
        calls.append(1)
        return run_stack(*args, **kwargs)

    monkeypatch.setattr("zoo.cells.own_kernels.run_stack", spy)  # where ZooLSTM and ZooGRU look it up
    with torch.set_grad_enabled(grad):
        module(x)
    return len(calls)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_auto_takes_the_own_kernels_where_they_win_and_not_elsewhere(monkeypatch, cell):
    module = RNNBackbone(1, RNNConfig(cell=cell, hidden_size=4)).rnn
    long_batch = torch.rand(64, 700, 1)
    assert own_kernel_wins(cell, batch=64, seq_len=700, training=True)
    assert _calls_to_run_stack(monkeypatch, module, long_batch) == 1
    with own_kernels(False):  # what ZOO_OWN_KERNELS=0 does, and what a replay of an older record does
        assert _calls_to_run_stack(monkeypatch, module, long_batch) == 0
    assert _calls_to_run_stack(monkeypatch, module.double(), long_batch.double()) == 1
    assert not _wants_own_kernel(module.bfloat16(), long_batch.bfloat16(), cell)  # no bf16 kernels of ours
    assert not _wants_own_kernel(module.float(), long_batch.double(), cell)  # fused names the dtype mismatch
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not _wants_own_kernel(module, long_batch, cell)  # mixed precision stays with the fused kernel
    small = torch.rand(8, 20, 1)
    expected_small = 1 if cell == "gru" else 0  # the GRU wins at every training shape measured, the LSTM does not
    assert _calls_to_run_stack(monkeypatch, module, small) == expected_small
    assert _calls_to_run_stack(monkeypatch, module, small, grad=False) == 0  # forward only, small batch: fused
    module.implementation = "fused"
    assert _calls_to_run_stack(monkeypatch, module, long_batch) == 0
    module.implementation = "loop"
    assert _calls_to_run_stack(monkeypatch, module, small, grad=False) == 1


def test_the_environment_switch_is_read_at_first_use_and_checked(monkeypatch):
    import os
    import subprocess
    import sys

    from zoo.errors import ZooError

    monkeypatch.setattr(sequence_kernels, "_enabled", [None])
    monkeypatch.setenv(sequence_kernels.ENV_OWN_KERNELS, "off")
    assert sequence_kernels.own_kernels_enabled() is False
    monkeypatch.setattr(sequence_kernels, "_enabled", [None])
    monkeypatch.setenv(sequence_kernels.ENV_OWN_KERNELS, "maybe")
    with pytest.raises(ZooError, match="ZOO_OWN_KERNELS='maybe' is not a boolean; valid values: 1, 0, true"):
        sequence_kernels.own_kernels_enabled()
    # not at import: `import zoo` works, and the error comes where a command can report it in one line
    imported = subprocess.run([sys.executable, "-c", "import zoo"], capture_output=True, text=True,
                              env={**os.environ, "ZOO_OWN_KERNELS": "maybe"}, timeout=120)
    assert imported.returncode == 0, imported.stderr


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_state_of_the_wrong_size_is_pytorchs_error_not_a_silent_broadcast(cell):
    module = RNNBackbone(2, RNNConfig(cell=cell, hidden_size=4, implementation="loop")).rnn
    x = torch.rand(3, 5, 2)
    wrong = torch.zeros(1, 1, 4)  # batch 1 for a batch of 3
    with pytest.raises(RuntimeError, match=r"Expected hidden(\[0\])? size \(1, 3, 4\), got \[1, 1, 4\]"):
        module(x, (wrong, wrong) if cell == "lstm" else wrong)
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size. Expected 2, got 3"):
        module(torch.rand(3, 5, 3))


def test_unbatched_input_stays_with_pytorchs_kernel():
    module = RNNBackbone(2, RNNConfig(cell="gru", hidden_size=4)).rnn
    assert not _wants_own_kernel(module, torch.rand(700, 2), "gru")
    assert module(torch.rand(7, 2))[0].shape == (7, 4)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_pooled_buffers_are_reused_and_never_while_a_graph_holds_them(cell):
    """The pool hands a buffer out again only after the graph that saved it is gone.

    A retained graph runs its backward twice, with another forward (that takes buffers
    of the same shape) in between; both backwards must give the same gradients.
    """
    POOL.clear()
    torch.manual_seed(3)
    module = CELLS[cell](2, 5, batch_first=True)
    x = torch.randn(3, 7, 2)
    out, _ = run_stack(module, x)
    loss = out.pow(2).sum()
    first = torch.autograd.grad(loss, list(module.parameters()), retain_graph=True)
    other, _ = run_stack(module, torch.randn(3, 7, 2) * 5)  # takes buffers while the first graph lives
    other.sum().backward()
    second = torch.autograd.grad(loss, list(module.parameters()))
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    del out, loss, other
    pooled = {key: len(tensors) for key, tensors in POOL._free.items()}
    assert pooled and all(count >= 1 for count in pooled.values())  # both graphs' buffers came back
    shape = next(iter(POOL._free))[0]
    taken = POOL.take(shape, x)
    assert tuple(taken.shape) == shape  # a pooled tensor comes out...
    assert sum(len(tensors) for tensors in POOL._free.values()) == sum(pooled.values()) - 1  # ...of the pool
    POOL.clear()


def test_pool_keeps_to_its_cap_by_letting_the_longest_unused_shapes_go():
    pool = sequence_kernels.BufferPool(max_bytes=1000)
    like = torch.empty(0)
    small, large = torch.empty(100), torch.empty(200)  # 400 and 800 bytes
    pool.give_back(small, large)  # both do not fit: the older one goes
    assert pool._bytes == 800 and list(pool._free) == [((200,), torch.float32, torch.device("cpu"), False)]
    assert pool.take((200,), like) is large and pool._bytes == 0
    assert pool.take((100,), like) is not small  # an empty pool allocates
    pool.give_back(torch.empty(300))  # 1200 bytes: more than the whole cap, never kept
    assert pool._bytes == 0 and not pool._free


@pytest.mark.parametrize("cell", ["lstm", "gru", "minlstm", "lru"])
def test_a_buffer_pooled_under_inference_mode_never_reaches_training(cell):
    """Validation runs under torch.inference_mode: its buffers are inference tensors, which training may not
    write in place ("Inplace update to inference tensor outside InferenceMode"); the pool keeps them apart."""
    from zoo.models.rnn import RNNBackbone, RNNConfig

    POOL.clear()
    torch.manual_seed(0)
    if cell in ("minlstm", "lru"):  # the scan cells pool their buffers too (linear_recurrence.py, complex_scan.py)
        backbone = RNNBackbone(2, RNNConfig(cell=cell, hidden_size=5))
        forward = lambda x: backbone(x)[0]  # noqa: E731
        parameters = list(backbone.parameters())
    else:
        module = CELLS[cell](2, 5, batch_first=True)
        forward = lambda x: run_stack(module, x)[0]  # noqa: E731
        parameters = list(module.parameters())
    x = torch.randn(3, 7, 2)
    with torch.inference_mode():
        forward(x)  # a validation step leaves its buffers in the pool
    assert POOL._free and all(key[-1] for key in POOL._free)  # pooled as inference buffers
    forward(x).pow(2).sum().backward()  # the training step takes none of them
    assert all(p.grad is not None for p in parameters)
    POOL.clear()


def test_dropout_between_layers_trains_and_eval_is_deterministic():
    torch.manual_seed(4)
    backbone = RNNBackbone(2, RNNConfig(cell="lstm", hidden_size=6, num_layers=2, dropout=0.5,
                                        implementation="loop"))
    x = torch.randn(3, 8, 2)
    train_a, train_b = backbone(x)[0], backbone(x)[0]
    assert not torch.equal(train_a, train_b)  # a fresh mask each call
    backbone.eval()
    torch.testing.assert_close(backbone(x)[0], backbone(x)[0], rtol=0, atol=0)


@pytest.mark.parametrize("recorded,expected", [({"own_kernels": True}, True), ({"own_kernels": False}, False),
                                               ({}, False)])  # {}: a record from before these kernels
def test_records_store_the_switch_and_a_replay_runs_on_the_recorded_path(monkeypatch, recorded, expected):
    from zoo import records
    from zoo.app import runner as bench

    assert records.environment("cpu")["own_kernels"] is True
    with own_kernels(False):
        assert records.environment("cpu")["own_kernels"] is False
    old = {"id": "r", "seed": 0, "steps": 5, "config": {"trainer": {}},
           "environment": {"device_name": "x", "packages": {}, **recorded}}
    seen = []

    def execute(config, seed, **kwargs):
        seen.append(sequence_kernels.own_kernels_enabled())
        return {"environment": {"device_name": "x", "packages": {}}}

    monkeypatch.setattr(bench, "read_record", lambda path: old)
    monkeypatch.setattr(bench, "execute", execute)
    monkeypatch.setattr(bench, "compare_runs", lambda a, b, tolerance: {"verdict": "identical"})
    bench.reproduce("record.json")
    assert seen == [expected] and sequence_kernels.own_kernels_enabled() is True
