"""Draw autograd computation graphs with Graphviz, with node ids that are stable across runs."""

from __future__ import annotations

import re
import warnings
from collections import deque
from collections.abc import Mapping

import graphviz
import torch

INSTALL_HINT = (
    "Graphviz's `dot` program was not found, so this graph is shown as DOT text instead of a picture.\n"
    "To get pictures, install Graphviz and restart the kernel:\n"
    "  Debian/Ubuntu/Colab: !apt-get install -y graphviz\n"
    "  macOS:               brew install graphviz\n"
    "  conda:               conda install -c conda-forge graphviz"
)

_LEAF_STYLE = {"shape": "box", "style": "filled", "fillcolor": "lightblue"}
_TENSOR_STYLE = {"shape": "box"}
_OUTPUT_STYLE = {"shape": "box", "style": "filled", "fillcolor": "darkolivegreen1"}
_OP_STYLE = {"shape": "ellipse", "style": "filled", "fillcolor": "lightgrey"}


class Graph(graphviz.Digraph):
    """A Digraph that shows as SVG in Jupyter, or as DOT text with install help when `dot` is missing."""

    def __repr__(self) -> str:
        # The default repr holds a memory address, which would change every run.
        return f"<computation graph: {sum(' -> ' not in line for line in self.body)} nodes>"

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        try:
            bundle = super()._repr_mimebundle_(include, exclude, **kwargs)
        except graphviz.ExecutableNotFound:
            return {"text/plain": f"{INSTALL_HINT}\n\n{self.source}"}
        return {**bundle, "text/plain": repr(self)}


def describe(tensor: torch.Tensor) -> str:
    """A short label: the value of a one-element tensor, else its shape."""
    if tensor.numel() == 1:
        return f"{tensor.detach().reshape(()).item():.4g}"
    return "shape " + str(tuple(tensor.shape))


def draw_graph(
    output: torch.Tensor,
    names: Mapping[str, torch.Tensor] | None = None,
    *,
    rankdir: str = "LR",
) -> Graph:
    """Draw the graph that computed `output`: named tensors as boxes, autograd ops as ovals.

    `names` maps the names you want on the picture to tensors: leaves (blue), intermediates
    (white) and the output (green). Arrows point the way the forward pass runs.
    """
    if not isinstance(output, torch.Tensor) or output.grad_fn is None:
        raise ValueError(
            "draw_graph needs a tensor computed from tensors with requires_grad=True; "
            "this one has no grad_fn, so autograd recorded no graph for it."
        )
    names = dict(names or {})
    leaf_name = {id(t): n for n, t in names.items() if t.grad_fn is None}
    inner = {t.grad_fn: (n, t) for n, t in names.items() if t.grad_fn is not None}
    output_name = inner.pop(output.grad_fn, ("output", output))[0]

    graph = Graph(graph_attr={"rankdir": rankdir}, node_attr={"fontname": "Helvetica", "fontsize": "11"})
    ids: dict[object, str] = {}  # autograd node -> id of the graph node its result flows out of

    def add_tensor(key: object, name: str, tensor: torch.Tensor, style: dict) -> str:
        node_id = f"t{len(ids)}"
        graph.node(node_id, f"{name}\n{describe(tensor)}", **style)
        ids[key] = node_id
        return node_id

    # Breadth-first from the output: the same graph always gets the same ids.
    queue = deque([output.grad_fn])
    seen = {output.grad_fn}
    edges = []
    while queue:
        fn = queue.popleft()
        if hasattr(fn, "variable"):  # AccumulateGrad: the node of a leaf tensor
            leaf = fn.variable
            add_tensor(fn, leaf_name.get(id(leaf), ""), leaf, _LEAF_STYLE)
            continue
        op_id = f"op{len(ids)}"
        graph.node(op_id, type(fn).__name__.removesuffix("Backward0").removesuffix("Backward1"), **_OP_STYLE)
        ids[fn] = op_id
        if fn in inner:  # a named intermediate: draw the tensor that holds the op's result
            ids[fn] = add_tensor(("result", fn), *inner[fn], _TENSOR_STYLE)
            edges.append((op_id, ids[fn]))
        for child, _ in fn.next_functions:
            if child is None:  # an input that does not require grad
                continue
            edges.append((child, op_id))
            if child not in seen:
                seen.add(child)
                queue.append(child)

    out_id = add_tensor(("output",), output_name, output, _OUTPUT_STYLE)
    edges.append((output.grad_fn, out_id))
    for src, dst in edges:
        graph.edge(ids.get(src, src), ids.get(dst, dst))
    return graph


_TORCHVIZ_ID = re.compile(r"(?<=^\t)\d+(?= \[| ->)|(?<=-> )\d+")


def make_dot_stable(var: torch.Tensor, params: Mapping[str, torch.Tensor] | None = None, **kwargs) -> Graph:
    """torchviz.make_dot, with its memory-address node ids renamed n0, n1, … in drawing order."""
    from torchviz import make_dot

    with warnings.catch_warnings():  # torchviz still compares versions with distutils
        warnings.simplefilter("ignore", DeprecationWarning)
        dot = make_dot(var, params=dict(params) if params is not None else None, **kwargs)
    renamed: dict[str, str] = {}

    def rename(match: re.Match) -> str:
        return renamed.setdefault(match.group(0), f"n{len(renamed)}")

    graph = Graph(graph_attr=dot.graph_attr, node_attr=dot.node_attr, edge_attr=dot.edge_attr)
    graph.body = [_TORCHVIZ_ID.sub(rename, line) for line in dot.body]
    return graph
