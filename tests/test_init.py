import math

import pytest
import torch
from torch import nn

from zoo.errors import ZooError
from zoo.init import GATES, apply_init, expected_std
from zoo.models.rnn import RNNBackbone, RNNConfig

CELLS_WITH_ACT = [("rnn", "tanh"), ("rnn", "elu"), ("lstm", None), ("gru", None)]


def _blocks(backbone: RNNBackbone, prefix: str):
    gates = GATES[backbone.config.cell]
    for name, param in backbone.rnn.named_parameters():
        if name.startswith(prefix):
            for block in param.detach().chunk(gates, dim=0):
                yield name, block


@pytest.mark.parametrize("cell,act", CELLS_WITH_ACT)
def test_orthogonal_blocks(cell, act):
    config = RNNConfig(cell=cell, nonlinearity=act, hidden_size=16, num_layers=2, bidirectional=True,
                       input_init="orthogonal", recurrent_init="orthogonal")
    backbone = RNNBackbone(3, config)
    count = 0
    for name, block in _blocks(backbone, "weight_"):
        rows, cols = block.shape
        gram = block.T @ block if rows >= cols else block @ block.T  # orthonormal columns, or rows
        torch.testing.assert_close(gram, torch.eye(min(rows, cols)), atol=1e-5, rtol=0, msg=name)
        count += 1
    assert count == GATES[cell] * 2 * 2 * 2  # gates x (ih, hh) x layers x directions


def test_orthogonal_is_per_gate_block_not_whole_matrix():
    """Each H x H gate block is orthogonal on its own: the stacked 4H x H matrix then has W^T W = 4I."""
    backbone = RNNBackbone(3, RNNConfig(cell="lstm", hidden_size=8, recurrent_init="orthogonal"))
    w = backbone.rnn.weight_hh_l0.detach()
    torch.testing.assert_close(w.T @ w, 4 * torch.eye(8), atol=1e-5, rtol=0)


@pytest.mark.parametrize("scale", [1.0, 0.5])
@pytest.mark.parametrize("cell,act", CELLS_WITH_ACT)
def test_identity_is_scaled_identity(cell, act, scale):
    config = RNNConfig(cell=cell, nonlinearity=act, hidden_size=6, num_layers=2,
                       recurrent_init="identity", identity_scale=scale)
    backbone = RNNBackbone(6, RNNConfig(**{**config.to_dict(), "input_init": "identity"}))
    for name, block in _blocks(backbone, "weight_"):
        torch.testing.assert_close(block, scale * torch.eye(6), msg=name)


def test_identity_needs_square_blocks():
    with pytest.raises(ZooError, match=r"identity init needs square matrices, but weight_ih_l0 \(gate block 0\) has gate blocks of shape 32x2"):
        RNNBackbone(2, RNNConfig(cell="rnn", hidden_size=32, input_init="identity"))
    with pytest.raises(ZooError, match=r"weight_ih_l1 \(gate block 0\) has gate blocks of shape 8x16"):
        # the second layer of a bidirectional stack reads 2H inputs
        RNNBackbone(8, RNNConfig(cell="gru", hidden_size=8, num_layers=2, bidirectional=True, input_init="identity"))


@pytest.mark.parametrize("scheme", ["xavier_uniform", "xavier_normal", "he_uniform", "he_normal"])
@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_variance_matches_formula(scheme, cell):
    """Each gate block's empirical std is the formula's within sampling error (fan_in = input, fan_out = H)."""
    hidden, inputs = 256, 64
    backbone = RNNBackbone(inputs, RNNConfig(cell=cell, hidden_size=hidden, input_init=scheme, recurrent_init=scheme))
    for name, block in _blocks(backbone, "weight_"):
        fan_out, fan_in = block.shape
        want = expected_std(scheme, fan_in, fan_out)
        n = block.numel()
        # the sample std of n draws has relative standard error about 1/sqrt(2n); allow 5 of them
        assert abs(block.std().item() / want - 1) < 5 / math.sqrt(2 * n), (name, block.std().item(), want)
        assert abs(block.mean().item()) < 5 * want / math.sqrt(n)
    # He and Xavier differ for the same shapes, so the assertion above can tell them apart
    assert expected_std("he_normal", 64, 256) != pytest.approx(expected_std("xavier_normal", 64, 256), rel=0.05)


def test_default_is_pytorchs_own():
    torch.manual_seed(5)
    ours = RNNBackbone(3, RNNConfig(cell="gru", hidden_size=7))
    torch.manual_seed(5)
    theirs = nn.GRU(3, 7, batch_first=True)
    for (name, a), (_, b) in zip(ours.rnn.named_parameters(), theirs.named_parameters()):
        torch.testing.assert_close(a, b, msg=name)


