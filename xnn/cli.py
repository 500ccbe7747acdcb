"""The `xnn` command line: convert, info, run, ocr."""
from __future__ import annotations

import argparse
import sys

import numpy as np

from .errors import XnnError


def node_macs(g, node) -> int:
    """Multiply-accumulates of one node, from its declared tensor shapes (0 for data movement)."""
    def shape(i):
        return g.tensors[i].shape if i >= 0 else ()

    def size(s):
        return int(np.prod(s, dtype=np.int64)) if s else 0

    out = shape(node.outputs[0]) if node.outputs else ()
    if node.op == "CONV_2D" and len(shape(node.inputs[1])) == 4:
        _, kh, kw, cin = shape(node.inputs[1])
        return size(out) * kh * kw * cin
    if node.op == "DEPTHWISE_CONV_2D" and len(shape(node.inputs[1])) == 4:
        _, kh, kw, _ = shape(node.inputs[1])
        return size(out) * kh * kw
    if node.op == "FULLY_CONNECTED" and len(shape(node.inputs[1])) == 2:
        return size(out) * shape(node.inputs[1])[1]
    if node.op == "TRANSPOSE_CONV" and len(shape(node.inputs[1])) == 4:
        cout, kh, kw, _ = shape(node.inputs[1])
        return size(shape(node.inputs[2])) * kh * kw * cout
    if node.op in ("UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "BIDI_SEQUENCE_LSTM"):
        return sum(size(shape(i)) for i in node.inputs[1:] if i >= 0 and g.tensors[i].data is not None) * \
            (shape(node.inputs[0])[1] if len(shape(node.inputs[0])) == 3 else 1)
    return 0


def _fmt_tensor(g, i) -> str:
    if i < 0:
        return "-"
    t = g.tensors[i]
    s = "x".join(str(d) for d in t.shape) or "scalar"
    q = ""
    if t.quant is not None:
        q = f" q[{t.quant.scale.size}ch]" if t.quant.per_channel else f" q({t.quant.s:.3g},{t.quant.zp})"
    return f"{s} {t.dtype.name}{q}{' const' if t.data is not None else ''}"


def _fmt_option(k, v) -> str:
    from .ir import ACTIVATIONS, PADDINGS

    if k == "fused_activation_function" and 0 <= int(v) < len(ACTIVATIONS):
        return f"act={ACTIVATIONS[int(v)]}"
    if k == "padding" and 0 <= int(v) < len(PADDINGS):
        return PADDINGS[int(v)]
    return f"{k}={v}"


def cmd_info(args) -> int:
    from .interpreter import load_graph
    from .ops import OPS

    g = load_graph(model_path=args.model)
    print(f"model: {args.model} ({_format_name(args.model)})")
    if g.description:
        print(f"description: {g.description}")
    rows = []
    total_macs = 0
    for node in g.nodes:
        macs = node_macs(g, node)
        total_macs += macs
        params = ", ".join(_fmt_option(k, v) for k, v in sorted(node.options.items())
                           if (v not in (0, False, [], None) or k == "padding")
                           and not (k.startswith("dilation") and v == 1))
        rows.append((node.name, "v%d" % node.version, _fmt_tensor(g, node.inputs[0]) if node.inputs else "-",
                     " ; ".join(_fmt_tensor(g, o) for o in node.outputs), f"{macs:,}", params,
                     "" if node.op in OPS else "UNSUPPORTED"))
    widths = [max(len(r[k]) for r in rows + [("node", "ver", "input", "output", "MACs", "", "")])
              for k in range(5)]
    head = ("node", "ver", "input", "output", "MACs")
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)) + "  params")
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5] + (f"  [{r[6]}]" if r[6] else ""))
    weights = sum(t.data.nbytes for t in g.tensors if t.data is not None)
    print(f"\nnodes: {len(g.nodes)}   tensors: {len(g.tensors)}   MACs: {total_macs:,}   "
          f"weight bytes: {weights:,}")
    print("inputs:  " + "; ".join(f"{g.tensors[i].name} {_fmt_tensor(g, i)}" for i in g.inputs))
    print("outputs: " + "; ".join(f"{g.tensors[i].name} {_fmt_tensor(g, i)}" for i in g.outputs))
    unsupported = sorted({n.op for n in g.nodes if n.op not in OPS})
    if unsupported:
        print(f"unsupported ops: {', '.join(unsupported)}")
        return 1
    from .interpreter import Interpreter

    it = Interpreter(model_path=args.model)
    print(f"activation arena: {it.arena_bytes:,} bytes (peak, after lifetime-based buffer reuse)")
    return 0


