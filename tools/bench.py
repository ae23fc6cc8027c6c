#!/usr/bin/env python3
"""Kiln benchmark: the five seed workloads W1-W5 beside their peers, and a small CNN and MLP beside Keras.

    KERAS_BACKEND=jax /opt/kerasvenv/bin/python tools/bench.py [--kiln PATH] [--budget S] [--out DIR]

Part 1, the seed workloads W1-W5 (defined in ../shared/bench/workloads.py):
runs ../shared/bench/compare.py, the project's reference measuring scripts,
by path (nothing of them is copied here). It times, one process per system
and workload, Kiln (the workload's Keras model compiled with `kiln compile`,
called through ctypes), Keras 3 train_on_batch / predict_on_batch, the same
Keras graph through jax.jit, a hand-written jax.jit model, ONNX Runtime (1 and
2 threads, inference only) and PyTorch CPU when installed. This script then
reads their JSON results and reports, per workload, Kiln's train-step and
inference medians, the best peer's and which peer, the ratio peer / Kiln
(above 1 = Kiln faster), Kiln's compile time, library size, and the peak RSS
of a fresh process that creates the model and takes a train step. Skipped,
with a message, when ../shared/bench or a Python with keras and jax is missing.

Part 2, the small CNN and MLP (tools/bench_models.py), in this process:
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

This is a benchmark, not a test: it exits 0 unless Kiln fails on a model or a
workload, or the reference scripts crash (a peer that fails or is not
installed is only reported). The tables are printed, written to
OUT/results.json and OUT/results.md, and (unless --no-readme) replace the
results section of bench/README.md.
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
WORKLOADS = ["W1", "W2", "W3", "W4", "W5"]
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
                    help="comma-separated subset of %s, or none (default: all)" % ",".join(bench_models.MODELS))
    ap.add_argument("--workloads", default="W1,W2,W3,W4,W5",
                    help="comma-separated subset of W1..W5, or none (default: all)")
    ap.add_argument("--budget", type=float, default=4.0,
                    help="W1-W5: seconds of timed calls per measurement, passed to compare.py (default 4, "
                         "as compare.py; at least 10 calls are timed whatever the budget)")
    ap.add_argument("--no-peers", action="store_true", help="W1-W5: time Kiln only")
    ap.add_argument("--shared", default=os.environ.get("KILN_SHARED_BENCH") or os.path.join(ROOT, "..", "shared", "bench"),
                    help="the reference scripts (default $KILN_SHARED_BENCH, else ../shared/bench)")
    ap.add_argument("--readme", default=os.path.join(ROOT, "bench", "README.md"),
                    help="README whose results section is replaced (default bench/README.md)")
    ap.add_argument("--no-readme", action="store_true", help="leave bench/README.md alone")
    ap.add_argument("--force-readme", action="store_true",
                    help="replace the README's results even after a failure or a partial run "
                         "(by default only a complete, successful run does)")
    ap.add_argument("--note", help="a sentence to put above the tables in the README, e.g. about the machine's load")
    ap.add_argument("--no-keras", action="store_true",
                    help="skip Keras even if importable: the small models from bench/models/*.keras, "
                         "Kiln only, and no W1-W5 (their models are built with Keras)")
    ap.add_argument("--threads", type=int,
                    help="cap OpenBLAS and XLA at this many threads (default: theirs, all cores)")
    args = ap.parse_args()
    if args.steps < 1 or args.repeats < 1 or args.warmup < 0:
        ap.error("--steps and --repeats must be at least 1, --warmup at least 0")
    args.models = [m.strip() for m in args.models.split(",") if m.strip() and m.strip() != "none"]
    args.workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip() and w.strip() != "none"]
    for w in args.workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w!r}; known: {', '.join(WORKLOADS)}")
    if args.budget <= 0:
        ap.error("--budget must be positive")
    args.shared = os.path.abspath(args.shared)
    for m in args.models:
        if m not in bench_models.MODELS:
            ap.error(f"unknown model {m!r}; known: {', '.join(bench_models.MODELS)}")
    return args


def die(msg, code=1):
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(code)


class BenchError(Exception):
    """One model or workload failed; the others still run, and bench.py exits 1 at the end."""


def fail(msg):
    raise BenchError(msg)


def gist(msg, width=300):
    """The first line of an error message, and its first `error:` line if that comes later."""
    lines = [ln.strip() for ln in str(msg).splitlines() if ln.strip()] or ["?"]
    errs = [ln for ln in lines[1:] if "error:" in ln]
    return (lines[0] + (" " + errs[0] if errs else ""))[:width]


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
        fail(f"`kiln compile {model_path}` failed (exit {r.returncode}):\n{r.stderr.strip()}")
    headers = [f for f in os.listdir(outdir) if f.endswith(".h")]
    if len(headers) != 1:
        fail(f"expected one header in {outdir}, found {headers}")
    name = headers[0][:-2]
    lib = os.path.join(outdir, f"lib{name}.so")
    if not os.path.isfile(lib):
        fail(f"kiln compile wrote {headers[0]} but no lib{name}.so")
    return name, lib, os.path.join(outdir, headers[0]), dt


def check_prototype(header_text, name, fn, pattern):
    """Fails unless NAME_fn is declared in the header with the expected parameters."""
    decl = re.search(r"^\s*([A-Za-z_][\w ]*\**\s*\b%s_%s\s*\([^)]*\))\s*;" % (re.escape(name), fn), header_text, re.M)
    if not decl:
        fail(f"{name}.h declares no {name}_{fn}")
    proto = " ".join(decl.group(1).split())
    if not re.fullmatch(pattern.replace("NAME", re.escape(name)), proto):
        fail(f"{name}.h: unexpected prototype `{proto}` (bench.py handles one float input and one float output)")
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
            fail(f"{name}_create failed: {self._last_error(None).decode(errors='replace')}")
        if self.reserve_fn:
            self.check(self.reserve_fn(self.m, BATCH), "reserve")

    def check(self, rc, what):
        if rc != 0:
            fail(f"{what} failed: {self._last_error(self.m).decode(errors='replace')}")

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


# ---------------------------------------------------------------- the seed workloads W1-W5

SHARED_FILES = ["compare.py", "kiln_bench.py", "keras_bench.py", "jax_bench.py", "ort_bench.py",
                "torch_bench.py", "common.py", "workloads.py", "quiet.py"]
# (system, key in its JSON result, label): what compare.py compares, in its order
TRAIN_PEERS = [("keras", "train_on_batch", "keras"), ("keras", "keras_jit_train", "keras-jit"),
               ("jax", "train_step", "jax"), ("torch", "train_step", "torch")]
INFER_PEERS = [("keras", "predict_on_batch", "keras"), ("keras", "keras_jit_fwd", "keras-jit"),
               ("jax", "inference", "jax"), ("ort", "inference_t1", "ort-1t"), ("ort", "inference_t2", "ort-2t"),
               ("torch", "inference", "torch")]
PEER_MODULES = {"keras": ["keras", "jax"], "jax": ["jax"], "ort": ["onnx", "onnxruntime"], "torch": ["torch"]}


def has_module(name):
    import importlib.util
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def workloads_unavailable(args, keras):
    """Why W1-W5 cannot run here, or None."""
    if not args.workloads:
        return "--workloads none given"
    if args.no_keras:
        return "--no-keras given (Kiln's side needs Keras too: it builds and saves each workload's model)"
    if not os.path.isdir(args.shared):
        return f"the reference scripts are not there: no folder {args.shared}"
    missing = [f for f in SHARED_FILES if not os.path.isfile(os.path.join(args.shared, f))]
    if missing:
        return f"{args.shared} lacks {', '.join(missing)}"
    if keras is None:
        return f"this Python ({sys.executable}) cannot import Keras"
    if keras.backend.backend() != "jax" or not has_module("jax"):
        return (f"this Python ({sys.executable}) has Keras on the {keras.backend.backend()!r} backend; "
                "the reference scripts need KERAS_BACKEND=jax and jax installed")
    return None


def median_of(d, key):
    v = d.get(key) if d else None
    return v.get("median_ms") if isinstance(v, dict) else None


def fresh_process(args, kiln, bench_dir, env, wl):
    """kiln_bench.py's own fresh-process child (load libwN.so, create, one predict, one train step; it
    prints its JSON with rss_mib = ru_maxrss), started again from a clean process.

    Why again: Linux carries ru_maxrss across fork and exec (the new program starts with the high-water
    mark of the memory it replaced), so when kiln_bench.py, with Keras and JAX loaded, starts the child
    itself, the child's figure is at least kiln_bench.py's own RSS. Here the child is started by a shell
    that forks it (`"$@"; exit $?` keeps sh from exec'ing it in place), so its figure is its own."""
    cmd = ["/bin/sh", "-c", '"$@"; exit $?', "sh", sys.executable, os.path.join(args.shared, "kiln_bench.py"),
           wl, "--kiln", kiln, "--child", "--work", os.path.join(bench_dir, "artifacts", "kiln")]
    try:
        r = subprocess.run(cmd, cwd=args.shared, env=env, capture_output=True, text=True, timeout=600)
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as e:
        return {"error": f"{type(e).__name__}: {e}"}


def run_workloads(args, kiln):
    """Runs ../shared/bench/compare.py (by path) and collects its results, one dict per workload."""
    bench_dir = os.path.join(args.out, "workloads")
    tag = time.strftime("bench%Y%m%d-%H%M%S")
    env = dict(os.environ, KILN_BENCH_DIR=bench_dir, KERAS_BACKEND="jax", PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, os.path.join(args.shared, "compare.py"), "--kiln", kiln,
           "--budget", f"{args.budget:g}", "--tag", tag] + (["--no-peers"] if args.no_peers else []) + args.workloads
    print(f"W1-W5: {' '.join(cmd)}\n  (KILN_BENCH_DIR={bench_dir}; logs in its logs/, results in its results/)",
          flush=True)
    if not args.no_peers:
        absent = [s for s, mods in PEER_MODULES.items() if not all(has_module(m) for m in mods)]
        if absent:
            print(f"  not installed here, so skipped: {', '.join(absent)}", flush=True)
    logs = os.path.join(bench_dir, "logs")
    t0 = time.perf_counter()
    import threading
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=args.shared)
    captured = []

    def pump():
        for line in proc.stdout:
            captured.append(line)
            print("  compare.py: " + line, end="", flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    seen, started = set(), {}
    while proc.poll() is None:          # progress: one line per process compare.py starts
        try:
            new = sorted(f for f in os.listdir(logs) if f.endswith(f"_{tag}.log") and f not in seen)
        except OSError:
            new = []
        for f in new:
            seen.add(f)
            started[f] = time.time()
            system, wl = f.split("_")[:2]
            print(f"  [{time.perf_counter() - t0:5.0f} s] {wl} {system}", flush=True)
        time.sleep(1.0)
    reader.join()
    elapsed = time.perf_counter() - t0
    rc = proc.returncode
    # how long each measuring process ran: from its log's creation (seen within 1 s) to its last write
    busy = {}
    for f, t in started.items():
        try:
            busy[f[:-len(f"_{tag}.log")]] = max(0.0, os.path.getmtime(os.path.join(logs, f)) - t)
        except OSError:
            pass

    results = os.path.join(bench_dir, "results")

    def load(system, wl):
        path = os.path.join(results, f"{system}_{wl}_{tag}.json")
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    try:
        with open(os.path.join(results, f"compare_{tag}.json")) as f:
            rows = {r["workload"]: r for r in json.load(f)}
    except (OSError, ValueError, KeyError):
        rows = {}
    try:
        sys.path.insert(0, args.shared)
        import workloads as shared_workloads  # noqa: E402  (numpy only)
        names = shared_workloads.NAMES
    except Exception:
        names = {}
    finally:
        sys.path.remove(args.shared)

    out = []
    for wl in args.workloads:
        k = load("kiln", wl) or {}
        per = {s: load(s, wl) for s in PEER_MODULES}
        row = rows.get(wl, {})
        ref_fresh = k.get("fresh_process") or {}
        fresh = fresh_process(args, kiln, bench_dir, env, wl) if k.get("so_bytes") else {}
        kt, ki = median_of(k, "train"), median_of(k, "predict")
        rec = {
            "workload": wl, "name": names.get(wl, ""), "batch": k.get("batch") or (per["keras"] or {}).get("batch"),
            "kiln_train_ms": kt, "kiln_infer_ms": ki,
            "best_train": row.get("best_train"), "best_infer": row.get("best_infer"),
            "train_ratio": row.get("train_speedup"), "infer_ratio": row.get("infer_speedup"),
            "compile_s": k.get("compile_s"),
            "lib_mib": k["so_bytes"] / 2**20 if k.get("so_bytes") else None,
            "rss_mib": fresh.get("rss_mib"), "rss_before_load_mib": fresh.get("rss_before_load_mib"),
            "fresh_first_train_s": fresh.get("first_train_s"), "fresh_rc": fresh.get("rc"),
            "kiln_bench_fresh_process": ref_fresh,   # as kiln_bench.py recorded it (RSS includes its own)
            "predict_err_vs_keras": k.get("predict_max_abs_err_vs_keras"),
            "loss0_kiln": k.get("loss0_kiln"), "loss0_keras": k.get("loss0_keras"),
            "kiln_foreign_cores": (k.get("train") or {}).get("foreign_cores"),
            "train_peers": {lab: median_of(per[s], key) for s, key, lab in TRAIN_PEERS},
            "infer_peers": {lab: median_of(per[s], key) for s, key, lab in INFER_PEERS},
            "peer_foreign_cores": max([v["foreign_cores"] for d in per.values() if d
                                       for v in d.values() if isinstance(v, dict) and "foreign_cores" in v]
                                      or [None], key=lambda x: -1 if x is None else x),
            "error": None, "peer_missing": [],
        }
        if not k:
            rec["error"] = f"no Kiln result (see {os.path.join(logs, f'kiln_{wl}_{tag}.log')})"
        elif k.get("error"):
            rec["error"] = k["error"]
        elif kt is None or ki is None:
            rec["error"] = f"Kiln was not timed (see {os.path.join(logs, f'kiln_{wl}_{tag}.log')})"
        elif fresh.get("error") or fresh.get("rc") not in (None, [0, 0]):
            rec["error"] = f"the fresh process failed: {fresh.get('error') or 'return codes ' + str(fresh['rc'])}"
        if not args.no_peers:
            rec["peer_missing"] = [s for s, d in per.items() if d is None]
        out.append(rec)
    return {"tag": tag, "dir": bench_dir, "budget": args.budget, "peers": not args.no_peers,
            "rc": rc, "seconds": elapsed, "process_seconds": busy, "rows": out, "tail": "".join(captured[-20:])}


# ---------------------------------------------------------------- report

def run_text(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def pkg_version(name):
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment(kiln, keras):
    v = {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
         "python": platform.python_version(), "python_executable": sys.executable,
         "kernel": platform.release()}
    for line in run_text(["lscpu"]).splitlines():
        key, _, val = line.partition(":")
        key, val = key.strip(), val.strip()
        if key == "Model name" and "cpu" not in v:
            v["cpu"] = val
        elif key == "CPU(s)" and val.isdigit():
            v["cores"] = int(val)
        elif key == "Thread(s) per core":
            v["threads_per_core"] = val
    if "cpu" not in v:
        try:
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    v["cpu"] = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
    v.setdefault("cores", os.cpu_count())
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                v["memory_gib"] = round(int(line.split()[1]) / 2**20)
    except OSError:
        pass
    try:
        v["loadavg_start"] = open("/proc/loadavg").read().split()[:3]
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
    v["kiln_binary_built"] = datetime.datetime.fromtimestamp(
        os.path.getmtime(kiln), datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if os.environ.get("KILN_RUNTIME_DIR"):
        v["kiln_runtime_dir"] = os.environ["KILN_RUNTIME_DIR"]
    for p in ("numpy", "keras", "jax", "jaxlib", "onnx", "onnxruntime", "torch"):
        ver = pkg_version(p)
        if ver:
            v[p] = ver
    if keras is not None:
        v["backend"] = keras.backend.backend()
    blas = run_text(["dpkg-query", "-W", "-f", "${Package} ${Version}\n", "libopenblas0*"]).split("\n")
    blas = [b.strip() for b in blas if len(b.split()) == 2]
    if blas:
        v["openblas"] = blas[0]
    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "XLA_FLAGS"):
        if os.environ.get(k):
            v[k] = os.environ[k]
    return v


def fmt(v, digits):
    return "—" if v is None else f"{v:.{digits}f}"


def render(head, body, right=None):
    """(plain text, markdown) of one table; columns after the first are right-aligned."""
    w = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    text = "  ".join(h.rjust(w[i]) if i else h.ljust(w[i]) for i, h in enumerate(head)) + "\n"
    for b in body:
        text += "  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(b)) + "\n"
    md = "| " + " | ".join(head) + " |\n|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|\n"
    for b in body:
        md += "| " + " | ".join(b) + " |\n"
    return text, md


def small_table(rows, with_keras):
    head = ["model", "kiln train ms", "keras train ms", "keras/kiln",
            "kiln µs/sample b1", "kiln µs/sample b32", "keras µs/sample b1", "keras µs/sample b32", "compile s"]
    body = []
    for name, k, r in rows:
        ratio = r["train_ms"] / k["train_ms"] if r else None
        body.append([name, fmt(k["train_ms"], 3), fmt(r and r["train_ms"], 3), fmt(ratio, 2),
                     fmt(k["predict_us_b1"], 1), fmt(k["predict_us_b32"], 2),
                     fmt(r and r["predict_us_b1"], 1), fmt(r and r["predict_us_b32"], 2), fmt(k["compile_s"], 1)])
    if not with_keras:
        keep = [0, 1, 4, 5, 8]
        head = [head[i] for i in keep]
        body = [[b[i] for i in keep] for b in body]
    return render(head, body)


def best_cell(best):
    if not best or best[1] is None:
        return "—"
    return f"{best[1]:.3f} ({best[0]})"


def ratio_cell(r):
    return "—" if r is None else f"{r:.2f}"


def workload_tables(wk):
    """The main table, the all-peers tables and the checks table, each (text, md)."""
    rows = wk["rows"]
    peers = wk["peers"]
    head = ["workload", "batch", "kiln train ms", "best peer train ms", "ratio",
            "kiln infer ms", "best peer infer ms", "ratio", "compile s", "lib MiB", "peak RSS MiB"]
    body = []
    for r in rows:
        failed = r["error"] is not None
        kt = "failed" if failed and r["kiln_train_ms"] is None else fmt(r["kiln_train_ms"], 3)
        ki = "failed" if failed and r["kiln_infer_ms"] is None else fmt(r["kiln_infer_ms"], 3)
        body.append([f"{r['workload']} {r['name']}".strip(), str(r["batch"] or "—"), kt, best_cell(r["best_train"]),
                     ratio_cell(r["train_ratio"]), ki, best_cell(r["best_infer"]), ratio_cell(r["infer_ratio"]),
                     fmt(r["compile_s"], 1), fmt(r["lib_mib"], 2), fmt(r["rss_mib"], 0)])
    if not peers:
        keep = [0, 1, 2, 5, 8, 9, 10]
        head = [head[i] for i in keep]
        body = [[b[i] for i in keep] for b in body]
    tables = {"main": render(head, body)}
    if peers:
        th = ["workload", "kiln"] + [lab for _, _, lab in TRAIN_PEERS]
        tables["train"] = render(th, [[r["workload"], fmt(r["kiln_train_ms"], 3)] +
                                      [fmt(r["train_peers"][lab], 3) for _, _, lab in TRAIN_PEERS] for r in rows])
        ih = ["workload", "kiln"] + [lab for _, _, lab in INFER_PEERS]
        tables["infer"] = render(ih, [[r["workload"], fmt(r["kiln_infer_ms"], 3)] +
                                      [fmt(r["infer_peers"][lab], 3) for _, _, lab in INFER_PEERS] for r in rows])
    ch = ["workload", "predict: max abs diff kiln vs keras", "first loss kiln", "first loss keras",
          "RSS before loading the library MiB", "first train step s (fresh)", "others' load, cores"]
    tables["checks"] = render(ch, [[r["workload"],
                                    "—" if r["predict_err_vs_keras"] is None else f"{r['predict_err_vs_keras']:.1e}",
                                    fmt(r["loss0_kiln"], 5), fmt(r["loss0_keras"], 5),
                                    fmt(r["rss_before_load_mib"], 0), fmt(r["fresh_first_train_s"], 3),
                                    fmt(r["kiln_foreign_cores"], 2) + (
                                        f" (peers ≤ {r['peer_foreign_cores']:.2f})"
                                        if r["peer_foreign_cores"] is not None else "")]
                                   for r in rows])
    return tables


def duration(s):
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def results_section(env, args, small, small_keras, wk, wk_skipped, failures, total_s):
    """The README's results section (markdown)."""
    L = ["## Results", ""]
    L.append(f"Run of {env['date']}" + (f", {duration(total_s)} in all." if total_s else "."))
    if args.note:
        L += ["", f"**{args.note}**"]
    L += ["",
          f"- Machine: {env.get('cpu', '?')}, {env.get('cores', '?')} cores"
          + (f" ({env['threads_per_core']} thread per core)" if env.get("threads_per_core") == "1" else "")
          + (f", {env['memory_gib']} GiB" if env.get("memory_gib") else "")
          + f", Linux {env['kernel']}; load average at the start {' '.join(env.get('loadavg_start') or ['?'])}.",
          f"- Kiln {env['kiln']} (`{env['kiln_binary']}`, built {env['kiln_binary_built']})"
          + (f", runtime from `{env['kiln_runtime_dir']}`" if env.get("kiln_runtime_dir") else "")
          + (f", linked against {env['openblas']}" if env.get("openblas") else "") + ".",
          "- Peers: " + ", ".join(f"{label} {env[p]}" for p, label in (
              ("keras", "Keras"), ("jax", "JAX"), ("jaxlib", "jaxlib"), ("onnxruntime", "ONNX Runtime"),
              ("onnx", "onnx"), ("torch", "PyTorch")) if env.get(p))
          + (", PyTorch not installed" if not env.get("torch") else "")
          + f"; NumPy {env.get('numpy', '?')}, Python {env['python']}.",
          ]
    threads = [f"{k}={env[k]}" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "XLA_FLAGS") if env.get(k)]
    L.append("- Threads: " + (", ".join(threads) if threads else "each library's default (all cores)") + ".")
    if wk:
        t = workload_tables(wk)
        L += ["", "### W1–W5 beside the peers", "",
              f"`compare.py --budget {wk['budget']:g}`: each figure is the median of single timed calls "
              f"after warm-up, timed for about {wk['budget']:g} s (at least 10 calls; W5, batch 1: at least 50). "
              f"This part took {duration(wk['seconds'])}, of which the measuring processes ran "
              f"{duration(sum(wk['process_seconds'].values()))}; the rest was compare.py checking, and "
              "waiting up to 30 s, for a quiet machine before each process. Times in ms per call at the "
              "workload's batch; "
              "ratio = best peer ms / Kiln ms (above 1: Kiln is faster). Peak RSS: of a fresh Python "
              "process that loads the library, creates the model and takes a train step; it includes the "
              "interpreter and NumPy (see \"What is measured\").", "",
              t["main"][1].rstrip()]
        if "train" in t:
            L += ["", "Every system's median, ms (train step / inference; `—`: not run or failed):", "",
                  t["train"][1].rstrip(), "", t["infer"][1].rstrip()]
        L += ["", "Checks and context: Kiln's prediction against Keras' on the same weights, the loss of "
              "each on the first batch, the fresh process's RSS before it loads the library, its first "
              "train step, and how many cores other processes kept busy while Kiln's train step was timed "
              "(and the most seen during any peer's timing):", "", t["checks"][1].rstrip()]
        missing = [(r["workload"], s) for r in wk["rows"] for s in r["peer_missing"]]
        if missing:
            L += ["", "No result from: " + ", ".join(f"{s} on {w}" for w, s in missing)
                  + " (not installed, or failed: see the logs)."]
    elif wk_skipped:
        L += ["", f"### W1–W5: not run ({wk_skipped})"]
    if small:
        L += ["", "### Small CNN and MLP beside Keras `train_on_batch` / `predict_on_batch`", "",
              f"Batch 32; {args.warmup} warm-up calls, then the median of {args.repeats} runs of "
              f"{args.steps} calls. keras/kiln = Keras train ms / Kiln train ms (above 1: Kiln is faster)."
              + ("" if small_keras else " Keras was not run."), "",
              small_table(small, small_keras)[1].rstrip()]
    if failures:
        L += ["", "Failures:", ""] + [f"- {f}" for f in failures]
    return "\n".join(L) + "\n"


README_START = "<!-- bench results: written by tools/bench.py, which replaces everything down to the end marker -->"
README_END = "<!-- end of bench results -->"


def update_readme(path, section):
    text = open(path).read() if os.path.isfile(path) else "# Benchmark\n"
    block = README_START + "\n" + section + README_END + "\n"
    a, b = text.find(README_START), text.find(README_END)
    if a >= 0 and b > a:
        text = text[:a] + block + text[b + len(README_END):].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    with open(path, "w") as f:
        f.write(text)


def run_small(args, kiln, keras, failures):
    rows = []
    for name in args.models:
        in_shape, classes, desc = bench_models.MODELS[name]
        model_path = os.path.join(args.out, f"{name}.keras")
        try:
            kmodel = None
            if keras is not None:
                kmodel = bench_models.build(name)
                kmodel.save(model_path)
            else:
                src = os.path.join(ROOT, "bench", "models", f"{name}.keras")
                if not os.path.isfile(src):
                    fail(f"no {src}: generate it with tools/bench_models.py (needs Keras)")
                shutil.copyfile(src, model_path)
            lib_name, lib_path, header, ctime = kiln_compile(kiln, model_path, os.path.join(args.out, name))
            data = Data(in_shape, classes, seed=len(rows) + 7)
            km = KilnModel(lib_name, lib_path, header)
            try:
                k = bench_kiln(km, data, args)
            finally:
                km.close()
        except BenchError as e:
            print(f"{name}: FAILED: {e}", file=sys.stderr, flush=True)
            failures.append(f"{name}: {gist(e)}")
            continue
        k["compile_s"] = ctime
        r = bench_keras(kmodel, data, args) if kmodel is not None else None
        line = f"{name}: {desc}; kiln compile {ctime:.2f} s; first-step loss kiln {k['first_loss']:.5f}"
        if r:
            line += f", keras {r['first_loss']:.5f}"
        print(line, flush=True)
        rows.append((name, k, r))
    return rows


def main():
    t_start = time.perf_counter()
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
    args.out = os.path.abspath(args.out)

    kiln = find_kiln(args.kiln)
    keras, why = (None, "--no-keras given") if args.no_keras else import_keras()
    os.makedirs(args.out, exist_ok=True)
    env = environment(kiln, keras)
    print(f"Kiln benchmark, {env['date']}: {env.get('cores', '?')} cores ({env.get('cpu', '?')}), "
          f"load average {' '.join(env.get('loadavg_start') or ['?'])}")
    print(f"kiln {env['kiln']} ({env['kiln_binary']}, built {env['kiln_binary_built']})"
          + (f", Keras {env['keras']} ({env['backend']}" + (f" {env['jax']}" if "jax" in env else "")
             + f"), numpy {env.get('numpy', '?')}" if keras else ", Keras: not importable")
          + f", Python {env['python']} ({sys.executable})", flush=True)
    if keras is None:
        print(f"bench: Keras not importable ({why}): the small CNN and MLP are run on Kiln only, "
              "from the committed bench/models/", flush=True)
    wk_skipped = workloads_unavailable(args, keras)
    if wk_skipped and args.workloads:
        print(f"bench: W1-W5 SKIPPED: {wk_skipped}.\n"
              "       They need the reference scripts (../shared/bench, or --shared DIR) and a Python with\n"
              "       keras and jax, such as /opt/kerasvenv/bin/python (bench/README.md says how to make it).\n"
              "       Only Kiln's figures for the small CNN and MLP follow.", flush=True)

    failures = []
    print(f"\nSmall CNN and MLP: batch {BATCH}, {args.warmup} warm-up + {args.repeats} x {args.steps} calls, median",
          flush=True)
    small = run_small(args, kiln, keras, failures)

    wk = None
    if not wk_skipped:
        print(flush=True)
        wk = run_workloads(args, kiln)
        if wk["rc"] != 0:
            failures.append(f"compare.py exited {wk['rc']}")
            print(f"bench: compare.py exited {wk['rc']}; its last output:\n{wk['tail']}", file=sys.stderr)
        for r in wk["rows"]:
            if r["error"]:
                failures.append(f"{r['workload']}: Kiln: {gist(r['error'])}")
    total_s = time.perf_counter() - t_start

    print()
    if wk:
        t = workload_tables(wk)
        print(f"W1-W5 (ms per call at the workload's batch; ratio = peer / kiln, above 1 = Kiln faster; "
              f"peak RSS of a fresh Python process that loads the library, creates the model and takes a train step):")
        print(t["main"][0])
        if "train" in t:
            print("every system, train step ms:")
            print(t["train"][0])
            print("every system, inference ms:")
            print(t["infer"][0])
        print("checks:")
        print(t["checks"][0])
        for r in wk["rows"]:
            if r["error"]:
                print(f"{r['workload']}: Kiln FAILED: {r['error'][:600]}")
            if r["peer_missing"]:
                print(f"{r['workload']}: no result from {', '.join(r['peer_missing'])} "
                      f"(not installed, or failed: see {os.path.join(wk['dir'], 'logs')})")
    elif wk_skipped:
        print(f"W1-W5: not run ({wk_skipped})")
    if small:
        print("\nsmall models (keras/kiln = Keras train ms / Kiln train ms, above 1 = Kiln faster):")
        print(small_table(small, keras is not None)[0], end="")
        if keras is None:
            print("(Keras not importable: Keras columns skipped)")
    print(f"\nwhole run: {duration(total_s)}"
          + (f"; W1-W5 {duration(wk['seconds'])}, of which the measuring processes ran "
             f"{duration(sum(wk['process_seconds'].values()))} (the rest: compare.py's quiet-machine checks, "
             "2-30 s before each process)"
             if wk else ""))

    section = results_section(env, args, small, keras is not None, wk, wk_skipped, failures, total_s)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(section)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"environment": env, "seconds": total_s, "failures": failures,
                   "workloads": wk, "workloads_skipped": wk_skipped,
                   "small": {"steps": args.steps, "repeats": args.repeats, "warmup": args.warmup, "batch": BATCH,
                             "results": {n: {"kiln": k, "keras": r} for n, k, r in small}}},
                  f, indent=2)
    complete = (wk is not None and wk["peers"] and args.workloads == WORKLOADS
                and [n for n, _, _ in small] == list(bench_models.MODELS) and keras is not None)
    if args.no_readme:
        pass
    elif (failures or not complete) and not args.force_readme:
        print(f"{os.path.relpath(args.readme)} left unchanged: "
              + ("something failed" if failures else "not a complete run (all of W1-W5 with peers, "
                                                     "both small models with Keras)")
              + f" (--force-readme writes it anyway); this run's section is in {os.path.join(args.out, 'results.md')}")
    else:
        update_readme(args.readme, section)
        print(f"results section of {os.path.relpath(args.readme)} replaced")
    print(f"results: {os.path.join(args.out, 'results.json')}, {os.path.join(args.out, 'results.md')}")
    if failures:
        print("FAILED: " + "; ".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
