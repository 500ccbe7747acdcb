"""Cold vs warm start: `import xnn` + load + first inference, in fresh processes.

    python bench/startup.py [MODEL.tflite]

Cold: an empty Numba cache directory (everything JIT-compiles). Warm: the same cache directory
again (compiled kernels load from disk). Prints both wall times.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNIPPET = """
import numpy as np, xnn
it = xnn.Interpreter(model_path={path!r})
it([np.zeros(d["shape"], d["dtype"]) for d in it.get_input_details()])
"""


def run(path, cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", SNIPPET.format(path=path)], check=True, env=env)
    return time.perf_counter() - t0


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "fixtures", "detector_int8.tflite")
    with tempfile.TemporaryDirectory() as cache:
        cold = run(path, cache)
        warm = min(run(path, cache) for _ in range(3))
    print(f"{os.path.basename(path)}: cold (JIT compile) {cold:.2f} s, warm (cached) {warm:.2f} s")


if __name__ == "__main__":
    main()