def cmd_run(args) -> int:
    from .interpreter import Interpreter

    it = Interpreter(model_path=args.model)
    details = it.get_input_details()
    feeds = []
    if args.input:
        if len(args.input) != len(details):
            raise XnnError(f"model takes {len(details)} inputs, got {len(args.input)} --input files")
        for path, d in zip(args.input, details):
            try:
                with open(path, "rb") as f:
                    if f.read(6) != b"\x93NUMPY":
                        raise XnnError(f"input '{path}' is not a .npy file (save arrays with numpy.save)")
                x = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as e:
                if isinstance(e, XnnError):
                    raise
                raise XnnError(f"cannot read input '{path}' as .npy: {e}") from None
            if x.dtype != d["dtype"] and np.can_cast(x.dtype, d["dtype"], "same_kind"):
                x = x.astype(d["dtype"])
            feeds.append(x)
    else:
        rng = np.random.default_rng(args.seed)
        for d in details:
            if np.issubdtype(d["dtype"], np.integer):
                info = np.iinfo(d["dtype"])
                feeds.append(rng.integers(info.min, info.max + 1, d["shape"], dtype=d["dtype"]))
            else:
                feeds.append(rng.uniform(0, 1, d["shape"]).astype(d["dtype"]))
        print(f"(no --input: random input, seed {args.seed})", file=sys.stderr)
    outs = it(feeds)
    for d, y in zip(it.get_output_details(), outs):
        line = f"{d['name']}: shape {list(y.shape)} {y.dtype.name} min {y.min()} max {y.max()}"
        if y.ndim == 2 and y.shape[0] == 1:
            top = np.argsort(-y[0].astype(np.float64), kind="stable")[:5]
            line += f" top5 {top.tolist()}"
        print(line)
    if args.output:
        np.savez(args.output, **{d["name"]: y for d, y in zip(it.get_output_details(), outs)})
        print(f"saved {len(outs)} outputs to {args.output}")
    return 0


def _format_name(path) -> str:
    import struct

    from .converter.xnn_format import is_xnn

    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return "?"
    if is_xnn(head) and len(head) == 8:
        return f".xnn format {struct.unpack_from('<I', head, 4)[0]}"  # the file's own version
    return "TFLite"


def _read_raw(path):
    """(file bytes, graph as stored in the file: no folding, no passes)."""
    from .converter.tflite_reader import read_tflite
    from .converter.xnn_format import is_xnn, read_xnn

    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError as e:
        raise XnnError(f"cannot read model file '{path}': {e.strerror or e}") from None
    return content, (read_xnn(content) if is_xnn(content) else read_tflite(content))


def _const_bytes(g, t, producers, memo, sizes=None):
    """Bytes a file stores for tensor t if t is a constant or computed from constants only (folded
    at load, e.g. float16 weights widened by DEQUANTIZE), else None (an activation). `sizes`
    overrides the stored bytes of (encoded) constants by index."""
    if t in memo:
        return memo[t]
    spec = g.tensors[t]
    memo[t] = None  # guards against cycles in a malformed graph
    if spec.is_variable:
        return None
    if spec.data is not None:
        memo[t] = int(sizes[t]) if sizes and t in sizes else int(spec.data.nbytes)
    elif t in producers:
        parts = [_const_bytes(g, i, producers, memo, sizes) for i in g.nodes[producers[t]].inputs if i >= 0]
        if parts and all(b is not None for b in parts):
            memo[t] = sum(parts)
    return memo[t]


def _layer_rows(before_g, after_g, sizes=None):
    """[(node, op, weight bytes before, after, tensors)] for the nodes of after_g that run at
    inference (`sizes`: stored bytes of encoded constants of after_g). Passes keep tensor indices,
    so a node's weights are found in before_g by the same indices."""
    pb, pa = before_g.producers(), after_g.producers()
    mb, ma = {}, {}
    rows = []
    for n in after_g.nodes:
        ins = [t for t in n.inputs if t >= 0]
        after = [_const_bytes(after_g, t, pa, ma, sizes) for t in ins]
        if ins and all(b is not None for b in after):
            continue  # computed from constants: folded at load, its bytes count where they are read
        before = [_const_bytes(before_g, t, pb, mb) if t < len(before_g.tensors) else a
                  for t, a in zip(ins, after)]
        rows.append((n.name, n.op, sum(b or 0 for b in before), sum(a or 0 for a in after),
                     [t for t, a in zip(ins, after) if a is not None]))
    return rows


