"""End-to-end A/B of candidate models in the app readers: the shipped zoo vs the same reader with
some models replaced, on the same held-out images (seed 8, never trained on), the same detector
unless it is the one replaced.

    nice python bench/ab_models.py --app card --n 200 --model card_expiry_name=runs/X/export/card_expiry_name_int8.tflite
    nice python bench/ab_models.py --app idcard --n 100 --model idcard_name_address=runs/Y/export/idcard_name_address.xnn

--model NAME=PATH (repeatable): a zoo name (`xnn.zoo.available()`, without _int8.tflite / .xnn) and
a .tflite or .xnn file with its spec (<name>.json) beside it. Prints, per field of the app, how many
images each side reads exactly right (bench_peers' normalization: the key field as `peers.norm`,
expiry / names / addresses as `peers.norm_more`), how many only one side gets right, and both
sides' median read time (one thread; not an idle-machine benchmark unless the machine is idle).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [p for p in (ROOT, os.path.dirname(os.path.abspath(__file__))) if p not in sys.path]

import peers  # noqa: E402

TEST_SEED = 8


def parse_models(items) -> dict:
    out = {}
    for item in items or ():
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--model {item!r}: expected NAME=PATH")
        if not os.path.exists(path):
            raise SystemExit(f"--model {item!r}: {path} does not exist")
        out[name] = path
    if not out:
        raise SystemExit("give at least one --model NAME=PATH")
    return out


def truths(app: str, sample) -> dict:
    """{field: normalized truth} for the app's key field and its secondary fields."""
    out = {peers.KEY_FIELD[app]: peers.norm(app, peers.truth_key(app, sample))}
    out.update({f: peers.norm_more(v) for f, v in peers.truth_more(app, sample).items()})
    return out


def read_fields(app: str, engine, image) -> tuple:
    """({field: normalized text}, seconds): bench_peers' xnn engine and normalization."""
    t0 = time.perf_counter()
    out = engine.read(image)
    dt = time.perf_counter() - t0
    return {peers.KEY_FIELD[app]: peers.predict(app, out), **peers.predict_more(app, out)}, dt


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--app", required=True, choices=sorted(peers.KEY_FIELD))
    ap.add_argument("--n", type=int, default=100, help="held-out images (indices 0..n-1 of seed 8)")
    ap.add_argument("--model", action="append", metavar="NAME=PATH", help="replace a zoo model (repeatable)")
    a = ap.parse_args(argv)
    if a.n < 1:
        raise SystemExit("--n must be >= 1")
    models = parse_models(a.model)
    from models.data import generate

    engines = {"shipped": peers.Xnn(), "new": peers.Xnn(models=models)}
    first = generate(a.app, TEST_SEED, 0).image
    for e in engines.values():
        try:
            e.prepare(a.app)
        except peers.Unavailable as err:
            raise SystemExit(str(err)) from None
        e.read(first)                    # warm-up (Numba, caches), untimed
    fields = [peers.KEY_FIELD[a.app], *peers.MORE_FIELDS.get(a.app, ())]
    right = {k: {f: 0 for f in fields} for k in engines}
    only = {k: {f: 0 for f in fields} for k in engines}
    times = {k: [] for k in engines}
    for i in range(a.n):
        s = generate(a.app, TEST_SEED, i)
        t = truths(a.app, s)
        ok = {}
        for k, e in engines.items():
            got, dt = read_fields(a.app, e, s.image)
            times[k].append(dt)
            ok[k] = {f: got[f] == t[f] for f in fields}
            for f in fields:
                right[k][f] += ok[k][f]
        for f in fields:
            only["shipped"][f] += ok["shipped"][f] and not ok["new"][f]
            only["new"][f] += ok["new"][f] and not ok["shipped"][f]
        if (i + 1) % 25 == 0:
            print(f"  {i + 1}/{a.n}", file=sys.stderr, flush=True)
    print(f"{a.app}, {a.n} held-out images (seed {TEST_SEED}); new: "
          + ", ".join(f"{n}={p}" for n, p in models.items()))
    print("| field | shipped | new | only shipped | only new |")
    print("|---|---|---|---|---|")
    for f in fields:
        print(f"| {f} | {right['shipped'][f]} | {right['new'][f]} | {only['shipped'][f]} | {only['new'][f]} |")
    print("median ms per read: " + ", ".join(f"{k} {1000 * statistics.median(v):.1f}" for k, v in times.items()))


if __name__ == "__main__":
    main()
