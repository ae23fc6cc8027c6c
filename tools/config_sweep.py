#!/usr/bin/env python3
"""Edge values through the whole compiler: every number of a case's layer configs, one at a
time, replaced by 0, -1, -3, 2^30 + 1, 2^31 - 1, 10^7 and 2^62, then `kiln compile`d.

Kiln must answer each with success, or exit 1 and one sentence (README "Fuzzing and bounded
inputs"); a signal, a Swift trap, a time-out or several lines of error is a failure, and the
model is kept for a regression test. The fuzzers reach the readers; this reaches shape
inference, lowering and code generation, where a stride of 2^62 used to overflow.

    python3 tools/config_sweep.py --kiln .build/release/kiln conv2d_transpose_valid mha_self
Cases are directories of Tests/cases (their model.keras); numpy is not needed.
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, zipfile

VALUES = [0, -1, -3, 2 ** 30 + 1, 2 ** 31 - 1, 10 ** 7, 2 ** 62]


def numbers(obj, path=()):
    """(path, value) of every number in obj, seeds and object ids excepted."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k not in ("seed", "shared_object_id"):
                yield from numbers(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from numbers(v, path + (i,))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield path, obj


def replaced(config, path, value):
    c = json.loads(json.dumps(config))
    node = c
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--cases", default="Tests/cases")
    ap.add_argument("--keep", default=".build/config_sweep", help="where failing models are kept")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("case", nargs="+")
    a = ap.parse_args()
    os.makedirs(a.keep, exist_ok=True)
    work = tempfile.mkdtemp(prefix="kiln-sweep-")
    runs = failures = 0
    for case in a.case:
        with zipfile.ZipFile(os.path.join(a.cases, case, "model.keras")) as z:
            entries = {n: z.read(n) for n in z.namelist()}
        config = json.loads(entries["config.json"])
        for path, _ in numbers(config["config"]):
            for value in VALUES:
                model = os.path.join(work, "m.keras")
                with zipfile.ZipFile(model, "w") as z:
                    for n, data in entries.items():
                        z.writestr(n, json.dumps(replaced(config, ("config",) + path, value)) if n == "config.json" else data)
                runs += 1
                try:
                    r = subprocess.run([a.kiln, "compile", model, "-o", os.path.join(work, "out")],
                                       capture_output=True, text=True, timeout=a.timeout)
                    ok = r.returncode == 0 or (r.returncode == 1 and r.stderr.strip().count("\n") == 0)
                    why = f"exit {r.returncode}: {r.stderr.strip().splitlines()[:1]}"
                except subprocess.TimeoutExpired:
                    ok, why = False, f"no end within {a.timeout} s"
                shutil.rmtree(os.path.join(work, "out"), ignore_errors=True)
                if not ok:
                    failures += 1
                    kept = os.path.join(a.keep, f"{case}-{'.'.join(map(str, path))}-{value}.keras")
                    shutil.copy(model, kept)
                    print(f"FAIL {case} {'/'.join(map(str, path))} = {value}: {why} (model: {kept})", flush=True)
        print(f"{case}: done ({runs} compiles so far, {failures} failures)", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    print(f"{runs} compiles, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
