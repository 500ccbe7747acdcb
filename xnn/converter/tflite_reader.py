"""Read a TFLite flatbuffer into the xnn Graph IR, validating everything it reads.

Every index, offset, size and shape read from the file is checked here, before any kernel sees it:
the Numba kernels do not bounds-check. Malformed input of any kind surfaces as XnnError.
"""
from __future__ import annotations

import re

import numpy as np
import tflite

from ..errors import XnnError
from ..ir import Graph, Node, QuantParams, TensorSpec, frozen_options

# TFLite TensorType enum -> numpy dtype (types xnn can hold; others are rejected by name).
TENSOR_TYPES = {
    tflite.TensorType.FLOAT32: np.dtype(np.float32),
    tflite.TensorType.FLOAT16: np.dtype(np.float16),
    tflite.TensorType.INT32: np.dtype(np.int32),
    tflite.TensorType.UINT8: np.dtype(np.uint8),
    tflite.TensorType.INT64: np.dtype(np.int64),
    tflite.TensorType.BOOL: np.dtype(np.bool_),
    tflite.TensorType.INT16: np.dtype(np.int16),
    tflite.TensorType.INT8: np.dtype(np.int8),
    tflite.TensorType.FLOAT64: np.dtype(np.float64),
}
TYPE_NAMES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
OP_CODES = {v: k for k, v in OP_NAMES.items()}
OPTION_NAMES = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")}
OPTION2_NAMES = {v: k for k, v in vars(tflite.BuiltinOptions2).items() if not k.startswith("_")}

MAX_RANK = 8
MAX_ELEMENTS = 1 << 31
_SKIP_SUFFIX = ("IsNone", "Length", "AsNumpy")
_SKIP = {"Init", "GetRootAs"}