def _const_sources(g, ts, producers):
    """The stored constants behind tensors ts (through DEQUANTIZE chains folded at load)."""
    out, seen = [], set()

    def visit(t):
        if t < 0 or t in seen:
            return
        seen.add(t)
        if g.tensors[t].data is not None:
            out.append(t)
        elif t in producers:
            for i in g.nodes[producers[t]].inputs:
                visit(i)
    for t in ts:
        visit(t)
    return out  # in input order: weights before biases


def _bits_for(items) -> tuple:
    """--weight-bits-for REGEX=B values as ((regex, bits), ...); B = 0 or "exact": exact values."""
    out = []
    for item in items or ():
        pat, sep, b = item.rpartition("=")
        b = b.strip().lower()
        if not sep or not pat:
            raise XnnError(f"--weight-bits-for {item!r}: expected REGEX=B (B in 1..8, or 0/exact)")
        if b == "exact":
            b = "0"
        if not b.isdigit():
            raise XnnError(f"--weight-bits-for {item!r}: B must be an integer in 1..8, or 0/exact")
        out.append((pat, int(b)))
    return tuple(out)


def _compress_options(args):
    from .converter.compress import CompressOptions

    bits = args.weight_bits
    return CompressOptions(prune=args.prune or 0.0, prune_channels=args.prune_channels,
                           prune_min_size=args.prune_min_size, weight_bits=bits,
                           codec=args.weight_codec, codebook=args.codebook, low_rank=args.low_rank,
                           entropy=args.entropy, seed=args.seed,
                           weight_bits_min_size=getattr(args, "weight_bits_min_size", 0) or 0,
                           weight_bits_for=_bits_for(getattr(args, "weight_bits_for", None)),
                           weight_bits_fit=bool(getattr(args, "weight_bits_fit", False)),
                           coarse_params=bool(getattr(args, "coarse_params", False)),
                           rounding=getattr(args, "weight_rounding", None) or "nearest",
                           bias_correction=bool(getattr(args, "bias_correction", False))).check()


def cmd_convert(args) -> int:
    import os
    import time

    from .converter.xnn_format import graph_for_xnn, read_xnn, write_file, write_xnn
    from .interpreter import check_graph

    out = args.output or os.path.splitext(args.model)[0] + ".xnn"
    if os.path.abspath(out) == os.path.abspath(args.model):
        raise XnnError(f"output '{out}' would overwrite the input")
    if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise XnnError(f"cannot write '{out}': its directory does not exist")
    opts = _compress_options(args)
    if args.calib is not None and not os.path.isdir(args.calib):
        raise XnnError(f"calibration directory '{args.calib}' does not exist or is not a directory")
    if args.quantize and args.calib is None:
        raise XnnError("--quantize int8 needs calibration data: --calib DIR (.npy/.npz files or images)")
    if args.tflite_out and not args.quantize:
        raise XnnError("--tflite-out writes the quantized model: give it with --quantize int8")
    if opts.rounding == "gptq" and args.calib is None:
        raise XnnError("--weight-rounding gptq needs calibration data: --calib DIR (.npy/.npz files or images)")
    if opts.bias_correction and args.calib is None:
        raise XnnError("--bias-correction needs calibration data: --calib DIR (.npy/.npz files or images)")
    if (args.calib is not None and not args.quantize and opts.rounding != "gptq" and not opts.bias_correction
            and not (args.report and opts.active)):
        print("xnn: note: --calib is only used by --quantize, --weight-rounding gptq, --bias-correction and by "
              "--report with compression flags", file=sys.stderr)
    steps = 3 + bool(opts.active) + bool(args.quantize)

    def step(msg):
        print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    content, raw = _read_raw(args.model)
    step(f"[1/{steps}] read {args.model}: {len(content):,} bytes, {len(raw.nodes)} nodes, {len(raw.tensors)} "
         f"tensors ({(time.perf_counter() - t0) * 1e3:.1f} ms)")
    k = 2
    source = raw
    if args.quantize:
        raw = _quantize_step(raw, args, step, f"[{k}/{steps}]")
        k += 1
    t0 = time.perf_counter()
    g = graph_for_xnn(raw)
    check_graph(g)
    step(f"[{k}/{steps}] folded constants, ran graph passes: {len(g.nodes)} nodes "
         f"({(time.perf_counter() - t0) * 1e3:.1f} ms)")
    k += 1
    comp = None
    if opts.active:
        from .converter.compress import compress, stderr_progress

        t0 = time.perf_counter()
        feeds = None
        if opts.rounding == "gptq" or opts.bias_correction:
            from .converter.compress import load_calibration
            from .interpreter import Interpreter

            details = Interpreter(graph=g, num_threads=1).get_input_details()
            feeds = load_calibration(args.calib, details, limit=args.calib_limit)
            what = " and ".join(w for w, on in (("gptq rounding", opts.rounding == "gptq"),
                                                ("bias correction", opts.bias_correction)) if on)
            step(f"  {what}: layer inputs from {len(feeds)} calibration samples in {args.calib}")
        comp = compress(g, opts, progress=stderr_progress, feeds=feeds)
        check_graph(comp.graph)
        step(f"[{k}/{steps}] compressed: {len(comp.encodings)} tensors encoded "
             f"({(time.perf_counter() - t0) * 1e3:.1f} ms)")
    t0 = time.perf_counter()
    data = comp.to_bytes() if comp else write_xnn(g)
    read_xnn(data)  # what is written must read back
    try:
        write_file(out, data)
    except OSError as e:
        raise XnnError(f"cannot write '{out}': {e.strerror or e}") from None
    step(f"[{steps}/{steps}] wrote {out}: {len(data):,} bytes ({(time.perf_counter() - t0) * 1e3:.1f} ms)")
    if args.report:
        _print_report(source, g, len(content), len(data), comp)
        if comp is not None:
            _print_error(g, data, args)
    return 0


