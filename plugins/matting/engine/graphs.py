"""Graph rewrites a manifest entry can ask for (``"graph"``), applied in memory when the session is
loaded: the verified file on disk is never changed (no Airflow import; ``onnx`` imported here only).

``resize-by-scale``: IMG.LY's ISNet graphs were exported with every Resize's target size fixed for a
1024x1024 input, so any other input fails in a Concat. In the network (DIS's ``_upsample_like``) each
Resize brings a feature map to the size of the one it is concatenated with, which is always an exact
power-of-two multiple of it; so each Resize gets that constant *scale* instead (its target at 1024 over
its input at 1024), the graph's input and output get symbolic H and W, and the side outputs the engine
never reads are pruned. Exact for inputs whose sides are multiples of 64 (every pooling divides evenly);
at 1024 the output equals the original's. Measured on 2 cores (ORT 1.32, fp16 weights): 1.88 s at
1024, 0.56 s at 768, 0.40 s at 640 per inference.

``dynamic-batch``: the graph's input and output take any number of images (a symbolic first dimension)
where the export fixed it at 1 (rembg's u2net family, IMG.LY's ISNet), so a GPU runs several photos in
one inference. Nothing in those graphs depends on the batch size: outputs are identical image by image
(tested). Rewrites combine with ``+`` (``resize-by-scale+dynamic-batch``), applied in that order.
"""

from __future__ import annotations

GRAPH_REWRITES = ("resize-by-scale", "dynamic-batch")
MULTIPLE = 64  # resize-by-scale: input sides must be multiples of this


def rewrite(kinds: str, model_bytes: bytes) -> bytes:
    """The model's bytes after the named rewrites (``+``-separated, applied left to right)."""
    import onnx

    steps = kinds.split("+")
    unknown = [k for k in steps if k not in GRAPH_REWRITES]
    if unknown:
        raise ValueError(f"unknown graph rewrite {unknown[0]!r}; known: {GRAPH_REWRITES}")
    model = onnx.load_from_string(model_bytes)
    for kind in steps:
        model = resize_by_scale(model) if kind == "resize-by-scale" else dynamic_batch(model)
    return model.SerializeToString()


def dynamic_batch(model):
    """``dynamic-batch`` (see the module): the model with a symbolic first dimension on its 4-D inputs
    and outputs. A graph whose batch is already symbolic is returned as it is."""
    fixed = [
        vi
        for vi in list(model.graph.input) + list(model.graph.output)
        if len(vi.type.tensor_type.shape.dim) == 4 and vi.type.tensor_type.shape.dim[0].HasField("dim_value")
    ]
    if not fixed:
        return model
    for vi in fixed:
        dim = vi.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_param = "N"
    del model.graph.value_info[:]  # intermediate shapes annotated for a batch of 1 would contradict it
    return model


def _native_shapes(model) -> dict[str, list[int]]:
    """Tensor name -> its static shape at the exported size (the file's annotations plus ONNX shape
    inference)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - the annotations the file carries are enough for ISNet
        inferred = model
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        if dims and all(dims):
            shapes[vi.name] = dims
    return shapes


def _toposort(nodes: list, available: set[str]) -> list:
    available = set(available) | {""}
    pending, out = list(nodes), []
    while pending:
        rest = []
        for node in pending:
            if all(i in available for i in node.input):
                out.append(node)
                available.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ValueError(f"graph has a cycle or a missing input near {rest[0].name}")
        pending = rest
    return out


def _prune(graph) -> None:
    """Drop the nodes and initializers no graph output needs."""
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(list(graph.node)):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    keep.reverse()
    del graph.node[:]
    graph.node.extend(keep)
    used = {i for n in graph.node for i in n.input}
    inits = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)


def resize_by_scale(model):
    """``resize-by-scale`` (see the module) of a model (``onnx.ModelProto`` or its bytes): an
    ``onnx.ModelProto`` that reads output 0 only."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(model) if isinstance(model, bytes) else model
    graph = model.graph
    del graph.output[1:]  # the side outputs (d1..d6) and features: the engine reads output 0
    shapes = _native_shapes(model)
    inits = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}

    def target_hw(name: str) -> np.ndarray:
        """The constant (h, w) a Resize's ``sizes`` input stands for: an initializer, a Constant, or
        ``Concat(Shape(x)[0:2], Constant([h, w]))``."""
        if name in inits:
            return numpy_helper.to_array(inits[name])[-2:]
        node = producers.get(name)
        if node is not None and node.op_type == "Constant":
            return numpy_helper.to_array(node.attribute[0].t)[-2:]
        if node is not None and node.op_type == "Concat":
            return target_hw(node.input[-1])
        raise ValueError(f"no constant Resize size behind {name}")

    rewired = 0
    for node in graph.node:
        if node.op_type != "Resize":
            continue
        if len(node.input) < 4 or not node.input[3]:
            continue  # already by scale
        h, w = (float(v) for v in target_hw(node.input[3]))
        src = shapes[node.input[0]]
        scales = np.array([1.0, 1.0, h / src[2], w / src[3]], dtype=np.float32)
        name = f"{node.name}__scales"
        graph.initializer.append(numpy_helper.from_array(scales, name))
        inputs = list(node.input)
        del node.input[:]
        node.input.extend([inputs[0], "", name])
        rewired += 1
    if not rewired:
        raise ValueError("no Resize with a fixed size found: nothing to rewrite")
    for vi in list(graph.input) + list(graph.output):
        dims = vi.type.tensor_type.shape.dim
        if len(dims) == 4:
            for k, sym in ((2, "H"), (3, "W")):
                dims[k].Clear()
                dims[k].dim_param = sym
    del graph.value_info[:]
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(_toposort(nodes, {i.name for i in graph.input} | {i.name for i in graph.initializer}))
    _prune(graph)
    model.metadata_props.append(onnx.StringStringEntryProto(key="matting_rewrite", value=f"resize-by-scale x{rewired}"))
    return model