def _snake(name: str) -> str:
    """CamelCase schema field -> snake_case key ('DilationWFactor' -> 'dilation_w_factor'), the
    inverse of the writer's mapping."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _parse_options(table, class_name: str) -> dict:
    """Read every field of a generated options table into a dict with snake_case keys."""
    module = getattr(tflite, class_name, None)
    cls = getattr(module, class_name, module) if module is not None else None
    if cls is None or table is None:
        return {}
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    out = {}
    for attr in dir(cls):
        if attr.startswith("_") or attr in _SKIP or attr.startswith("GetRootAs") or attr.endswith(_SKIP_SUFFIX):
            continue
        if "BufferHasIdentifier" in attr:
            continue
        fn = getattr(obj, attr)
        if not callable(fn):
            continue
        if hasattr(obj, attr + "Length"):  # vector field
            if getattr(obj, attr + "IsNone")():
                value = []
            else:
                n = getattr(obj, attr + "Length")()
                value = [int(x) for x in getattr(obj, attr + "AsNumpy")()] if n else []
        else:
            value = fn()
        out[_snake(attr)] = value
    return out


def _check_index(i: int, n: int, what: str, allow_absent: bool = False) -> int:
    i = int(i)
    if allow_absent and i == -1:
        return -1
    if not 0 <= i < n:
        raise XnnError(f"{what}: tensor index {i} out of range (model has {n} tensors)")
    return i


def _quant(t, name: str, n_dims: int):
    q = t.Quantization()
    if q is None or q.ScaleIsNone() or q.ScaleLength() == 0:
        return None
    scale = np.asarray(q.ScaleAsNumpy(), dtype=np.float32).copy()
    if q.ZeroPointIsNone() or q.ZeroPointLength() == 0:
        zp = np.zeros(scale.shape, np.int64)
    else:
        zp = np.asarray(q.ZeroPointAsNumpy(), dtype=np.int64).copy()
    if zp.size != scale.size:
        if zp.size == 1:
            zp = np.full(scale.shape, zp[0], np.int64)
        else:
            raise XnnError(f"tensor '{name}': {scale.size} scales but {zp.size} zero points")
    axis = int(q.QuantizedDimension())
    if scale.size > 1 and not 0 <= axis < max(n_dims, 1):
        raise XnnError(f"tensor '{name}': quantized dimension {axis} out of range for rank {n_dims}")
    if not np.all(np.isfinite(scale)) or np.any(scale < 0):
        raise XnnError(f"tensor '{name}': invalid quantization scale {scale[:4]}")
    return QuantParams(scale=scale, zero_point=zp, axis=axis)


def read_tflite(content: bytes) -> Graph:
    """Parse TFLite flatbuffer bytes into a Graph. Raises XnnError on any malformed content."""
    if not isinstance(content, (bytes, bytearray, memoryview)):
        raise XnnError(f"model content must be bytes, got {type(content).__name__}")
    buf = bytes(content)
    if len(buf) < 8:
        raise XnnError(f"not a TFLite model: only {len(buf)} bytes")
    if buf[4:8] != b"TFL3":
        raise XnnError("not a TFLite model: missing 'TFL3' file identifier (is this a .tflite file?)")
    try:
        return _read(buf)
    except XnnError:
        raise
    except Exception as e:  # flatbuffers raises struct/index/unicode errors on corrupt data
        raise XnnError(f"corrupt TFLite model: {type(e).__name__}: {e}") from None


def _read(buf: bytes) -> Graph:
    model = tflite.Model.GetRootAs(buf, 0)
    if model.Version() != 3:
        raise XnnError(f"unsupported TFLite schema version {model.Version()} (expected 3)")
    if model.SubgraphsLength() < 1:
        raise XnnError("model has no subgraphs")
    sg = model.Subgraphs(0)
    n_buffers = model.BuffersLength()
    n_tensors = sg.TensorsLength()
    if n_tensors > len(buf) or n_buffers > len(buf) or sg.OperatorsLength() > len(buf):
        raise XnnError("corrupt TFLite model: vector lengths exceed the file size")

    opcodes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        if code == tflite.BuiltinOperator.CUSTOM:
            custom = oc.CustomCode()
            custom = custom.decode("utf-8", "replace") if custom else "?"
            opcodes.append(("CUSTOM:" + custom, int(oc.Version())))
        else:
            opcodes.append((OP_NAMES.get(code, f"BUILTIN_{code}"), int(oc.Version())))

    tensors = []
    for ti in range(n_tensors):
        t = sg.Tensors(ti)
        name = (t.Name() or b"").decode("utf-8", "replace") or f"t{ti}"
        ttype = int(t.Type())
        if ttype not in TENSOR_TYPES:
            raise XnnError(f"tensor '{name}': unsupported type {TYPE_NAMES.get(ttype, ttype)}")
        dtype = TENSOR_TYPES[ttype]
        shape = tuple(int(x) for x in t.ShapeAsNumpy()) if not t.ShapeIsNone() and t.ShapeLength() else ()
        if len(shape) > MAX_RANK or any(d < 0 for d in shape):
            raise XnnError(f"tensor '{name}': invalid shape {shape}")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if count > MAX_ELEMENTS:
            raise XnnError(f"tensor '{name}': shape {shape} too large")
        quant = _quant(t, name, len(shape))
        if quant is not None and quant.per_channel and shape and quant.scale.size != shape[quant.axis]:
            raise XnnError(
                f"tensor '{name}': {quant.scale.size} per-channel scales for {shape[quant.axis]} channels")
        data = None
        bi = int(t.Buffer())
        if not 0 <= bi < max(n_buffers, 1):
            raise XnnError(f"tensor '{name}': buffer index {bi} out of range ({n_buffers} buffers)")
        if bi > 0:
            b = model.Buffers(bi)
            raw = None
            if b.Offset() > 1:  # data stored after the flatbuffer (large models)
                off, size = int(b.Offset()), int(b.Size())
                if off + size > len(buf):
                    raise XnnError(f"tensor '{name}': buffer {bi} offset {off}+{size} beyond end of file")
                raw = buf[off:off + size]
            elif not b.DataIsNone() and b.DataLength() > 0:
                raw = b.DataAsNumpy().tobytes()
            if raw is not None and len(raw) > 0:
                expect = count * dtype.itemsize
                if len(raw) != expect:
                    raise XnnError(
                        f"tensor '{name}': buffer {bi} holds {len(raw)} bytes, shape {shape} "
                        f"{dtype.name} needs {expect}")
                data = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
                data.flags.writeable = False
        tensors.append(TensorSpec(name=name, shape=shape, dtype=dtype, quant=quant, data=data,
                                  is_variable=bool(t.IsVariable())))

    def idx_list(getter_np, is_none, length, what, allow_absent=False):
        if is_none() or length() == 0:
            return ()
        return tuple(_check_index(i, n_tensors, what, allow_absent) for i in getter_np())

    inputs = idx_list(sg.InputsAsNumpy, sg.InputsIsNone, sg.InputsLength, "subgraph input")
    outputs = idx_list(sg.OutputsAsNumpy, sg.OutputsIsNone, sg.OutputsLength, "subgraph output")

    nodes = []
    for oi in range(sg.OperatorsLength()):
        op = sg.Operators(oi)
        ci = int(op.OpcodeIndex())
        if not 0 <= ci < len(opcodes):
            raise XnnError(f"operator #{oi}: opcode index {ci} out of range")
        opname, version = opcodes[ci]
        label = f"#{oi} {opname}"
        ins = idx_list(op.InputsAsNumpy, op.InputsIsNone, op.InputsLength, f"node {label} input", True)
        outs = idx_list(op.OutputsAsNumpy, op.OutputsIsNone, op.OutputsLength, f"node {label} output")
        inter = idx_list(op.IntermediatesAsNumpy, op.IntermediatesIsNone, op.IntermediatesLength,
                         f"node {label} intermediate")
        options = {}
        ot = int(op.BuiltinOptionsType())
        if ot != 0:
            if ot not in OPTION_NAMES:
                raise XnnError(f"node {label}: unknown builtin options type {ot}")
            options.update(_parse_options(op.BuiltinOptions(), OPTION_NAMES[ot]))
        ot2 = int(op.BuiltinOptions2Type())
        if ot2 != 0 and ot2 in OPTION2_NAMES:
            options.update(_parse_options(op.BuiltinOptions2(), OPTION2_NAMES[ot2]))
        nodes.append(Node(op=opname, inputs=ins, outputs=outs, options=frozen_options(options),
                          version=version, name=label, intermediates=inter))

    desc = model.Description()
    return Graph(tensors=tuple(tensors), nodes=tuple(nodes), inputs=inputs, outputs=outputs,
                 description=desc.decode("utf-8", "replace") if desc else "")
