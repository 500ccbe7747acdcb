"""Write a Graph IR as a TFLite flatbuffer (schema version 3).

Used by the tests to build single-op models for the LiteRT oracle, and by the converter to hand a
compressed int8 model back to other runtimes. Options are written generically: each snake_case key
of `node.options` becomes a call to the generated `<OptionsClass>Add<Field>` builder function.
"""
from __future__ import annotations

import importlib

import flatbuffers
import numpy as np
import tflite

from ..errors import XnnError
from ..ir import Graph
from .tflite_reader import OP_CODES, TENSOR_TYPES

DTYPE_CODES = {v: k for k, v in TENSOR_TYPES.items()}

# op -> its BuiltinOptions table class (ops missing here take no options)
OP_OPTIONS = {
    "CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions", "TRANSPOSE_CONV": "TransposeConvOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions", "MEAN": "ReducerOptions",
    "SUM": "ReducerOptions", "REDUCE_MAX": "ReducerOptions",
    "ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions", "DIV": "DivOptions",
    "CONCATENATION": "ConcatenationOptions", "RESHAPE": "ReshapeOptions",
    "TRANSPOSE": "TransposeOptions", "PAD": "PadOptions", "PADV2": "PadV2Options",
    "SLICE": "SliceOptions", "STRIDED_SLICE": "StridedSliceOptions", "SPLIT": "SplitOptions",
    "SPLIT_V": "SplitVOptions", "PACK": "PackOptions", "UNPACK": "UnpackOptions",
    "REVERSE_V2": "ReverseV2Options", "GATHER": "GatherOptions", "SQUEEZE": "SqueezeOptions",
    "RESIZE_BILINEAR": "ResizeBilinearOptions",
    "RESIZE_NEAREST_NEIGHBOR": "ResizeNearestNeighborOptions", "SOFTMAX": "SoftmaxOptions",
    "LEAKY_RELU": "LeakyReluOptions", "HARD_SWISH": "HardSwishOptions",
    "DEQUANTIZE": "DequantizeOptions", "QUANTIZE": "QuantizeOptions", "ARG_MAX": "ArgMaxOptions",
    "MAXIMUM": "MaximumMinimumOptions", "MINIMUM": "MaximumMinimumOptions",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTMOptions",
    "BIDIRECTIONAL_SEQUENCE_LSTM": "BidirectionalSequenceLSTMOptions", "LSTM": "LSTMOptions",
    "CONCAT_EMBEDDINGS": "ConcatEmbeddingsOptions", "EXPAND_DIMS": "ExpandDimsOptions",
    "SHAPE": "ShapeOptions", "CAST": "CastOptions",
}


def _camel(key: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in key.split("_"))


def _int_vector(b: flatbuffers.Builder, values, dtype=np.int32) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype=dtype))


def _options(b, op: str, options: dict):
    cls = OP_OPTIONS.get(op)
    if cls is None:
        if options:
            raise XnnError(f"writer: op {op} has options {sorted(options)} but no known options table")
        return 0, 0
    mod = importlib.import_module(f"tflite.{cls}")
    vectors = {k: _int_vector(b, v) for k, v in options.items() if isinstance(v, (list, tuple, np.ndarray))}
    getattr(mod, f"{cls}Start")(b)
    for k, v in options.items():
        fn = getattr(mod, f"{cls}Add{_camel(k)}", None)
        if fn is None:
            raise XnnError(f"writer: {cls} has no field '{k}'")
        fn(b, vectors[k] if k in vectors else (float(v) if isinstance(v, float) else int(v)))
    return getattr(tflite.BuiltinOptions, cls), getattr(mod, f"{cls}End")(b)


