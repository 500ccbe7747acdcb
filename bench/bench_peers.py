"""xnn vs Tesseract vs PP-OCRv4 (RapidOCR) on held-out synthetic images of every domain, one run.

    nice python bench/bench_peers.py [--n 100] [--domains card,meter,...] [--engines xnn,tesseract,rapidocr]
                                     [--json OUT.json] [--save-failures DIR] [--max-failures 5]
    nice python bench/bench_peers.py --tune-tesseract [--tune-invert] [--tune-n 30]   # how TESS_CONFIG was chosen

For each domain, renders --n images of seed 8 (models/det_targets.TEST_SEED: never trained, validated
or calibrated on), indices 0..n-1, with models.data.generate, and runs every engine on every image:

  field acc   exact match of the domain's key field after normalization (bench/peers.py `norm`):
              card "number" (digits only), meter "reading" (digits), plate "plate", vin "vin",
              idcard "id_number".
  median ms   median wall time of the engine's full read of one image, one thread, after one untimed
              warm-up read (of image 0); model loading is not timed. images/s = 1000 / median ms.
  model bytes size of the model files the engine needs for that domain.

Engines (all on ONE thread):
  xnn        xnn.ocr.Reader(app).read(image): fields come back directly (key field text is only
             normalized). Domains whose reader is missing or fails to load show "n/a (reason)".
             A second table gives xnn's median detect / crop / recognize / decode times.
             --xnn-key-only: Reader(app, fields=[key field]) (a card read without expiry and name).
             --xnn-beam N: Reader(app, beam=N) (the constrained search's width; default 32).
  tesseract  Tesseract 5 LSTM through libtesseract's C API (ctypes; model loaded once), else the
             `tesseract` command per image. OMP_THREAD_LIMIT=1. Model bytes: the .traineddata files of
             the languages used (Debian ships tessdata_fast: eng 4.1 MB, chi_sim 2.5 MB).
  rapidocr   rapidocr-onnxruntime: PP-OCRv4 det + PP-OCR mobile v2 angle cls + PP-OCRv4 rec (ONNX) on
             onnxruntime, package defaults (det short side upscaled to 736) except
             intra_op_num_threads = inter_op_num_threads = 1 and cv2.setNumThreads(1). Model bytes:
             the three bundled .onnx files. --rapidocr-det-side 320 (no upscaling of these small
             images) and --rapidocr-no-cls (the 0/180 classifier flips some 7-segment readings) make
             it ~3x faster and no less accurate here (n=30: overall 0.77 -> 0.84).
Free-text engines read the whole image; the key field is extracted from their text lines (and from
lines merged per text row) by the same generous per-domain rules (bench/peers.py EXTRACT): card: digit
groups joined, 13-19 digits, Luhn-valid first, then longest; meter: "No. <serial>" dropped, 5-8 digit
runs, tallest text first, then longest; plate: spaces/dots dropped, province + letter + 4-6 alnum
(or + 警/学), O/I -> 0/1 after the 2nd char; vin: O/I/Q -> 0/1/0, 17-char windows of
[A-HJ-NPR-Z0-9] runs, check-digit-valid first; idcard: 17 digits + digit/X, GB 11643 check first.
Digit look-alikes (O->0, l->1, S->5, B->8, ...) are mapped inside mostly-digit tokens.

Tesseract settings per domain (picked with --tune-tesseract and --tune-tesseract --tune-invert on 30
images per domain of the validation seed 7; grid: psm 3/6/11 (+7 for plate/vin), whitelist none or
the domain's, upscale x1/x2, language eng | chi_sim | chi_sim+eng where relevant, and for
card/meter/plate/vin also reading the inverted grey image as well (light-on-dark text); ranked by
field accuracy, then field CER (only needed for plate, where every setting scored 0), then speed;
seed-7 field accuracy in brackets):
  card    -l eng          --psm 6   whitelist 0-9                    x1  + inverted   (6/30)
  meter   -l eng          --psm 6   whitelist 0-9                    x1               (2/30)
  plate   -l chi_sim+eng  --psm 11  whitelist provinces+A-Z0-9+警学   x2               (0/30, CER 0.60)
  vin     -l eng          --psm 6   whitelist A-Z0-9                 x2  + inverted   (5/30)
  idcard  -l chi_sim+eng  --psm 6   no whitelist                     x1               (13/30)
(the table in bench/peers.py TESS_CONFIG is the source of truth).

Setup of the peers (engines that are missing are skipped with the reason printed):
    apt-get install -y tesseract-ocr tesseract-ocr-chi-sim
    pip install rapidocr-onnxruntime          # pulls onnxruntime, opencv-python, shapely, pyclipper

Progress goes to stderr; the tables (markdown) to stdout. --json OUT writes every number, the
settings and versions. --save-failures DIR writes up to --max-failures misread images per engine and
domain (DIR/<engine>/<domain>_<index>.png) and DIR/<engine>/failures.tsv (truth, prediction, raw text).
"""
from __future__ import annotations