def test_input_and_recurrent_schemes_are_separate():
    backbone = RNNBackbone(4, RNNConfig(cell="rnn", nonlinearity="relu", hidden_size=4,
                                        input_init="default", recurrent_init="identity", bias_init=0.0))
    torch.testing.assert_close(backbone.rnn.weight_hh_l0.detach(), torch.eye(4))
    assert not torch.allclose(backbone.rnn.weight_ih_l0.detach(), torch.eye(4))
    assert backbone.rnn.bias_ih_l0.abs().sum() == 0 and backbone.rnn.bias_hh_l0.abs().sum() == 0


def test_lstm_forget_bias():
    backbone = RNNBackbone(3, RNNConfig(cell="lstm", hidden_size=5, num_layers=2, bias_init=0.0, forget_bias=1.0))
    for layer in range(2):
        b_ih = getattr(backbone.rnn, f"bias_ih_l{layer}").detach().chunk(4)
        b_hh = getattr(backbone.rnn, f"bias_hh_l{layer}").detach().chunk(4)
        torch.testing.assert_close(b_ih[1] + b_hh[1], torch.ones(5))  # forget gate: total bias 1
        for gate in (0, 2, 3):
            torch.testing.assert_close(b_ih[gate] + b_hh[gate], torch.zeros(5))


def test_apply_init_rejects_bad_names():
    rnn = nn.LSTM(3, 4)
    with pytest.raises(ZooError, match="unknown recurrent_init 'glorot'"):
        apply_init(rnn, "lstm", recurrent_init="glorot")
    with pytest.raises(ZooError, match="forget_bias applies to the lstm and minlstm cells only"):
        apply_init(nn.GRU(3, 4), "gru", forget_bias=1.0)


# ----------------------------------------------------------------------------- chrono initialization
def test_chrono_lstm_forget_bias_is_log_uniform_and_input_gate_opposes_it():
    from zoo.models.rnn import RNNBackbone, RNNConfig

    t_max = 784
    torch.manual_seed(0)
    rnn = RNNBackbone(3, RNNConfig(cell="lstm", hidden_size=256, num_layers=2, bidirectional=True,
                                   chrono_t_max=t_max)).rnn
    for suffix in ("l0", "l1", "l0_reverse", "l1_reverse"):
        i, f, g, o = getattr(rnn, f"bias_ih_{suffix}").detach().chunk(4)
        hh = getattr(rnn, f"bias_hh_{suffix}").detach().chunk(4)
        assert float(f.min()) >= 0.0 and float(f.max()) <= math.log(t_max - 1)
        # log U(1, T-1): its median is log(T/2); spread over the range, not one constant
        assert abs(float(f.median()) - math.log(t_max / 2)) < 0.5 and float(f.std()) > 0.5
        torch.testing.assert_close(i, -f, rtol=0, atol=0)
        assert torch.equal(hh[0], torch.zeros_like(hh[0])) and torch.equal(hh[1], torch.zeros_like(hh[1]))
        # the cell and output gates keep PyTorch's default
        assert float(g.abs().max()) <= 1 / math.sqrt(256) and float(hh[2].abs().max()) > 0


def test_chrono_gru_sets_the_update_gate_that_keeps_the_state():
    from zoo.models.rnn import RNNBackbone, RNNConfig

    torch.manual_seed(0)
    rnn = RNNBackbone(2, RNNConfig(cell="gru", hidden_size=64, chrono_t_max=100)).rnn
    r, z, n = rnn.bias_ih_l0.detach().chunk(3)
    assert float(z.min()) >= 0.0 and float(z.max()) <= math.log(99)
    assert torch.equal(rnn.bias_hh_l0.detach().chunk(3)[1], torch.zeros(64))
    assert float(r.abs().max()) <= 1 / math.sqrt(64)  # untouched


def test_chrono_draws_only_when_asked():
    """A config without chrono gets the very same weights as before chrono existed: no extra random draws."""
    from zoo.models.rnn import RNNBackbone, RNNConfig

    torch.manual_seed(3)
    plain = RNNBackbone(2, RNNConfig(cell="lstm", hidden_size=8)).state_dict()
    torch.manual_seed(3)
    again = RNNBackbone(2, RNNConfig(cell="lstm", hidden_size=8, chrono_t_max=None)).state_dict()
    assert all(torch.equal(plain[k], again[k]) for k in plain)


@pytest.mark.parametrize("settings,message", [
    (dict(cell="rnn", chrono_t_max=100), r"chrono_t_max \(chrono initialization\) applies to the lstm and gru cells "
                                        r"only, but cell is 'rnn'"),
    (dict(cell="lstm", chrono_t_max=1), r"chrono_t_max must be an integer >= 2, got 1"),
    (dict(cell="gru", chrono_t_max=100.5), r"chrono_t_max must be an integer >= 2, got 100.5"),
    (dict(cell="lstm", chrono_t_max=100, forget_bias=1.0), r"chrono_t_max 100 and forget_bias 1.0 both set"),
])
def test_chrono_bad_settings_are_one_clear_error(settings, message):
    from zoo.models.rnn import RNNConfig

    with pytest.raises(ZooError, match=message):
        RNNConfig(**settings)