def write_tflite(g: Graph, description: str = "xnn") -> bytes:
    b = flatbuffers.Builder(1024)
    # buffers: 0 is the empty sentinel, then one per constant tensor
    buffer_of = {}
    datas = [None]
    for i, t in enumerate(g.tensors):
        if t.data is not None:
            buffer_of[i] = len(datas)
            datas.append(np.ascontiguousarray(t.data, dtype=t.dtype).tobytes())
    buf_offsets = []
    for d in datas:
        dv = b.CreateNumpyVector(np.frombuffer(d, np.uint8)) if d else None
        tflite.BufferStart(b)
        if dv is not None:
            tflite.BufferAddData(b, dv)
        buf_offsets.append(tflite.BufferEnd(b))

    tensor_offsets = []
    for i, t in enumerate(g.tensors):
        name = b.CreateString(t.name)
        shape = _int_vector(b, list(t.shape))
        q = 0
        if t.quant is not None:
            sc = b.CreateNumpyVector(np.asarray(t.quant.scale, np.float32))
            zp = b.CreateNumpyVector(np.asarray(t.quant.zero_point, np.int64))
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, sc)
            tflite.QuantizationParametersAddZeroPoint(b, zp)
            tflite.QuantizationParametersAddQuantizedDimension(b, int(t.quant.axis))
            q = tflite.QuantizationParametersEnd(b)
        if np.dtype(t.dtype) not in DTYPE_CODES:
            raise XnnError(f"writer: tensor '{t.name}' has unsupported dtype {t.dtype}")
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, DTYPE_CODES[np.dtype(t.dtype)])
        tflite.TensorAddBuffer(b, buffer_of.get(i, 0))
        tflite.TensorAddName(b, name)
        if q:
            tflite.TensorAddQuantization(b, q)
        if t.is_variable:
            tflite.TensorAddIsVariable(b, True)
        tensor_offsets.append(tflite.TensorEnd(b))

    codes = []
    code_index = {}
    op_offsets = []
    for n in g.nodes:
        key = (n.op, n.version)
        if key not in code_index:
            code_index[key] = len(codes)
            codes.append(key)
        ins = _int_vector(b, list(n.inputs))
        outs = _int_vector(b, list(n.outputs))
        inter = _int_vector(b, list(n.intermediates)) if n.intermediates else 0
        otype, opts = _options(b, n.op, dict(n.options))
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, code_index[key])
        tflite.OperatorAddInputs(b, ins)
        tflite.OperatorAddOutputs(b, outs)
        if inter:
            tflite.OperatorAddIntermediates(b, inter)
        if opts:
            tflite.OperatorAddBuiltinOptionsType(b, otype)
            tflite.OperatorAddBuiltinOptions(b, opts)
        op_offsets.append(tflite.OperatorEnd(b))

    def vec(start, items):
        start(b, len(items))
        for x in reversed(items):
            b.PrependUOffsetTRelative(x)
        return b.EndVector()

    tensors_v = vec(tflite.SubGraphStartTensorsVector, tensor_offsets)
    ops_v = vec(tflite.SubGraphStartOperatorsVector, op_offsets)
    in_v = _int_vector(b, list(g.inputs))
    out_v = _int_vector(b, list(g.outputs))
    sg_name = b.CreateString("main")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensors_v)
    tflite.SubGraphAddInputs(b, in_v)
    tflite.SubGraphAddOutputs(b, out_v)
    tflite.SubGraphAddOperators(b, ops_v)
    tflite.SubGraphAddName(b, sg_name)
    sg = tflite.SubGraphEnd(b)

    code_offsets = []
    for op, version in codes:
        custom = b.CreateString(op.split(":", 1)[1]) if op.startswith("CUSTOM:") else 0
        code = tflite.BuiltinOperator.CUSTOM if custom else OP_CODES.get(op)
        if code is None:
            raise XnnError(f"writer: {op} is not a TFLite builtin op")
        tflite.OperatorCodeStart(b)
        if custom:
            tflite.OperatorCodeAddCustomCode(b, custom)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        tflite.OperatorCodeAddBuiltinCode(b, code)
        tflite.OperatorCodeAddVersion(b, version)
        code_offsets.append(tflite.OperatorCodeEnd(b))

    codes_v = vec(tflite.ModelStartOperatorCodesVector, code_offsets)
    sgs_v = vec(tflite.ModelStartSubgraphsVector, [sg])
    bufs_v = vec(tflite.ModelStartBuffersVector, buf_offsets)
    desc = b.CreateString(description)
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes_v)
    tflite.ModelAddSubgraphs(b, sgs_v)
    tflite.ModelAddDescription(b, desc)
    tflite.ModelAddBuffers(b, bufs_v)
    m = tflite.ModelEnd(b)
    b.Finish(m, file_identifier=b"TFL3")
    return bytes(b.Output())