def _quantize_step(raw, args, step, tag):
    """Post-training int8 quantization of the float graph `raw` on the --calib data; writes
    --tflite-out; prints the int8 model's output error against the float one on that data."""
    import time

    from .converter.compress import load_calibration, output_error, stderr_progress
    from .converter.quantize import int8_io_graph, quantize_graph
    from .converter.tflite_writer import write_tflite
    from .interpreter import Interpreter

    t0 = time.perf_counter()
    ref = Interpreter(model_path=args.model)
    feeds = load_calibration(args.calib, ref.get_input_details(), limit=args.calib_limit)
    step(f"{tag} calibrating on {len(feeds)} samples from {args.calib}")
    q = quantize_graph(raw, feeds, progress=stderr_progress if args.verbose_calib else None)
    new = Interpreter(model_content=write_tflite(q))  # float I/O: comparable with the float model
    for r in output_error(ref, new, feeds):
        step(f"    int8 vs float on the calibration data, {r['name']}: max |err| {r['max_abs']:.4g}  "
             f"mean |err| {r['mean_abs']:.4g}")
    if args.int8_io:
        q = int8_io_graph(q)
    data = write_tflite(q)
    if args.tflite_out:
        try:
            with open(args.tflite_out, "wb") as f:
                f.write(data)
        except OSError as e:
            raise XnnError(f"cannot write '{args.tflite_out}': {e.strerror or e}") from None
        step(f"    wrote {args.tflite_out}: {len(data):,} bytes (standard int8 .tflite)")
    step(f"{tag} quantized to int8: {len(q.nodes)} nodes ({(time.perf_counter() - t0) * 1e3:.1f} ms)")
    return q


