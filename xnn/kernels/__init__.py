"""Numba kernels, one op family per module: `<op>_ref` (NumPy spec), `prepare_<op>`, `<op>` (@njit)."""
