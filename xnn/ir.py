"""Graph IR: frozen dataclasses for tensors, quantization, nodes and graphs.

The IR knows nothing about files or kernels. Passes build new graphs with `dataclasses.replace`.
Tensor shapes are static tuples; constant tensors carry their data as a read-only numpy array.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

# Fused activation names, indexed by TFLite's ActivationFunctionType enum value.
ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT")
PADDINGS = ("SAME", "VALID")


@dataclass(frozen=True, eq=False)
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point), per tensor or per `axis`."""

    scale: np.ndarray  # float32, shape (1,) per tensor or (C,) per axis
    zero_point: np.ndarray  # int64, same length as scale
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1

    @property
    def s(self) -> float:
        """The per-tensor scale (first element)."""
        return float(self.scale[0])

    @property
    def zp(self) -> int:
        """The per-tensor zero point (first element)."""
        return int(self.zero_point[0])


@dataclass(frozen=True, eq=False)
class TensorSpec:
    name: str
    shape: tuple
    dtype: np.dtype
    quant: QuantParams | None = None
    data: np.ndarray | None = None  # constant value (read-only), None for activations
    is_variable: bool = False  # state carried across invokes (LSTM state)

    @property
    def is_const(self) -> bool:
        return self.data is not None and not self.is_variable

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize


def frozen_options(d: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True, eq=False)
class Node:
    op: str  # builtin op name as in TFLite ("CONV_2D") or an xnn op ("CHANNEL_SHUFFLE")
    inputs: tuple  # tensor indices; -1 marks an absent optional input
    outputs: tuple
    options: Mapping[str, Any] = field(default_factory=frozen_options)
    version: int = 1
    name: str = ""  # human label used in errors: "#3 CONV_2D"
    intermediates: tuple = ()


@dataclass(frozen=True, eq=False)
class Graph:
    tensors: tuple  # of TensorSpec
    nodes: tuple  # of Node, in execution order
    inputs: tuple  # tensor indices
    outputs: tuple
    description: str = ""

    def replace(self, **kw) -> "Graph":
        return replace(self, **kw)

    def consumers(self) -> dict:
        """tensor index -> list of node positions reading it."""
        out: dict = {}
        for i, n in enumerate(self.nodes):
            for t in n.inputs:
                if t >= 0:
                    out.setdefault(t, []).append(i)
        return out

    def producers(self) -> dict:
        """tensor index -> node position writing it."""
        return {t: i for i, n in enumerate(self.nodes) for t in n.outputs}


@dataclass(frozen=True, eq=False)
class OpContext:
    """What a kernel's prepare/reference sees of one node: options plus its tensor specs.

    `ins[k]` is None for an absent optional input. Input shapes are the current (possibly resized)
    ones; `outs` carry dtype and quantization from the file, and shapes that the op must recompute.
    """

    node: Node
    ins: tuple
    outs: tuple
    inter: tuple = ()  # TensorSpecs of node.intermediates (quantization of internal LSTM values)

    @property
    def opt(self) -> Mapping[str, Any]:
        return self.node.options

    def fail(self, msg: str):
        from .errors import XnnError

        raise XnnError(f"node {self.node.name}: {msg}")
