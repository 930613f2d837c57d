"""utils.models: the shared MNIST MLP has the layers, sizes and input shapes lecture 06 and the benchmark rely on."""

import torch
from torch import nn

from utils.models import make_mlp


def test_make_mlp_layers_and_parameter_count():
    model = make_mlp()
    linears = [layer for layer in model if isinstance(layer, nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linears] == [(784, 256), (256, 128), (128, 10)]
    assert sum(isinstance(layer, nn.ReLU) for layer in model) == 2
    assert isinstance(model[-1], nn.Linear)  # logits out: no softmax, the loss applies it
    assert sum(p.numel() for p in model.parameters()) == 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10


def test_make_mlp_takes_images_or_rows():
    model = make_mlp()
    images = torch.rand(3, 28, 28)
    logits = model(images)
    assert logits.shape == (3, 10)
    assert torch.equal(model(images.reshape(3, 784)), logits)
    assert torch.equal(model(images.unsqueeze(1)), logits)  # torchvision's (N, 1, 28, 28)


def test_make_mlp_is_seeded_and_fresh_each_call():
    torch.manual_seed(0)
    first = make_mlp()
    torch.manual_seed(0)
    again = make_mlp()
    other = make_mlp()
    for p, q in zip(first.parameters(), again.parameters()):
        assert torch.equal(p, q)
    assert not torch.equal(first[1].weight, other[1].weight)  # a new network, not a shared one