import os

for _v in ("OMP_THREAD_LIMIT", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"          # one thread for every engine; must precede numpy / library loads

import argparse                    # noqa: E402
import itertools                   # noqa: E402
import json                        # noqa: E402
import platform                    # noqa: E402
import statistics                  # noqa: E402
import sys                         # noqa: E402
import time                        # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [p for p in (ROOT, os.path.dirname(os.path.abspath(__file__))) if p not in sys.path]

import numpy as np                 # noqa: E402

import peers                       # noqa: E402
from peers import DOMAINS, Unavailable  # noqa: E402

TEST_SEED = 8                      # models.det_targets.TEST_SEED
VAL_SEED = 7                       # models.det_targets.VAL_SEED (used only by --tune-tesseract)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def render(domain: str, seed: int, n: int):
    from models.data import generate
    out = []
    for i in range(n):
        s = generate(domain, seed, i)
        out.append((i, s.image, peers.truth_key(domain, s), peers.truth_more(domain, s)))
    return out


def run_engine(eng, domain: str, samples, label: str, fail_dir=None, max_failures=0):
    """Warm-up read of image 0 (untimed), then every image timed. Returns a result dict."""
    eng.prepare(domain)
    try:
        eng.read(samples[0][1])
    except Exception as e:
        raise Unavailable(f"read failed: {type(e).__name__}: {e}") from None
    times, stages, correct, errors, saved = [], {}, 0, 0, 0
    more = {f: {"correct": 0, "errors": 0, "chars": 0} for f in peers.MORE_FIELDS.get(domain, ())}
    n = len(samples)
    t_start = time.time()
    for k, (idx, image, truth, truth2) in enumerate(samples):
        t0 = time.perf_counter()
        try:
            out = eng.read(image)
        except Exception as e:                     # counted as a misread, left out of the latency
            out = peers.Output(fields={}, timings={})
            out.error = f"{type(e).__name__}: {e}"
            errors += 1
        else:
            times.append(time.perf_counter() - t0)
        for st, v in out.timings.items():
            stages.setdefault(st, []).append(float(v))
        pred = peers.predict(domain, out)
        ok = pred == peers.norm(domain, truth)
        correct += ok
        for f, got in peers.predict_more(domain, out).items():
            ref = peers.norm_more(truth2.get(f, ""))
            more[f]["correct"] += got == ref
            more[f]["errors"] += min(len(ref), peers.edit_distance(got, ref))
            more[f]["chars"] += len(ref)
        if not ok and fail_dir and saved < max_failures:
            saved += 1
            _save_failure(fail_dir, label, domain, idx, image, truth, pred, getattr(out, "error", None) or out.raw_text())
        if ((k + 1) % 10 == 0 or k + 1 == n) and times:
            log(f"  [{domain}] {label}: {k + 1}/{n}  acc {correct / (k + 1):.3f}  "
                f"median {1e3 * statistics.median(times):.1f} ms  ({time.time() - t_start:.0f} s)")
    if not times:
        raise Unavailable(f"every read failed ({out.error})")
    med = statistics.median(times)
    return {"n": n, "correct": correct, "acc": correct / n, "errors": errors,
            "median_ms": 1e3 * med, "images_per_s": 1.0 / med if med > 0 else None,
            "times_ms": [round(1e3 * t, 3) for t in times],
            "stages_median_ms": {k: 1e3 * statistics.median(v) for k, v in stages.items()},
            "model_bytes": eng.model_bytes(domain), "model_files": eng.model_files(domain),
            "settings": eng.describe(domain),
            "more_fields": {f: {"acc": m["correct"] / n, "char_acc": 1.0 - m["errors"] / max(1, m["chars"])}
                            for f, m in more.items()}}


def _save_failure(root, label, domain, idx, image, truth, pred, raw):
    from PIL import Image
    d = os.path.join(root, label)
    os.makedirs(d, exist_ok=True)
    Image.fromarray(image).save(os.path.join(d, f"{domain}_{idx:04d}.png"))
    with open(os.path.join(d, "failures.tsv"), "a", encoding="utf-8") as f:
        raw = raw.replace("\t", " ").replace("\n", " ")
        f.write(f"{domain}\t{idx}\t{truth}\t{pred}\t{raw}\n")


def fmt_bytes(b) -> str:
    if not b:
        return "?"
    return f"{b / 1e6:.2f} MB" if b >= 1e5 else f"{b / 1e3:.1f} kB"


def print_tables(results, engines, domains, overall):
    print("\n| domain | engine | field acc | median ms | images/s | model bytes |")
    print("|---|---|---:|---:|---:|---:|")
    for d in domains + ["overall"]:
        for e in engines:
            r = overall.get(e) if d == "overall" else results.get(d, {}).get(e)
            if r is None:
                continue
            if "na" in r:
                print(f"| {d} | {e} | n/a ({r['na']}) | | | |")
                continue
            ips = f"{r['images_per_s']:.1f}" if r.get("images_per_s") else "-"
            extra = f" ({r['errors']} errors)" if r.get("errors") else ""
            print(f"| {d} | {e} | {r['acc']:.3f} ({r['correct']}/{r['n']}){extra} | {r['median_ms']:.1f} | "
                  f"{ips} | {fmt_bytes(r['model_bytes'])} |")
    print("\nfield acc: exact key-field match; median ms: one full read, one thread; overall model bytes: "
          "union of the files used over the domains (sum of per-domain bytes where an engine does not "
          "list its files).")
    more = [(d, e, f, r["more_fields"][f]) for d in domains for e in engines
            for r in [results.get(d, {}).get(e)] if r is not None and "na" not in r
            for f in r.get("more_fields", {})]
    if more:
        print("\n| domain | field | engine | exact | char acc |")
        print("|---|---|---|---:|---:|")
        for d, e, f, m in more:
            print(f"| {d} | {f} | {e} | {m['acc']:.3f} | {m['char_acc']:.3f} |")
        print("\nsecondary fields: exact match and 1 - (edit distance, capped at the truth's length) / truth "
              "characters; free-text engines: the text after the printed captions (bench/peers.py).")
    xr = [(d, results[d]["xnn"]) for d in domains if "xnn" in results.get(d, {}) and "na" not in results[d]["xnn"]]
    if xr:
        stages = ("detect", "crop", "recognize", "decode")
        print("\nxnn latency breakdown (median ms per image)\n")
        print("| domain | " + " | ".join(stages) + " | total |")
        print("|---|" + "---:|" * (len(stages) + 1))
        for d, r in xr:
            sm = r["stages_median_ms"]
            print(f"| {d} | " + " | ".join(f"{sm[s]:.1f}" if s in sm else "-" for s in stages)
                  + f" | {r['median_ms']:.1f} |")


def compute_overall(results, engines, domains, files_by_engine):
    overall = {}
    for e in engines:
        rs = [results[d][e] for d in domains if e in results.get(d, {}) and "na" not in results[d][e]]
        if not rs:
            continue
        times = [t for r in rs for t in r["times_ms"]]
        n, correct = sum(r["n"] for r in rs), sum(r["correct"] for r in rs)
        files = files_by_engine.get(e, set())
        if files:
            mb = sum(os.path.getsize(p) for p in files if os.path.exists(p))   # union over domains
        else:
            mb = sum(r["model_bytes"] for r in rs)                              # no file list: sum
        med = statistics.median(times) / 1e3
        overall[e] = {"n": n, "correct": correct, "acc": correct / n, "errors": sum(r["errors"] for r in rs),
                      "median_ms": 1e3 * med, "images_per_s": 1.0 / med if med > 0 else None,
                      "model_bytes": mb, "domains": [d for d in domains if e in results.get(d, {})
                                                     and "na" not in results[d][e]]}
    return overall


def make_engine(name, args):
    if name == "rapidocr":
        return peers.RapidOCR(det_limit_side_len=args.rapidocr_det_side, use_cls=not args.rapidocr_no_cls)
    if name == "xnn":
        return peers.Xnn(key_only=args.xnn_key_only, beam=args.xnn_beam)
    return peers.ENGINES[name]()


def tune_tesseract(args, domains):
    """Grid over psm / whitelist / upscale / language on VAL_SEED images; prints the ranking."""
    eng = peers.Tesseract()
    log(f"tesseract {eng.version} ({eng.mode}), tuning on seed {VAL_SEED}, {args.tune_n} images per domain")
    best = {}
    for d in domains:
        samples = render(d, VAL_SEED, args.tune_n)
        psms = [3, 6, 11] + ([7] if d in ("plate", "vin") else [])
        langs = {"plate": ["chi_sim", "chi_sim+eng"], "idcard": ["eng", "chi_sim+eng"]}.get(d, ["eng"])
        grid = itertools.product(langs, psms, ["", peers.TESS_WHITELISTS[d]], [1, 2], [False])
        if args.tune_invert:
            grid = itertools.product(langs, psms, [peers.TESS_WHITELISTS[d]], [1, 2], [True])
        rows = []
        for lang, psm, wl, scale, inv in grid:
            cfg = dict(lang=lang, psm=psm, whitelist=wl, scale=scale, invert=inv)
            try:
                eng.set_config(cfg)
            except Unavailable as e:
                log(f"  [{d}] skip {cfg}: {e}")
                continue
            correct, times, cer = 0, [], 0.0
            for _, image, truth, _ in samples:
                t0 = time.perf_counter()
                out = eng.read(image)
                times.append(time.perf_counter() - t0)
                pred, ref = peers.predict(d, out), peers.norm(d, truth)
                correct += pred == ref
                cer += min(1.0, peers.edit_distance(pred, ref) / max(1, len(ref))) / len(samples)
            eng.config[d] = cfg
            rows.append((correct, -cer, -statistics.median(times), cfg, eng.describe(d)))
            log(f"  [{d}] {eng.describe(d):60s} acc {correct}/{len(samples)}  cer {cer:.3f}  "
                f"{1e3 * statistics.median(times):.1f} ms")
        rows.sort(key=lambda r: r[:3], reverse=True)      # accuracy, then field CER, then speed
        print(f"\n{d}: best of {len(rows)} configs on {len(samples)} images (seed {VAL_SEED})")
        for c, negcer, negt, cfg, desc in rows[:5]:
            print(f"  {c:3d}/{len(samples)}  cer {-negcer:.3f}  {-1e3 * negt:7.1f} ms  {desc}")
        best[d] = rows[0][3] if rows else None
    eng.close()
    print("\nTESS_CONFIG = {")
    for d, cfg in best.items():
        print(f"    {d!r}: {cfg!r},")
    print("}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="images per domain (seed 8, indices 0..n-1; default 100)")
    ap.add_argument("--domains", default=",".join(DOMAINS), help=f"comma list from {','.join(DOMAINS)} (default: all)")
    ap.add_argument("--engines", default="xnn,tesseract,rapidocr",
                    help="comma list from xnn,tesseract,rapidocr (default: all three)")
    ap.add_argument("--json", metavar="OUT", help="also write every result (incl. per-image times) as JSON")
    ap.add_argument("--save-failures", metavar="DIR", help="write misread images + DIR/<engine>/failures.tsv")
    ap.add_argument("--max-failures", type=int, default=5, help="misreads saved per engine and domain (default 5)")
    ap.add_argument("--rapidocr-det-side", type=int, default=None,
                    help="override RapidOCR Det.limit_side_len (default: the package's 736, limit_type min)")
    ap.add_argument("--rapidocr-no-cls", action="store_true",
                    help="skip RapidOCR's 0/180-degree line classifier (package default: on); it flips "
                         "some symmetric 7-segment meter readings")
    ap.add_argument("--xnn-key-only", action="store_true",
                    help="xnn reads only each domain's key field (Reader(app, fields=[key]): a card without "
                         "expiry and name)")
    ap.add_argument("--xnn-beam", type=int, default=None, metavar="N",
                    help="xnn's constrained-search beam (Reader(app, beam=N); default: the Reader's, 32)")
    ap.add_argument("--tune-tesseract", action="store_true",
                    help=f"instead of benchmarking, rank Tesseract settings per domain on seed {VAL_SEED}")
    ap.add_argument("--tune-invert", action="store_true",
                    help="with --tune-tesseract: grid of configs that also read the inverted image")
    ap.add_argument("--tune-n", type=int, default=30, help="images per domain for --tune-tesseract (default 30)")
    args = ap.parse_args(argv)

    domains = [d.strip() for d in args.domains.split(",") if d.strip()]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for d in domains:
        if d not in DOMAINS:
            ap.error(f"unknown domain {d!r}; choose from {', '.join(DOMAINS)}")
    for e in engines:
        if e not in peers.ENGINES:
            ap.error(f"unknown engine {e!r}; choose from {', '.join(peers.ENGINES)}")
    if args.n < 1:
        ap.error("--n must be >= 1")

    if args.tune_tesseract:
        tune_tesseract(args, domains)
        return 0

    # engines first (a missing one is reported once and skipped)
    live, skipped, versions = {}, {}, {}
    for e in engines:
        try:
            live[e] = make_engine(e, args)
            versions[e] = getattr(live[e], "version", "?")
            extra = f" ({live[e].mode})" if e == "tesseract" else ""
            log(f"{e}: {versions[e]}{extra}")
        except Unavailable as ex:
            skipped[e] = str(ex)
            log(f"{e}: SKIPPED - {ex}")

    results, files_by_engine = {}, {}
    for d in domains:
        t0 = time.time()
        samples = render(d, TEST_SEED, args.n)
        log(f"[{d}] rendered {len(samples)} images (seed {TEST_SEED}) in {time.time() - t0:.1f} s")
        results[d] = {}
        for e in engines:
            if e in skipped:
                results[d][e] = {"na": skipped[e]}
                continue
            try:
                r = run_engine(live[e], d, samples, e, args.save_failures, args.max_failures)
            except Unavailable as ex:
                results[d][e] = {"na": str(ex)}
                log(f"  [{d}] {e}: n/a - {ex}")
                continue
            results[d][e] = r
            files_by_engine.setdefault(e, set()).update(r["model_files"])
            log(f"  [{d}] {e}: acc {r['acc']:.3f}  median {r['median_ms']:.1f} ms  [{r['settings']}]")
    for eng in live.values():
        eng.close()

    overall = compute_overall(results, engines, domains, files_by_engine)
    print(f"\nHeld-out synthetic images: seed {TEST_SEED}, n = {args.n} per domain, one thread per engine "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs)")
    for e, v in versions.items():
        print(f"- {e}: {v}")
    for e, why in skipped.items():
        print(f"- {e}: skipped ({why})")
    if "tesseract" in live:
        for d in domains:
            print(f"- tesseract {d}: {live['tesseract'].describe(d)}")
    print_tables(results, engines, domains, overall)

    if args.json:
        doc = {"seed": TEST_SEED, "n": args.n, "domains": domains, "engines": engines,
               "versions": versions, "skipped": skipped, "cpu": platform.processor() or platform.machine(),
               "results": results, "overall": overall}
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
