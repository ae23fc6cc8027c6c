#!/usr/bin/env python3
"""`kiln fit`'s progress, validation, early stopping and checkpoint, `kiln evaluate` and
`kiln predict --classes`, against the Keras runs of tools/gen_fit_cases.py
(Tests/fit_cases/NAME/expected.json and weights folders). numpy only.

    python3 Tests/run_fit_cases.py [--kiln .build/debug/kiln]

Prints PASS/FAIL per check; exit 1 when one fails.
"""
import argparse
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "fit_cases")
RTOL, ATOL = 2e-4, 2e-5          # float32 training over a few epochs, as Tests/cases' train tolerance
failures = []


def check(name, ok, detail=""):
    print(("PASS " if ok else "FAIL ") + "fit/" + name + ("" if ok else ": " + detail))
    if not ok:
        failures.append(name)


def run(args, ok=True):
    r = subprocess.run(args, capture_output=True, text=True)
    if ok and r.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r


def run_pty(args):
    """Runs args with stdout and stderr on a pseudo-terminal; returns (exit code, bytes written)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        r, _, _ = select.select([master], [], [], 30)
        if not r:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:       # EIO: the child closed its side
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return p.wait(), out


def close(got, want, rtol=RTOL, atol=ATOL):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return got.shape == want.shape and np.allclose(got, want, rtol=rtol, atol=atol)


def weights_match(got_dir, want_dir):
    names = sorted(f for f in os.listdir(want_dir) if f.endswith(".npy"))
    have = sorted(f for f in os.listdir(got_dir) if f.endswith(".npy")) if os.path.isdir(got_dir) else []
    if have != names:
        return False, "weight files %s, expected %s" % (have, names)
    for f in names:
        g, w = np.load(os.path.join(got_dir, f)), np.load(os.path.join(want_dir, f))
        if not close(g, w):
            return False, "%s off by up to %.3g" % (f, float(np.max(np.abs(g.astype(np.float64) - w))))
    return True, ""


def history_match(got, want, keys):
    bad = [k for k in keys if k not in got or not close(got[k], want[k])]
    return not bad, "; ".join("%s: got %s, want %s" % (k, got.get(k), want[k]) for k in bad)


def keras_value(v):
    """A value as Keras' progress bar writes it."""
    return "%.4f" % v if abs(v) > 1e-3 else "%.4e" % v


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def screen_lines(raw):
    """What a terminal shows: each line's text after its last carriage return, escapes removed."""
    text = raw.decode("utf-8").replace("\r\n", "\n")
    return [ANSI.sub("", line.split("\r")[-1]) for line in text.split("\n")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", default=os.path.join(os.path.dirname(HERE), ".build", "debug", "kiln"))
    kiln = os.path.abspath(ap.parse_args().kiln)
    tmp = tempfile.mkdtemp(prefix="kiln-fit-cases-")
    try:
        return checks(kiln, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def checks(kiln, tmp):

    # ---------------------------------------------------------------- softmax
    d = os.path.join(CASES, "softmax")
    c = lambda f: os.path.join(d, f)  # noqa: E731
    exp = json.load(open(c("expected.json")))
    lib = os.path.join(tmp, "softmax", "libmodel.so")
    run([kiln, "compile", c("model.keras"), "-o", os.path.dirname(lib)])
    base = [kiln, "fit", lib, "--x", c("x.npy"), "--y", c("y.npy"), "--epochs", "3", "--batch-size", "8", "--no-shuffle"]
    val = ["--validation-x", c("val_x.npy"), "--validation-y", c("val_y.npy")]
    keys = ["loss", "accuracy", "val_loss", "val_accuracy"]

    # validation_data: history and weights; the plain lines (no terminal) show the same figures.
    h, w = os.path.join(tmp, "h_vd.json"), os.path.join(tmp, "w_vd")
    r = run(base + val + ["--history", h, "--save-weights", w])
    got = json.load(open(h))
    check("softmax/validation_data history", *history_match(got, exp["validation_data"], keys))
    check("softmax/validation_data weights", *weights_match(w, c("weights_validation_data")))
    want = "".join("Epoch %d/3 - " % (e + 1) + " - ".join("%s: %.6f" % (k, got[k][e]) for k in keys) + "\n" for e in range(3))
    check("softmax/one line per epoch without a terminal", r.stderr == want and r.stdout == "",
          "stderr %r, expected %r" % (r.stderr, want))
    check("softmax/history file key order", list(got) == keys, str(list(got)))

    # The same run on a pseudo-terminal: Keras' bar, redrawn in place; the screen keeps one
    # line per epoch with the epoch's figures as Keras writes them.
    rc, raw = run_pty(base + val)
    lines = screen_lines(raw)
    bar = "━" * 20
    ok = rc == 0 and lines[-1] == ""
    shown = [ln.rstrip() for ln in lines[:-1]]
    ok = ok and shown[0::2] == ["Epoch %d/3" % e for e in (1, 2, 3)]
    finals = shown[1::2]
    for e, line in enumerate(finals):
        m = re.fullmatch(r"5/5 " + bar + r" \d+s \d+(us|ms|s)/step - (.*)", line)
        figures = " - ".join("%s: %s" % (k, keras_value(got[k][e])) for k in keys)
        ok = ok and bool(m) and m.group(2) == figures
    # The first redraw of each epoch: batch 1 of 5 (4 of 20 segments), an ETA, the running figures.
    first = re.findall(rb"\r\x1b\[1m1/5\x1b\[0m \x1b\[32m(?:\xe2\x94\x81){4}\x1b\[0m\x1b\[37m(?:\xe2\x94\x81){16}\x1b\[0m "
                       rb"\x1b\[1m\d+s\x1b\[0m \d+(?:us|ms|s)/step - loss: [0-9.e+-]+ - accuracy: [0-9.e+-]+", raw)
    ok = ok and len(first) == 3
    check("softmax/progress bar on a terminal", ok, "rc %d, screen %r" % (rc, lines))

    rc, raw = run_pty(base + val + ["--verbose", "2"])
    check("softmax/--verbose 2 on a terminal", rc == 0 and raw.decode().replace("\r\n", "\n") == want, repr(raw))
    r = run(base + val + ["--verbose", "0"])
    check("softmax/--verbose 0", r.stderr == "" and r.stdout == "", repr(r.stderr))
    r = subprocess.run(base + val + ["--verbose", "1"], capture_output=True)   # bytes: keep the "\r"s
    check("softmax/--verbose 1 without a terminal draws the bar",
          r.stderr.count(b"\r") >= 6 and r.stderr.count(b"\n") == 6 and b"Epoch 3/3\n" in r.stderr, repr(r.stderr))

    # validation_split: the last quarter held out, before shuffling.
    h, w = os.path.join(tmp, "h_vs.json"), os.path.join(tmp, "w_vs")
    run(base + ["--validation-split", "0.25", "--history", h, "--save-weights", w, "--verbose", "0"])
    check("softmax/validation_split history", *history_match(json.load(open(h)), exp["validation_split"], keys))
    check("softmax/validation_split weights", *weights_match(w, c("weights_validation_split")))

    # initial_epoch: epochs 2 and 3 only, numbered so.
    h, w = os.path.join(tmp, "h_ie.json"), os.path.join(tmp, "w_ie")
    r = run(base + val + ["--initial-epoch", "1", "--history", h, "--save-weights", w])
    got = json.load(open(h))
    check("softmax/initial_epoch history", *history_match(got, exp["initial_epoch"], keys))
    check("softmax/initial_epoch weights", *weights_match(w, c("weights_initial_epoch")))
    check("softmax/initial_epoch numbering", re.findall(r"Epoch (\d/\d)", r.stderr) == ["2/3", "3/3"], r.stderr)

    # Seeded shuffling: the same seed, the same run; another seed, another one.
    def shuffled(seed):
        hh, ww = os.path.join(tmp, "h_s%d.json" % seed), os.path.join(tmp, "w_s%d" % seed)
        run(base[:-1] + ["--seed", str(seed), "--history", hh, "--save-weights", ww, "--verbose", "0"])
        return json.load(open(hh))["loss"], [np.load(os.path.join(ww, f)) for f in sorted(os.listdir(ww))]
    a, b, other = shuffled(5), shuffled(5), shuffled(6)
    same = a[0] == b[0] and all(np.array_equal(x, y) for x, y in zip(a[1], b[1]))
    check("softmax/--seed repeats the shuffled run", same and a[0] != other[0], "%s %s %s" % (a[0], b[0], other[0]))

    # evaluate and predict --classes on the compiled (initial) weights.
    ej = os.path.join(tmp, "eval.json")
    r = run([kiln, "evaluate", lib, "--x", c("val_x.npy"), "--y", c("val_y.npy"), "--batch-size", "5", "--output", ej])
    ev, want_ev = json.load(open(ej)), exp["evaluate"]
    check("softmax/evaluate", list(ev) == ["loss", "accuracy"] and close([ev["loss"], ev["accuracy"]], [want_ev["loss"], want_ev["accuracy"]])
          and r.stdout == "loss: %.6f - accuracy: %.6f\n" % (ev["loss"], ev["accuracy"]), "%s %r, want %s" % (ev, r.stdout, want_ev))
    cl = os.path.join(tmp, "classes.npy")
    run([kiln, "predict", lib, "--input", c("val_x.npy"), "--output", cl, "--classes"])
    got, want_cl = np.load(cl), np.load(c("classes.npy"))
    check("softmax/predict --classes", got.dtype == np.int32 and got.shape == want_cl.shape and np.array_equal(got, want_cl),
          "%s %s, want %s" % (got.dtype, got.tolist(), want_cl.tolist()))

    # Usage errors: exit 2, nothing written.
    hh = os.path.join(tmp, "never.json")
    r = run(base + val + ["--validation-split", "0.2", "--history", hh], ok=False)
    check("softmax/split and data together refused", r.returncode == 2 and not os.path.exists(hh), r.stderr)
    r = run(base + ["--early-stopping", "2", "--history", hh], ok=False)
    check("softmax/val_loss without validation refused",
          r.returncode == 1 and "val_loss" in r.stderr and not os.path.exists(hh), r.stderr)

    # ---------------------------------------------------------------- earlystop
    d = os.path.join(CASES, "earlystop")
    exp = json.load(open(c("expected.json")))
    lib = os.path.join(tmp, "earlystop", "libmodel.so")
    run([kiln, "compile", c("model.keras"), "-o", os.path.dirname(lib)])
    base = [kiln, "fit", lib, "--x", c("x.npy"), "--y", c("y.npy"), "--epochs", "30", "--batch-size", "8", "--no-shuffle",
            "--validation-x", c("val_x.npy"), "--validation-y", c("val_y.npy")]

    e = exp["restore"]
    h, w, cp = os.path.join(tmp, "h_es.json"), os.path.join(tmp, "w_es"), os.path.join(tmp, "cp")
    r = run(base + ["--early-stopping", "2", "--restore-best-weights", "--checkpoint", cp, "--history", h, "--save-weights", w])
    got = json.load(open(h))
    check("earlystop/stops at Keras' epoch", len(got["loss"]) == e["stopped_epoch"],
          "ran %d epochs, Keras %d" % (len(got["loss"]), e["stopped_epoch"]))
    check("earlystop/history", *history_match(got, e, keys))
    check("earlystop/restored weights", *weights_match(w, c("weights_restore")))
    check("earlystop/checkpoint holds the best epoch", *weights_match(cp, c("weights_restore")))
    info = json.load(open(os.path.join(cp, "checkpoint.json")))
    check("earlystop/checkpoint.json", info["epoch"] == e["best_epoch"] and info["monitor"] == "val_loss"
          and close(info["value"], e["val_loss"][e["best_epoch"] - 1]), str(info))
    tail = r.stderr.splitlines()[-2:]
    check("earlystop/messages", tail == ["Epoch %d: early stopping" % e["stopped_epoch"],
                                         "Restoring model weights from the end of the best epoch: %d." % e["best_epoch"]], str(tail))

    e = exp["min_delta"]
    h, w = os.path.join(tmp, "h_md.json"), os.path.join(tmp, "w_md")
    run(base + ["--early-stopping", "1", "--monitor", "val_accuracy", "--min-delta", "0.05", "--history", h, "--save-weights", w])
    got = json.load(open(h))
    check("earlystop/val_accuracy with min_delta stops at Keras' epoch", len(got["loss"]) == e["stopped_epoch"],
          "ran %d epochs, Keras %d" % (len(got["loss"]), e["stopped_epoch"]))
    check("earlystop/val_accuracy with min_delta history and weights",
          history_match(got, e, keys)[0] and weights_match(w, c("weights_min_delta"))[0],
          history_match(got, e, keys)[1] + weights_match(w, c("weights_min_delta"))[1])

    ej = os.path.join(tmp, "eval_es.json")
    run([kiln, "evaluate", lib, "--x", c("val_x.npy"), "--y", c("val_y.npy"), "--batch-size", "8", "--output", ej])
    ev, want_ev = json.load(open(ej)), exp["evaluate"]
    check("earlystop/evaluate", close([ev["loss"], ev["accuracy"]], [want_ev["loss"], want_ev["accuracy"]]), "%s, want %s" % (ev, want_ev))
    cl = os.path.join(tmp, "classes_es.npy")
    run([kiln, "predict", lib, "--input", c("val_x.npy"), "--output", cl, "--classes"])
    got, want_cl = np.load(cl), np.load(c("classes.npy"))
    check("earlystop/predict --classes (one sigmoid unit)", got.dtype == np.int32 and got.shape == want_cl.shape
          and np.array_equal(got, want_cl), "%s %s, want %s" % (got.dtype, got.tolist(), want_cl.tolist()))

    print("%d fit checks failed" % len(failures) if failures else "all fit checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