def _print_report(before_g, after_g, before_size, after_size, comp=None):
    """Per layer: weight bytes in the input file, bytes stored in the .xnn (encoded sizes when
    compressed), the ratio and how the weights are stored; then totals."""
    sizes = {t: len(e.payload) for t, e in comp.encodings.items()} if comp else None
    final = comp.graph if comp else after_g
    before = {name: b for name, _, b, _, _ in _layer_rows(before_g, after_g)}
    producers = final.producers()
    order, merged = [], {}
    for name, op, _, a, ts in _layer_rows(before_g, final, sizes):
        base = name.split("/lowrank.")[0]  # the two FCs of a low-rank split count as their original
        notes = [comp.notes[t] for t in _const_sources(final, ts, producers) if t in comp.notes] if comp else []
        if base not in merged:
            order.append(base)
            merged[base] = [op, before.get(base, 0), 0, []]
        elif base != name:
            merged[base][0] = "FC x2 (low-rank)"
        merged[base][2] += a
        merged[base][3].extend(notes)
    table = []
    for base in order:
        op, b, a, notes = merged[base]
        if a or b:
            table.append((base, op, f"{b:,}", f"{a:,}", f"{b / a:.2f}x" if a else "-",
                          "; ".join(dict.fromkeys(notes))))
    head = ("layer", "op", "weights before", "weights after", "ratio", "stored as" if comp else "")
    widths = [max(len(r[k]) for r in table + [head]) for k in range(5)]

    def line(cells):
        return ("  ".join(c.ljust(w) if k < 2 else c.rjust(w) for k, (c, w) in enumerate(zip(cells[:5], widths)))
                + ("  " + cells[5] if cells[5] else "")).rstrip()

    print(line(head))
    for r in table:
        print(line(r))

    def total(g, sizes=None):
        from .converter.xnn_format import compact_tensors_map

        g2, renumber = compact_tensors_map(g)  # what the .xnn stores
        inv = {v: k for k, v in renumber.items()}
        return sum(int(sizes[inv[t]]) if sizes and inv[t] in sizes else int(t_.data.nbytes)
                   for t, t_ in enumerate(g2.tensors) if t_.data is not None and not t_.is_variable)

    tb, ta = sum(int(t.data.nbytes) for t in before_g.tensors if t.data is not None and not t.is_variable), \
        total(final, sizes)
    print(f"weight bytes: {tb:,} -> {ta:,} ({tb / max(ta, 1):.2f}x)")
    print(f"file size:    {before_size:,} -> {after_size:,} bytes ({before_size / max(after_size, 1):.2f}x)")


def _print_error(g, data, args):
    """Output error of the compressed model against the uncompressed one (same graph, plain)."""
    from .converter.compress import load_calibration, output_error, random_feeds
    from .converter.xnn_format import write_xnn
    from .interpreter import Interpreter

    ref = Interpreter(model_content=write_xnn(g))
    new = Interpreter(model_content=data)
    details = ref.get_input_details()
    if args.calib:
        feeds = load_calibration(args.calib, details, limit=args.calib_limit)
        src = f"{len(feeds)} calibration samples from {args.calib}"
    else:
        feeds = random_feeds(details, count=8, seed=args.seed)
        src = (f"no --calib: {len(feeds)} seeded random inputs (seed {args.seed}); errors on random inputs "
               "say little about accuracy, give --calib DIR")
    print(f"output error vs the uncompressed model ({src}):")
    for r in output_error(ref, new, feeds):
        agree = "" if r["argmax_agree"] is None else f"  argmax agreement {100 * r['argmax_agree']:.1f}%"
        print(f"  {r['name']}: max |err| {r['max_abs']:.4g}  mean |err| {r['mean_abs']:.4g}  "
              f"relative L2 {r['rel_l2']:.4g}{agree}")


# ---- xnn ocr ------------------------------------------------------------------------------------

def _ocr_text(path, res, quality, reader=None) -> str:
    out = [f"{path}: {res.app}"]
    no_model = {r.name for r in getattr(reader, "rules", ()) if r.model in getattr(reader, "unavailable", {})}
    for name, f in res.fields.items():
        flag = "" if f.valid else "  (fails the rules)"
        extra = "".join(f"  {k}={v}" for k, v in f.meta.items() if k in ("issuer", "birth", "sex", "region",
                                                                        "rolled", "votes"))
        if f.meta.get("source"):
            extra += f"  (from the {f.meta['source'].replace('id_number', 'ID number')})"
        elif f.meta.get("province_matches_number") is False:
            extra += "  (province differs from the ID number's)"
        out.append(f"  {name:10s} {f.text}   conf {f.confidence:.3f}{flag}{extra}")
    for name in res.missing:
        if name in res.rejected:
            r = res.rejected[name]
            out.append(f"  {name:10s} (uncertain: best valid reading {r.text} has confidence {r.confidence:.2g})")
        else:
            out.append(f"  {name:10s} " + ("(not read: its recognizer is not shipped yet)" if name in no_model
                                           else "(not found)"))
    if res.app == "text":
        for ln in res.lines:
            out.append(f"  {ln.text}   conf {ln.confidence:.3f}")
        if not res.lines:
            out.append("  (no text found)")
    if quality is not None:
        for h in quality.hints:
            out.append(f"  hint [{h.severity}] {h.message}")
    t = res.timings
    if t:
        out.append("  time " + " + ".join(f"{k} {1000 * v:.1f}" for k, v in t.items())
                   + f" = {1000 * sum(t.values()):.1f} ms")
    return "\n".join(out)


