"""xnn: on-device OCR runtime — TFLite models on Numba kernels, bit-exact int8."""
from .errors import XnnError
from .interpreter import Interpreter
from .kernels import ctc  # noqa: F401  (xnn.ctc.greedy_decode / beam_search)

__version__ = "0.1.0"


def load(path):
    """Load a model file and return a ready Interpreter."""
    return Interpreter(model_path=path)


__all__ = ["Interpreter", "XnnError", "ctc", "load", "__version__"]
