"""Set the thread count of the BLAS library numpy uses (for the GEMM-based kernels).

xnn targets one core; numpy's OpenBLAS otherwise starts a thread per core, and on a busy machine
those threads make small GEMMs 20-50x slower. Only OpenBLAS (numpy's wheels) is handled; with any
other BLAS, or off Linux, this does nothing.
"""
from __future__ import annotations

import ctypes

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")
_setter = None
_searched = False


def _find():
    global _setter, _searched
    _searched = True
    import numpy  # noqa: F401  (loads the BLAS library)

    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SETTERS:
            if hasattr(lib, name):
                _setter = getattr(lib, name)
                _setter.argtypes = [ctypes.c_int]
                _setter.restype = None
                return


def set_blas_threads(n: int) -> bool:
    """Limit numpy's OpenBLAS to n threads; True if a BLAS library was found and set."""
    if not _searched:
        _find()
    if _setter is None:
        return False
    _setter(int(n))
    return True