def _found_something(res) -> bool:
    return bool(res.fields) or (res.app == "text" and bool(res.lines))


def _quality(image, res, app):
    try:
        from .ocr import quality
    except ImportError:
        return None
    quads = res.detections if res.detections is not None else np.zeros((0, 4, 2), np.float32)
    return quality.check(image, quads, target=app)


def cmd_ocr(args) -> int:
    import json
    import os
    import time

    from .ocr import Reader, imageio
    from .ocr.fusion import read_frames

    if args.frames and args.image:
        raise XnnError("give either IMAGE or --frames DIR, not both")
    src = args.frames or args.image
    if not src:
        raise XnnError("no input: give an image, a directory of images, or --frames DIR")
    if not os.path.exists(src):
        raise XnnError(f"{src}: no such file or directory")
    image = None
    if not args.frames and not os.path.isdir(src):
        image = imageio.load_image(src)          # a bad file fails before any model loads
    t_load = time.perf_counter()
    fields = [f.strip() for f in args.fields.split(",") if f.strip()] if args.fields is not None else None
    reader = Reader(args.app, num_threads=args.threads, meter_digits=args.digits, min_confidence=args.min_conf,
                    fields=fields, **({} if args.beam is None else {"beam": args.beam}))
    reader.warmup()
    t_load = time.perf_counter() - t_load
    if not args.json:
        print(f"xnn ocr: {args.app} models loaded in {t_load:.2f} s ({reader.model_bytes / 1024:.0f} KB)", file=sys.stderr)
    if args.frames:
        files = imageio.list_images(src)
        if not files:
            raise XnnError(f"{src}: no image files")
        frames = (imageio.load_image(f) for f in files)
        res, used, _ = read_frames(reader, frames, max_frames=args.max_frames, min_votes=args.min_votes)
        if args.json:
            d = res.to_dict()
            d.update(frames_used=used, frames_available=len(files))
            print(json.dumps(d, ensure_ascii=False))
        else:
            print(_ocr_text(src, res, None, reader))
            print(f"  fused {used} of {len(files)} frames" + (" (stable)" if res.ok else ""))
        return 0 if _found_something(res) else 1
    if os.path.isdir(src):
        return _ocr_batch(reader, src, args)
    res = reader.read(image)
    q = _quality(image, res, args.app) if not args.no_quality else None
    res.quality = q
    if args.draw:
        imageio.draw(image, res, args.draw)
    if args.json:
        print(json.dumps(res.to_dict(), ensure_ascii=False))
    else:
        print(_ocr_text(src, res, q, reader))
    if not _found_something(res):
        print(f"xnn: {src}: no {'text' if args.app == 'text' else args.app + ' fields'} found", file=sys.stderr)
        return 1
    return 0


