"""The paper's three architectures: exact layer shapes, parameter counts and outputs."""

from __future__ import annotations

import itertools

import pytest
import torch

from mlopsbench.errors import ConfigError
from mlopsbench.usecases.digits.models import CNN, DeepNN, SimpleNN, build_model, count_parameters

# Counts derived from the architectures in the issue (weights + biases; BatchNorm's affine
# weight and bias count, its running statistics are buffers and do not):
#   SimpleNN 784*128+128 + 128*10+10                                          = 101,770
#   DeepNN   784*512+512 + 512*256+256 + 256*128+128 + 128*64+64 + 64*10+10  = 575,050
#   CNN      (1*32*9+32) + 2*32 + (32*64*9+64) + 2*64 + 3136*128+128 + 128*10+10 = 421,834
PARAMS = {"simple": 101_770, "deep": 575_050, "cnn": 421_834}
FEATURES = {"simple": 128, "deep": 64, "cnn": 128}


@pytest.mark.parametrize("name", ["simple", "deep", "cnn"])
def test_parameter_counts_match_the_paper(name: str) -> None:
    assert count_parameters(build_model(name)) == PARAMS[name]


def test_parameter_count_arithmetic() -> None:
    assert PARAMS["simple"] == 784 * 128 + 128 + 128 * 10 + 10
    dense = [784, 512, 256, 128, 64, 10]
    assert sum(a * b + b for a, b in itertools.pairwise(dense)) == PARAMS["deep"]
    conv = (1 * 32 * 9 + 32) + 2 * 32 + (32 * 64 * 9 + 64) + 2 * 64
    assert conv + 3136 * 128 + 128 + 128 * 10 + 10 == PARAMS["cnn"]


@pytest.mark.parametrize("name", ["simple", "deep", "cnn"])
def test_logits_and_embeddings_shapes(name: str) -> None:
    model = build_model(name).eval()
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        logits = model(x)
        z = model.features(x)
    assert logits.shape == (5, 10)
    assert z.shape == (5, FEATURES[name])
    assert torch.allclose(model.head(z), logits)


def test_layer_structure_is_the_papers() -> None:
    simple = [m for m in SimpleNN().modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in simple] == [(784, 128), (128, 10)]

    deep = DeepNN()
    linear = [m for m in deep.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [512, 256, 128, 64, 10]
    dropouts = [m for m in deep.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(dropouts) == 4 and all(d.p == 0.3 for d in dropouts)

    cnn = CNN()
    convs = [m for m in cnn.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (1, 32, (3, 3), (1, 1)),
        (32, 64, (3, 3), (1, 1)),
    ]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in cnn.modules()) == 2
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in cnn.modules()) == 2
    fcs = [m for m in cnn.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in fcs] == [(3136, 128), (128, 10)]
    assert cnn.dropout.p == 0.3


def test_paper_class_names_are_accepted() -> None:
    assert isinstance(build_model("SimpleNN"), SimpleNN)
    assert isinstance(build_model("deepnn"), DeepNN)
    assert isinstance(build_model(" CNN "), CNN)


def test_unknown_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown model 'resnet'"):
        build_model("resnet")


def test_cnn_pooling_before_relu_is_the_papers_function() -> None:
    """The CNN pools before its ReLUs: outputs and gradients equal conv -> BN -> ReLU -> pool."""
    torch.manual_seed(0)
    cnn = CNN().train()
    c = cnn.conv
    paper_order = torch.nn.Sequential(
        c[0], c[1], torch.nn.ReLU(), c[2], c[4], c[5], torch.nn.ReLU(), c[6]
    )
    x = torch.randn(16, 1, 28, 28)
    mine = cnn.conv(x)
    mine_grads = torch.autograd.grad(mine.square().sum(), list(cnn.conv.parameters()))
    theirs = paper_order(x)
    their_grads = torch.autograd.grad(theirs.square().sum(), list(cnn.conv.parameters()))
    assert torch.equal(mine, theirs)
    for a, b in zip(mine_grads, their_grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    assert list(cnn.state_dict()) == [f"conv.{i}.{k}" for i in (0,) for k in ("weight", "bias")] + [
        f"conv.1.{k}"
        for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    ] + [f"conv.4.{k}" for k in ("weight", "bias")] + [
        f"conv.5.{k}"
        for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    ] + ["fc.1.weight", "fc.1.bias", "out.weight", "out.bias"]
