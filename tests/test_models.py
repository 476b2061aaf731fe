import pytest
import torch
from torch import nn

from zoo.errors import ZooError
from zoo.models.rnn import CELLS, LoopRNN, RNNBackbone, RNNConfig

B, T, I, H = 3, 7, 4, 5


def _config(cell: str, **kw) -> RNNConfig:
    return RNNConfig(cell=cell, hidden_size=H, **kw)


@pytest.mark.parametrize("cell,nonlinearity", [("rnn", "tanh"), ("rnn", "relu"), ("rnn", "leaky_relu"), ("rnn", "elu"), ("lstm", None), ("gru", None)])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_shapes(cell, nonlinearity, num_layers, bidirectional):
    config = _config(cell, nonlinearity=nonlinearity, num_layers=num_layers, bidirectional=bidirectional)
    backbone = RNNBackbone(I, config)
    D = 2 if bidirectional else 1
    out, state = backbone(torch.randn(B, T, I))
    assert out.shape == (B, T, D * H)
    h_n = state[0] if cell == "lstm" else state
    assert h_n.shape == (num_layers * D, B, H)
    assert backbone.last_features(state).shape == (B, D * H)
    assert backbone.output_size == D * H


def test_fused_kernels_where_they_exist_and_loop_elsewhere():
    assert isinstance(RNNBackbone(I, _config("lstm")).rnn, nn.LSTM)
    assert isinstance(RNNBackbone(I, _config("gru")).rnn, nn.GRU)
    assert isinstance(RNNBackbone(I, _config("rnn")).rnn, nn.RNN)
    assert isinstance(RNNBackbone(I, _config("rnn", nonlinearity="relu")).rnn, nn.RNN)
    assert isinstance(RNNBackbone(I, _config("rnn", nonlinearity="leaky_relu")).rnn, LoopRNN)
    assert isinstance(RNNBackbone(I, _config("rnn", nonlinearity="elu")).rnn, LoopRNN)
    assert isinstance(RNNBackbone(I, _config("rnn", implementation="loop")).rnn, LoopRNN)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True), (3, False)])
def test_loop_matches_fused_kernel(nonlinearity, num_layers, bidirectional):
    """Where both paths exist they are the same function: outputs, final state and every gradient."""
    fused = nn.RNN(I, H, num_layers, nonlinearity=nonlinearity, batch_first=True, bidirectional=bidirectional)
    loop = LoopRNN(I, H, num_layers, nonlinearity=nonlinearity, bidirectional=bidirectional)
    loop.load_state_dict(fused.state_dict())  # same names, same shapes
    x = torch.randn(B, T, I, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    h0 = torch.randn(num_layers * (2 if bidirectional else 1), B, H)
    out_f, h_f = fused(x, h0)
    out_l, h_l = loop(x2, h0)
    torch.testing.assert_close(out_l, out_f, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h_l, h_f, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(out_f)
    ((out_f * weights).sum() + h_f.pow(2).sum()).backward()
    ((out_l * weights).sum() + h_l.pow(2).sum()).backward()
    torch.testing.assert_close(x2.grad, x.grad, atol=1e-5, rtol=1e-5)
    for (name, p_f), (_, p_l) in zip(fused.named_parameters(), loop.named_parameters()):
        torch.testing.assert_close(p_l.grad, p_f.grad, atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.parametrize("nonlinearity,fn", [("leaky_relu", lambda v: torch.where(v > 0, v, 0.01 * v)), ("elu", lambda v: torch.where(v > 0, v, v.exp() - 1))])
def test_loop_activations_by_hand(nonlinearity, fn):
    loop = LoopRNN(I, H, nonlinearity=nonlinearity)
    x = torch.randn(B, T, I) * 3
    out, _ = loop(x)
    h = torch.zeros(B, H)
    for t in range(T):
        h = fn(x[:, t] @ loop.weight_ih_l0.T + loop.bias_ih_l0 + h @ loop.weight_hh_l0.T + loop.bias_hh_l0)
        torch.testing.assert_close(out[:, t], h)


# The LRU's paper block has one residual width, so it is unidirectional; its bare layers are not.
BIDIRECTIONAL_OPTIONS = {"lru": {"block": False}}


@pytest.mark.parametrize("cell", CELLS)
def test_bidirectional_head_sees_both_ends(cell):
    """Forward direction after step T, backward direction after reading back to step 1."""
    backbone = RNNBackbone(I, _config(cell, bidirectional=True, num_layers=2,
                                      cell_options=BIDIRECTIONAL_OPTIONS.get(cell, {})))
    out, state = backbone(torch.randn(B, T, I))
    features = backbone.last_features(state)
    torch.testing.assert_close(features[:, :H], out[:, -1, :H])
    torch.testing.assert_close(features[:, H:], out[:, 0, H:])


def test_backward_direction_depends_on_first_input():
    backbone = RNNBackbone(I, _config("gru", bidirectional=True))
    x = torch.randn(B, T, I)
    y = x.clone()
    y[:, 0] += 1.0  # change only the first step
    f_x = backbone.last_features(backbone(x)[1])
    f_y = backbone.last_features(backbone(y)[1])
    assert not torch.allclose(f_x[:, H:], f_y[:, H:])  # the backward half saw step 1 last


def test_dropout_between_layers_only_in_training():
    loop = LoopRNN(I, H, num_layers=2, nonlinearity="elu", dropout=0.5)
    x = torch.randn(B, T, I)
    loop.eval()
    torch.testing.assert_close(loop(x)[0], loop(x)[0])
    loop.train()
    assert not torch.allclose(loop(x)[0], loop(x)[0])


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(cell="lst"), "unknown cell 'lst'; valid choices: rnn, lstm, gru"),
        (dict(cell="rnn", nonlinearity="sigmoid"), "unknown nonlinearity 'sigmoid'; valid choices: tanh, relu, leaky_relu, elu"),
        (dict(cell="lstm", nonlinearity="relu"), "only the vanilla cell 'rnn' and the independently recurrent network 'indrnn' take one"),
        (dict(cell="gru", nonlinearity="tanh"), "nonlinearity 'tanh' was given for cell 'gru'"),
        (dict(hidden_size=0), "hidden_size must be an integer between 1 and 65536, got 0"),
        (dict(hidden_size=2.5), "hidden_size must be an integer"),
        (dict(num_layers=0), "num_layers must be an integer between 1 and 64, got 0"),
        (dict(dropout=1.0, num_layers=2), "dropout must be a number >= 0.0 and < 1.0"),
        (dict(dropout=0.2), "needs num_layers >= 2"),
        (dict(recurrent_init="he"), "unknown recurrent_init 'he'; valid choices: default, xavier_uniform"),
        (dict(input_init="zeros"), "unknown input_init 'zeros'"),
        (dict(cell="gru", forget_bias=1.0), "forget_bias applies to the lstm and minlstm cells only"),
        (dict(cell="rnn", nonlinearity="elu", implementation="fused"), "no kernel for nonlinearity 'elu'"),
        (dict(implementation="cudnn"), "unknown implementation 'cudnn'; valid choices: auto, fused, loop"),
    ],
)
def test_bad_config_names_the_problem(kwargs, message):
    with pytest.raises(ZooError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RNNConfig(**kwargs)


def test_wrong_input_shape():
    backbone = RNNBackbone(I, _config("lstm"))
    with pytest.raises(ZooError, match=r"expects input of shape \(B, T, 4\), got \(3, 7, 2\)"):
        backbone(torch.randn(B, T, 2))


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ZooError, match="unknown backbone setting.*hiden_size"):
        RNNConfig.coerce({"cell": "gru", "hiden_size": 3})