def _ocr_batch(reader, folder, args) -> int:
    import json
    import os
    import time

    from .ocr import imageio

    files = imageio.list_images(folder)
    if not files:
        raise XnnError(f"{folder}: no image files ({', '.join(imageio.IMAGE_EXTS)})")
    if args.draw:
        os.makedirs(args.draw, exist_ok=True)
    bad, empty, ok_n = [], [], 0
    t0 = time.perf_counter()
    tty = sys.stderr.isatty()
    for k, path in enumerate(files, 1):
        try:
            image = imageio.load_image(path)
            res = reader.read(image)
        except XnnError as e:
            bad.append((path, str(e)))
            print(f"xnn: skipped {e}", file=sys.stderr)
            continue
        if args.draw:
            imageio.draw(image, res, os.path.join(args.draw, os.path.splitext(os.path.basename(path))[0] + ".png"))
        if args.json:
            d = res.to_dict()
            d["file"] = path
            print(json.dumps(d, ensure_ascii=False))
        else:
            print(_ocr_text(path, res, None, reader))
        if _found_something(res):
            ok_n += 1 if res.ok or res.app == "text" else 0
        else:
            empty.append(path)
        el = time.perf_counter() - t0
        bar = "#" * int(30 * k / len(files))
        msg = f"[{bar:<30s}] {k}/{len(files)}  {k / el:.1f} img/s"
        print(("\r" + msg) if tty else msg, end="" if tty and k < len(files) else "\n", file=sys.stderr,
              flush=True)
    el = time.perf_counter() - t0
    print(f"xnn ocr: {len(files)} files in {el:.1f} s ({len(files) / el:.1f} img/s): {ok_n} complete, "
          f"{len(files) - len(bad) - len(empty) - ok_n} partial, {len(empty)} without text, {len(bad)} unreadable",
          file=sys.stderr)
    return 0 if not bad and not empty else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xnn", description="xnn: on-device OCR runtime (TFLite models on Numba kernels).")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    pc = sub.add_parser("convert", help="convert a .tflite model to a compact, memory-mappable .xnn")
    pc.add_argument("model", help="a .tflite (or .xnn) file")
    pc.add_argument("--output", "-o", help="the .xnn file to write (default: the input's name with .xnn)")
    pc.add_argument("--report", action="store_true",
                    help="print per-layer weight bytes before/after, total sizes and the ratio (and, when "
                         "compressing, the output error against the uncompressed model)")
    cg = pc.add_argument_group("compression (each optional; applied in the order low-rank, prune, "
                               "weight bits, coarse parameters, entropy)")
    cg.add_argument("--prune", type=float, metavar="S",
                    help="zero the fraction S of each conv/depthwise/FC/LSTM weight tensor (smallest magnitudes)")
    cg.add_argument("--prune-min-size", type=int, default=0, metavar="N",
                    help="with --prune: leave weight tensors of fewer than N elements unpruned")
    cg.add_argument("--prune-channels", action="store_true",
                    help="with --prune: zero whole output channels (smallest L2 norm) instead of single weights")
    cg.add_argument("--weight-bits", type=int, metavar="B", choices=range(1, 9),
                    help="store weights as B-bit codes (2..7 typical) expanded to their dtype at load")
    cg.add_argument("--weight-bits-min-size", type=int, default=0, metavar="N",
                    help="with --weight-bits: weight tensors of fewer than N elements keep their exact values")
    cg.add_argument("--weight-bits-for", action="append", metavar="REGEX=B",
                    help="B-bit codes (1..8; 0 or 'exact': exact values) for the weight tensors whose name "
                         "matches REGEX (re.search), overriding --weight-bits and --weight-bits-min-size; "
                         "repeatable, the last matching one wins (names: `xnn info` or the --report table)")
    cg.add_argument("--weight-bits-fit", action="store_true",
                    help="give each weight tensor the fewest bits (<= 7) whose codes reproduce it (within one "
                         "int8 step for --weight-codec uniform): for models trained on such grids "
                         "(python -m models.train ... --qat-bits B); --weight-bits and --weight-bits-for "
                         "still apply where they give fewer bits")
    cg.add_argument("--weight-codec", choices=("kmeans", "uniform"), default="kmeans",
                    help="--weight-bits codes: k-means codebooks (default) or uniform levels per channel")
    cg.add_argument("--weight-rounding", choices=("nearest", "gptq"), default="nearest",
                    help="how --weight-bits codes are chosen: each weight's nearest level (default), or gptq: "
                         "the levels that keep each layer's output on the --calib data closest to the "
                         "uncompressed layer's (second-order error feedback; post-training, much better "
                         "than nearest at 3-4 bits; more --calib-limit samples help, e.g. 64)")
    cg.add_argument("--codebook", choices=("auto", "channel", "tensor"), default="auto",
                    help="k-means codebooks per output channel, per tensor, or auto (per channel unless "
                         "that costs more than 1 bit per weight)")
    cg.add_argument("--low-rank", type=float, metavar="R",
                    help="SVD-factor FC and LSTM weights: rank R (integer >= 1) or kept energy fraction (0 < R < 1)")
    cg.add_argument("--coarse-params", action="store_true",
                    help="lossy: keep 8 significant bits (bfloat16) of the int8 weight scales, the float "
                         "--weight-codec uniform parameters and the conv/FC/LSTM biases (int8 biases re-quantized "
                         "to the rounded scales): a few KB less where a model has many small channels; "
                         "check the result with --report --calib DIR")
    cg.add_argument("--entropy", nargs="?", const="zlib", choices=("zlib", "lzma", "ans"),
                    help="entropy-code each stored tensor and the header (zlib by default); such tensors are "
                         "decoded at load instead of memory-mapped. ans: lzma, and the --weight-bits codes "
                         "with a range-ANS coder fitted to each tensor's code frequencies (~10%% smaller "
                         "than lzma at 3 bits; .xnn format 6)")
    cg.add_argument("--quantize", choices=("int8",),
                    help="post-training full-integer int8 quantization of a float model, calibrated on "
                         "--calib DIR (per-channel weights, integer LSTM)")
    cg.add_argument("--int8-io", action="store_true",
                    help="with --quantize: int8 model inputs/outputs instead of float ones behind "
                         "QUANTIZE/DEQUANTIZE")
    cg.add_argument("--tflite-out", metavar="OUT.tflite",
                    help="with --quantize: also write the int8 model as a standard .tflite")
    cg.add_argument("--bias-correction", action="store_true",
                    help="after rounding/pruning, each layer's float bias absorbs the shift its lossy weights "
                         "make on average on the --calib data: b += (W - Q)·E[x] (fixes the systematic "
                         "error of coarse grids; needs --calib)")
    cg.add_argument("--verbose-calib", action="store_true", help="print progress per calibration sample")
    cg.add_argument("--calib", metavar="DIR",
                    help="calibration data for --quantize and --weight-rounding gptq, and for --report the "
                         "data to measure the error on: .npy/.npz files (or images, for an image input)")
    cg.add_argument("--calib-limit", type=int, default=16, metavar="N", help="use at most N calibration samples")
    cg.add_argument("--seed", type=int, default=0, help="seed for k-means and for random report inputs")
    pc.set_defaults(fn=cmd_convert)
    pi = sub.add_parser("info", help="print a model's op table (op, shapes, dtypes, params, MACs) and totals")
    pi.add_argument("model", help="a .tflite or .xnn file")
    pi.set_defaults(fn=cmd_info)
    pr = sub.add_parser("run", help="run a model on .npy inputs (or random ones) and print/save the outputs")
    pr.add_argument("model", help="a .tflite or .xnn file")
    pr.add_argument("--input", "-i", action="append", help=".npy file for each model input, in order (repeat)")
    pr.add_argument("--output", "-o", help="save outputs to this .npz file")
    pr.add_argument("--seed", type=int, default=0, help="seed for the random input when no --input is given")
    pr.set_defaults(fn=cmd_run)
    po = sub.add_parser("ocr", help="read text from an image (or every image of a directory) with the shipped models",
                        description="Detect text lines, recognize them and, with --app, return validated fields "
                                    "(card: number, expiry, holder name; meter: reading; plate; vin; idcard: ID "
                                    "number and what it encodes, name, address). Exit status: 0 = read, 1 = nothing found or some files "
                                    "unreadable, 2 = usage error.")
    po.add_argument("image", nargs="?", help="an image file (PNG, JPEG, ...) or a directory of images (batch mode)")
    po.add_argument("--app", default="text", choices=("card", "meter", "plate", "vin", "idcard", "text"),
                    help="what to read (default: text = every line with the best-fitting recognizer)")
    po.add_argument("--json", action="store_true", help="print JSON (one object per image) instead of text")
    po.add_argument("--draw", metavar="OUT", help="save the image with quads and text drawn on it (batch mode: a directory)")
    po.add_argument("--frames", metavar="DIR",
                    help="fuse the frames in DIR (sorted by name) into one reading; stops once every field is stable")
    po.add_argument("--max-frames", type=int, default=30, help="with --frames: read at most this many frames")
    po.add_argument("--min-votes", type=int, default=2, help="with --frames: votes that make a field stable")
    po.add_argument("--min-conf", type=float, default=0.01,
                    help="report a field only when every character's posterior is at least this (default 0.01)")
    po.add_argument("--beam", type=int, default=None,
                    help="hypotheses per frame of the rule-constrained CTC search (default: the Reader's, 32; 8x wider "
                         "when nothing valid is found)")
    po.add_argument("--threads", type=int, default=1, help="runtime threads (default 1)")
    po.add_argument("--digits", type=int, metavar="N", help="--app meter: the register has exactly N digit wheels "
                                                         "(default: any of 5-8)")
    po.add_argument("--fields", metavar="F[,F...]",
                    help="read only these fields of the app (e.g. --app card --fields number: about twice as "
                         "fast as number + expiry + name)")
    po.add_argument("--no-quality", action="store_true", help="skip the capture-quality hints")
    po.set_defaults(fn=cmd_ocr)
    return p


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if not getattr(args, "fn", None):
        p.print_help()
        return 2
    try:
        return args.fn(args)
    except XnnError as e:
        print(f"xnn: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
