"""ONNX through tf2onnx, from the TFLite flatbuffer of `to_tflite`.

Why this path (tested with jax 0.10.2, tensorflow 2.21, tf2onnx 1.17.0; docs/export.md):
- tf2onnx cannot read the jax2tf SavedModel: since JAX 0.9 jax2tf emits one
  `XlaCallModule` op holding StableHLO, which tf2onnx does not convert.
- jax2onnx (converting the jaxpr directly) gives an exact graph, but every release
  that runs with jax 0.10 (0.14 to 0.17.1) requires orbax-checkpoint < 0.11.37, which
  conflicts with the orbax-checkpoint this project pins (`pip check` fails); 0.12.5 has
  no such pin but fails on jax 0.10's jaxprs.
- the TFLite converter lowers that StableHLO to plain ops (Conv, Gather, Slice,
  Concat...), which tf2onnx maps one to one onto standard ONNX operators: no custom
  op, and the graph agrees with the JAX model to float rounding.
The graph's input and output are renamed `images` and `depth`. float16 stores the
convolution weights in float16 with a Cast to float32 (computation stays float32).
The batch size must be fixed (`ExportOptions.check`).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import tempfile

from s2r_jax.export.common import (INPUT_NAME, OUTPUT_NAME, DepthModel, ExportOptions, atomic_output, describe)
from s2r_jax.export.to_tflite import tflite_bytes

_WEIGHT_CONSUMERS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
OPTIMIZERS = ("optimize_transpose", "fold_constants", "remove_identity", "remove_back_to_back")


def _rename(graph, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if value.name == old:
            value.name = new


def weights_to_float16(proto):
    """`--dtype float16` for an ONNX model: every float32 initializer used only as a
    Conv/ConvTranspose/MatMul/Gemm input is stored in float16 and cast back to float32 by a
    Cast node in front of the graph. Modifies `proto` (a ModelProto) and returns it."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    consumers: dict[str, set] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    casts, kept = [], []
    for t in graph.initializer:
        if t.data_type == TensorProto.FLOAT and consumers.get(t.name) and consumers[t.name] <= set(_WEIGHT_CONSUMERS):
            half = numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name + "_float16")
            kept.append(half)
            casts.append(helper.make_node("Cast", [half.name], [t.name], to=TensorProto.FLOAT))
        else:
            kept.append(t)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return proto


def _tf2onnx(tflite_path: str, opset: int):
    """tf2onnx's TFLite conversion with the optimizer passes of `OPTIMIZERS` only.

    Every tf2onnx optimizer pass re-serialises the weights into the graph's protobuf, whose
    arena keeps the old copies: with its default 12 passes, repeated until nothing changes,
    converting the official network (350 MB) peaked at 12 GB. These four remove the
    layout transposes around the convolutions and fold constants (peak ~4 GB);
    onnxruntime optimises the rest when it loads the model.
    """
    from collections import OrderedDict

    import tensorflow as tf
    from tf2onnx import optimizer, tfonnx

    passes = optimizer._get_optimizers()  # tf2onnx's registry; from_tflite has no `optimizers` argument
    with tf.Graph().as_default():
        graph = tfonnx.process_tf_graph(None, opset=opset, tflite_path=tflite_path)
        graph = optimizer.optimize_graph(graph, catch_errors=False,
                                         optimizers=OrderedDict((name, passes[name]) for name in OPTIMIZERS))
        return graph.make_model("s2r_jax export")


def onnx_model(model: DepthModel, options: ExportOptions):
    """The ONNX ModelProto, checked with `onnx.checker`."""
    import onnx

    blob = tflite_bytes(model, dataclasses.replace(options, dtype="float32"))
    quiet = logging.getLogger("tf2onnx")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # tf2onnx logs every optimizer pass at INFO
    try:
        with tempfile.TemporaryDirectory(prefix="s2r_export_") as tmp:
            path = os.path.join(tmp, "model.tflite")
            with open(path, "wb") as f:
                f.write(blob)
            proto = _tf2onnx(path, options.opset)
    finally:
        quiet.setLevel(level)
    graph = proto.graph
    (inp,), (out,) = graph.input, graph.output
    _rename(graph, inp.name, INPUT_NAME)
    _rename(graph, out.name, OUTPUT_NAME)
    if options.dtype == "float16":
        weights_to_float16(proto)
    proto.doc_string = "s2r_jax export, " + describe(model, "onnx", options)
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model: DepthModel, output: str | os.PathLike, options: ExportOptions, overwrite: bool = False) -> None:
    proto = onnx_model(model, options)
    with atomic_output(output, overwrite) as tmp, open(tmp, "wb") as f:
        f.write(proto.SerializeToString())
