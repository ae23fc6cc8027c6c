#!/usr/bin/env python3
"""Kiln benchmark: train-step and predict time of a compiled library vs Keras.

    KERAS_BACKEND=jax /opt/kerasvenv/bin/python tools/bench.py [--kiln PATH] [--steps N] [--out DIR]

For each model (a small CNN and an MLP, see tools/bench_models.py) it
  1. builds the model with Keras and saves it as OUT/NAME.keras, or, when Keras
     is not importable, takes the committed bench/models/NAME.keras;
  2. runs `kiln compile NAME.keras -o OUT/NAME`, loads OUT/NAME/libNAME.so with
     ctypes and calls NAME_create, NAME_train_step and NAME_predict directly
     (their prototypes are checked against the generated NAME.h first);
  3. times, with time.perf_counter, warm-up calls and then --repeats runs of
     --steps calls each; the figure reported is the median over the runs of
     the mean time per call. Keras is timed the same way with
     model.train_on_batch(x, y) and model.predict_on_batch(x) (JIT compilation
     falls in the warm-up, so it is excluded).
Batch 32 for training; batch 1 and 32 for predict (reported per sample).
Both sides start from the same weights; the first train step's loss of each
is printed as a check that they train the same model.

This is a benchmark, not a test: it exits 0 unless something fails to run.
Results also go to OUT/results.json and OUT/results.md.
"""
import argparse
import ctypes
import datetime
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import bench_models  # noqa: E402  (imports Keras only when building)

BATCH = 32
KILN_CANDIDATES = [".build-bench/release/kiln", ".build/release/kiln", ".build/debug/kiln"]


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kiln", help="the kiln binary (default: first of %s, then kiln on PATH)"
                    % ", ".join(KILN_CANDIDATES))
    ap.add_argument("--steps", type=int, default=50, help="calls per timed run (default 50)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported (default 5)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed calls first (default 10)")
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "bench"),
                    help="working and results folder (default out/bench)")
    ap.add_argument("--models", default=",".join(bench_models.MODELS),
                    help="comma-separated subset of %s" % ",".join(bench_models.MODELS))
    ap.add_argument("--no-keras", action="store_true",
                    help="skip Keras even if importable (uses bench/models/*.keras)")
    ap.add_argument("--threads", type=int,
                    help="cap OpenBLAS and XLA at this many threads (default: theirs, all cores)")
    args = ap.parse_args()
    if args.steps < 1 or args.repeats < 1 or args.warmup < 0:
        ap.error("--steps and --repeats must be at least 1, --warmup at least 0")
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in args.models:
        if m not in bench_models.MODELS:
            ap.error(f"unknown model {m!r}; known: {', '.join(bench_models.MODELS)}")
    return args


def die(msg, code=1):
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(code)


# ---------------------------------------------------------------- timing

def median_time(fn, steps, repeats, warmup):
    """Median over `repeats` runs of the mean seconds per fn(i) call, i = call number."""
    i = 0
    for _ in range(warmup):
        fn(i)
        i += 1
    per_call = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn(i)
            i += 1
        per_call.append((time.perf_counter() - t0) / steps)
    return statistics.median(per_call)


# ---------------------------------------------------------------- data

NBATCHES = 4  # distinct batches, cycled through


class Data:
    """Seeded random inputs in [0, 1) and one-hot targets, as ctypes float arrays
    (so the Kiln side needs no numpy); batches of BATCH rows."""

    def __init__(self, in_shape, classes, seed):
        rng = random.Random(seed)
        self.in_shape = in_shape
        self.classes = classes
        self.row = 1
        for d in in_shape:
            self.row *= d
        self.x = []
        self.y = []
        for _ in range(NBATCHES):
            x = (ctypes.c_float * (BATCH * self.row))(*[rng.random() for _ in range(BATCH * self.row)])
            y = (ctypes.c_float * (BATCH * classes))()
            for r in range(BATCH):
                y[r * classes + rng.randrange(classes)] = 1.0
            self.x.append(x)
            self.y.append(y)

    def np_x(self, b, rows=BATCH):
        import numpy as np
        return np.ctypeslib.as_array(self.x[b]).reshape((BATCH,) + self.in_shape)[:rows]

    def np_y(self, b):
        import numpy as np
        return np.ctypeslib.as_array(self.y[b]).reshape((BATCH, self.classes))


