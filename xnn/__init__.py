"""xnn: on-device OCR runtime — TFLite models on Numba kernels, bit-exact int8."""
from .errors import XnnError
from .interpreter import Interpreter
from .kernels import ctc  # noqa: F401  (xnn.ctc.greedy_decode / beam_search)

__version__ = "0.1.0"


def load(path):
    """Load a model file (.tflite or .xnn) and return a ready Interpreter."""
    return Interpreter(model_path=path)


def convert(src, dst):
    """Convert a .tflite (or .xnn) model to the compact .xnn format: load-time passes applied,
    unsupported ops rejected before anything is written. Returns the bytes written."""
    from .converter.xnn_format import save_xnn
    from .interpreter import check_graph, load_graph

    g = load_graph(model_path=src)
    check_graph(g)
    return save_xnn(g, dst)


__all__ = ["Interpreter", "XnnError", "convert", "ctc", "load", "__version__"]
