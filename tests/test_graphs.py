"""utils.graphs: named, deterministic pictures of autograd graphs, and a clear fallback without Graphviz."""

import re

import pytest
import torch

from utils.graphs import INSTALL_HINT, draw_graph, make_dot_stable


def neuron():
    x = torch.tensor([3.0], requires_grad=True)
    w = torch.tensor([2.0], requires_grad=True)
    b = torch.tensor([1.0], requires_grad=True)
    u = w * x
    v = u + b
    a = torch.relu(v)
    return dict(x=x, w=w, b=b, u=u, v=v, a=a)


def labels(graph):
    return re.findall(r'label="([^"]*)"', graph.source)


def test_names_values_and_ops_are_drawn():
    t = neuron()
    graph = draw_graph(t["a"], t)
    assert {"x\n3", "w\n2", "b\n1", "u\n6", "v\n7", "a\n7"} <= set(labels(graph))
    assert {"Mul", "Add", "Relu"} <= set(re.findall(r"label=(\w+)", graph.source))


def test_edges_follow_the_forward_pass():
    t = neuron()
    source = draw_graph(t["a"], t).source
    ids = {label.split("\n")[0]: node for node, label in re.findall(r'(\w+) \[label="([^"]*)"', source)}
    op = dict(re.findall(r"(\w+) \[label=(\w+) ", source))
    mul = next(node for node, name in op.items() if name == "Mul")
    assert f"{ids['w']} -> {mul}" in source and f"{ids['x']} -> {mul}" in source
    assert f"{mul} -> {ids['u']}" in source


def test_shapes_for_tensors_and_unnamed_output():
    W = torch.randn(5, 20, requires_grad=True)
    h = torch.randn(20)
    graph = draw_graph((W @ h).sum(), {"W": W})
    assert "W\nshape (5, 20)" in labels(graph)
    assert any(label.startswith("output\n") for label in labels(graph))


def test_ids_are_the_same_on_every_run():
    first, second = neuron(), neuron()
    assert draw_graph(first["a"], first).source == draw_graph(second["a"], second).source
    assert draw_graph(first["a"], first).pipe(format="svg") == draw_graph(second["a"], second).pipe(format="svg")


def test_repr_holds_no_memory_address():
    t = neuron()
    assert repr(draw_graph(t["a"], t)) == "<computation graph: 9 nodes>"


def test_renders_svg_for_jupyter():
    t = neuron()
    bundle = draw_graph(t["a"], t)._repr_mimebundle_()
    assert bundle["image/svg+xml"].lstrip().startswith("<?xml")


def test_without_dot_the_cell_still_runs_and_says_how_to_get_pictures(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    t = neuron()
    bundle = draw_graph(t["a"], t)._repr_mimebundle_()
    assert "image/svg+xml" not in bundle
    assert INSTALL_HINT in bundle["text/plain"] and "apt-get install" in bundle["text/plain"]
    assert "digraph" in bundle["text/plain"]


def test_a_tensor_without_graph_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="requires_grad=True"):
        draw_graph(torch.ones(2))


def test_make_dot_stable_renames_memory_addresses():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh())
    sources = [make_dot_stable(model(torch.randn(4, 3)).sum(), dict(model.named_parameters())).source for _ in range(2)]
    assert sources[0] == sources[1]
    assert not re.search(r"\d{6,}", sources[0]), "a memory address survived"
    assert "0.weight" in sources[0] and re.search(r"\bn0\b", sources[0])