# ---------------------------------------------------------------- kiln side

def find_kiln(arg):
    if arg:
        path = arg if os.path.isabs(arg) or os.sep in arg else (shutil.which(arg) or arg)
        if not os.path.isfile(path):
            die(f"no kiln binary at {arg}", 2)
        return os.path.abspath(path)
    for c in KILN_CANDIDATES:
        p = os.path.join(ROOT, c)
        if os.path.isfile(p):
            return p
    p = shutil.which("kiln")
    if p:
        return p
    die("no kiln binary found; build one with "
        "`swift build --scratch-path .build-bench -c release --product kiln` "
        "and pass --kiln .build-bench/release/kiln", 2)


def kiln_compile(kiln, model_path, outdir):
    if os.path.isdir(outdir):
        shutil.rmtree(outdir)
    t0 = time.perf_counter()
    r = subprocess.run([kiln, "compile", model_path, "-o", outdir], capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        die(f"`kiln compile {model_path}` failed (exit {r.returncode}):\n{r.stderr.strip()}")
    headers = [f for f in os.listdir(outdir) if f.endswith(".h")]
    if len(headers) != 1:
        die(f"expected one header in {outdir}, found {headers}")
    name = headers[0][:-2]
    lib = os.path.join(outdir, f"lib{name}.so")
    if not os.path.isfile(lib):
        die(f"kiln compile wrote {headers[0]} but no lib{name}.so")
    return name, lib, os.path.join(outdir, headers[0]), dt


def check_prototype(header_text, name, fn, pattern):
    """Fails unless NAME_fn is declared in the header with the expected parameters."""
    decl = re.search(r"^\s*([A-Za-z_][\w ]*\**\s*\b%s_%s\s*\([^)]*\))\s*;" % (re.escape(name), fn), header_text, re.M)
    if not decl:
        die(f"{name}.h declares no {name}_{fn}")
    proto = " ".join(decl.group(1).split())
    if not re.fullmatch(pattern.replace("NAME", re.escape(name)), proto):
        die(f"{name}.h: unexpected prototype `{proto}` (bench.py handles one float input and one float output)")
    return proto


class KilnModel:
    def __init__(self, name, lib_path, header_path):
        text = open(header_path).read()
        check_prototype(text, name, "create", r"NAME_model \*NAME_create\(void\)")
        check_prototype(text, name, "predict",
                        r"int NAME_predict\(NAME_model \*m, const float \*\w+, float \*\w+, int64_t n\)")
        check_prototype(text, name, "train_step",
                        r"int NAME_train_step\(NAME_model \*m, const float \*\w+, const float \*\w+, "
                        r"int64_t n, float \*loss\)")
        lib = ctypes.CDLL(lib_path)
        self.lib = lib

        def fn(sym, res, argtypes):
            f = getattr(lib, f"{name}_{sym}")
            f.restype = res
            f.argtypes = argtypes
            return f

        vp, fp, i64 = ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_int64
        self._create = fn("create", vp, [])
        self._destroy = fn("destroy", None, [vp])
        self._last_error = fn("last_error", ctypes.c_char_p, [vp])
        self.predict_fn = fn("predict", ctypes.c_int, [vp, fp, fp, i64])
        self.train_fn = fn("train_step", ctypes.c_int, [vp, fp, fp, i64, fp])
        self.reserve_fn = fn("reserve", ctypes.c_int, [vp, i64]) if hasattr(lib, f"{name}_reserve") else None
        self.m = self._create()
        if not self.m:
            die(f"{name}_create failed: {self._last_error(None).decode(errors='replace')}")
        if self.reserve_fn:
            self.check(self.reserve_fn(self.m, BATCH), "reserve")

    def check(self, rc, what):
        if rc != 0:
            die(f"{what} failed: {self._last_error(self.m).decode(errors='replace')}")

    def close(self):
        if self.m:
            self._destroy(self.m)
            self.m = None


def bench_kiln(km, data, args):
    fp = ctypes.POINTER(ctypes.c_float)
    xs = [ctypes.cast(x, fp) for x in data.x]
    ys = [ctypes.cast(y, fp) for y in data.y]
    out = (ctypes.c_float * (BATCH * data.classes))()
    outp = ctypes.cast(out, fp)
    loss = ctypes.c_float()
    lossp = ctypes.pointer(loss)
    m, train, predict = km.m, km.train_fn, km.predict_fn

    km.check(train(m, xs[0], ys[0], BATCH, lossp), "train_step")
    first_loss = loss.value

    def train_step(i):
        if train(m, xs[i % NBATCHES], ys[i % NBATCHES], BATCH, lossp) != 0:
            km.check(-1, "train_step")

    def predict_n(n):
        def call(i):
            if predict(m, xs[i % NBATCHES], outp, n) != 0:
                km.check(-1, "predict")
        return call

    res = {"first_loss": first_loss}
    res["train_ms"] = 1e3 * median_time(train_step, args.steps, args.repeats, args.warmup)
    res["predict_us_b1"] = 1e6 * median_time(predict_n(1), args.steps, args.repeats, args.warmup)
    res["predict_us_b32"] = 1e6 * median_time(predict_n(BATCH), args.steps, args.repeats, args.warmup) / BATCH
    return res


# ---------------------------------------------------------------- keras side

def import_keras():
    try:
        import keras
        import numpy  # noqa: F401
        return keras, None
    except Exception as e:  # ImportError, or a backend that fails to load
        return None, f"{type(e).__name__}: {e}"


def bench_keras(model, data, args):
    xs = [data.np_x(b) for b in range(NBATCHES)]
    x1 = [data.np_x(b, 1) for b in range(NBATCHES)]
    ys = [data.np_y(b) for b in range(NBATCHES)]

    def scalar(v):
        import numpy as np
        return float(np.asarray(v["loss"] if isinstance(v, dict) else v).reshape(-1)[0])

    first_loss = scalar(model.train_on_batch(xs[0], ys[0]))

    def train_step(i):
        model.train_on_batch(xs[i % NBATCHES], ys[i % NBATCHES])

    def predict_b1(i):
        model.predict_on_batch(x1[i % NBATCHES])

    def predict_b32(i):
        model.predict_on_batch(xs[i % NBATCHES])

    res = {"first_loss": first_loss}
    res["train_ms"] = 1e3 * median_time(train_step, args.steps, args.repeats, args.warmup)
    res["predict_us_b1"] = 1e6 * median_time(predict_b1, args.steps, args.repeats, args.warmup)
    res["predict_us_b32"] = 1e6 * median_time(predict_b32, args.steps, args.repeats, args.warmup) / BATCH
    return res


# ---------------------------------------------------------------- report

def versions(kiln, keras):
    v = {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
         "cores": os.cpu_count(), "python": platform.python_version()}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                v["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        v["kiln"] = (commit + ("+changes" if dirty else "")) or "unknown"
    except OSError:
        v["kiln"] = "unknown"
    v["kiln_binary"] = os.path.relpath(kiln, ROOT) if kiln.startswith(ROOT) else kiln
    if keras is not None:
        import numpy
        v["keras"] = keras.__version__
        v["backend"] = keras.backend.backend()
        v["numpy"] = numpy.__version__
        if v["backend"] == "jax":
            import jax
            v["jax"] = jax.__version__
    return v


def fmt(v, digits):
    return "—" if v is None else f"{v:.{digits}f}"


def table(rows, with_keras):
    head = ["model", "kiln train ms", "keras train ms", "ratio",
            "kiln µs/sample b1", "kiln µs/sample b32", "keras µs/sample b1", "keras µs/sample b32"]
    body = []
    for name, k, r in rows:
        ratio = k["train_ms"] / r["train_ms"] if r else None
        body.append([name, fmt(k["train_ms"], 3), fmt(r and r["train_ms"], 3), fmt(ratio, 2),
                     fmt(k["predict_us_b1"], 1), fmt(k["predict_us_b32"], 2),
                     fmt(r and r["predict_us_b1"], 1), fmt(r and r["predict_us_b32"], 2)])
    if not with_keras:
        keep = [0, 1, 4, 5]
        head = [head[i] for i in keep]
        body = [[b[i] for i in keep] for b in body]
    w = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    text = "  ".join(h.rjust(w[i]) if i else h.ljust(w[i]) for i, h in enumerate(head)) + "\n"
    for b in body:
        text += "  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(b)) + "\n"
    md = "| " + " | ".join(head) + " |\n|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|\n"
    for b in body:
        md += "| " + " | ".join(b) + " |\n"
    return text, md


def main():
    args = parse_args()
    if args.threads:
        n = str(args.threads)
        os.environ["OPENBLAS_NUM_THREADS"] = n
        os.environ["OMP_NUM_THREADS"] = n
        if args.threads == 1:
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                       " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    kiln = find_kiln(args.kiln)
    keras, why = (None, "--no-keras given") if args.no_keras else import_keras()
    os.makedirs(args.out, exist_ok=True)
    if keras is None:
        print(f"bench: Keras not importable ({why}); Keras columns skipped, "
              f"using the committed models in bench/models/", file=sys.stderr)

    ver = versions(kiln, keras)
    print(f"Kiln benchmark, {ver['date']}: {ver['cores']} cores ({ver.get('cpu', '?')}), "
          f"batch {BATCH}, {args.warmup} warm-up + {args.repeats} x {args.steps} calls, median")
    print(f"kiln {ver['kiln']} ({ver['kiln_binary']})"
          + (f", Keras {ver['keras']} ({ver['backend']}" + (f" {ver['jax']}" if "jax" in ver else "")
             + f"), numpy {ver['numpy']}" if keras else ", Keras: not run")
          + f", Python {ver['python']}")

    rows = []
    for name in args.models:
        in_shape, classes, desc = bench_models.MODELS[name]
        model_path = os.path.join(args.out, f"{name}.keras")
        kmodel = None
        if keras is not None:
            kmodel = bench_models.build(name)
            kmodel.save(model_path)
        else:
            src = os.path.join(ROOT, "bench", "models", f"{name}.keras")
            if not os.path.isfile(src):
                die(f"no {src}: generate it with tools/bench_models.py (needs Keras)")
            shutil.copyfile(src, model_path)
        lib_name, lib_path, header, ctime = kiln_compile(kiln, model_path, os.path.join(args.out, name))
        data = Data(in_shape, classes, seed=len(rows) + 7)
        km = KilnModel(lib_name, lib_path, header)
        try:
            k = bench_kiln(km, data, args)
        finally:
            km.close()
        k["compile_s"] = ctime
        r = bench_keras(kmodel, data, args) if kmodel is not None else None
        line = f"{name}: {desc}; kiln compile {ctime:.2f} s; first-step loss kiln {k['first_loss']:.5f}"
        if r:
            line += f", keras {r['first_loss']:.5f}"
        print(line, flush=True)
        rows.append((name, k, r))

    text, md = table(rows, keras is not None)
    print()
    print(text, end="")
    if keras is None:
        print("(Keras not importable: Keras columns skipped)")
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(f"{ver['date']}; kiln {ver['kiln']}"
                + (f"; Keras {ver['keras']} ({ver['backend']} {ver.get('jax', '')})" if keras else "; Keras not run")
                + f"; {ver['cores']} cores\n\n" + md)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"versions": ver, "steps": args.steps, "repeats": args.repeats, "warmup": args.warmup,
                   "batch": BATCH,
                   "results": {n: {"kiln": k, "keras": r} for n, k, r in rows}}, f, indent=2)


if __name__ == "__main__":
    main()
