#!/usr/bin/env python3
"""Runs smelt-bench and the same workloads in NumPy and PyTorch, with the
same thread count, and prints one Markdown table with the ratios.

    python3 bench/peers.py build/bench/smelt-bench [--quick] [--threads N]
                           [--repeats N] [--target cpu|interp]

The output is Markdown (a machine description, then the tables), ready
for `> bench/RESULTS.md`. Progress goes to stderr. NumPy and PyTorch are
optional: a peer that does not import gets "-" in its columns.

Ratios are peer time / smelt time: above 1 smelt is faster. The "% of
copy" column divides each elementwise or reduction rate (logical bytes
read and written per second, counted the same way for everyone) by the
memcpy bandwidth smelt-bench measured in the same run.
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("smelt_bench", help="path of the smelt-bench executable")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    ap.add_argument("--threads", type=int, default=0,
                    help="threads for everyone (default: every core)")
    ap.add_argument("--repeats", type=int, default=0,
                    help="timed runs per workload (default 20, 5 with --quick)")
    ap.add_argument("--target", default="cpu", choices=["cpu", "interp"])
    return ap.parse_args()


ARGS = parse_args()
THREADS = ARGS.threads or os.cpu_count() or 1
REPEATS = ARGS.repeats or (5 if ARGS.quick else 20)
WARMUP = 1 if ARGS.quick else 3

# Thread counts must be fixed before NumPy's BLAS and PyTorch load.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
            "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[var] = str(THREADS)

try:
    import numpy as np
except ImportError:
    np = None
try:
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(THREADS)
except ImportError:
    torch = None


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --------------------------------------------------------------- sizes
# The same as smelt-bench's (bench/bench.c, main).
BIG = 1 << 16 if ARGS.quick else 1 << 24
IMG = (5, 32, 32, 3) if ARGS.quick else (5, 256, 256, 3)
MM = 128 if ARGS.quick else 1000
BATCH, HIDDEN = (32, 64) if ARGS.quick else (256, 512)
IMG_N = IMG[0] * IMG[1] * IMG[2] * IMG[3]


def bytes_of(key):
    """Logical memory traffic of a workload, as smelt-bench counts it."""
    f = 4
    return {
        "copy (memcpy)": 2 * BIG * f,
        "copy (smelt)": 2 * BIG * f,
        "elementwise": 4 * BIG * f,
        "mean axis 0": (IMG_N + IMG_N // IMG[0]) * f,
        "max axis -1": (IMG_N + IMG_N // IMG[3]) * f,
        "sum": (BIG + 1) * f,
    }.get(key)


def flops_of(key):
    if key == "matmul":
        return 2.0 * MM ** 3
    if key == "mlp train step":
        return 3 * 2.0 * BATCH * (784 * HIDDEN + HIDDEN * 10)
    return None


def timeit(fn):
    """Median and minimum of REPEATS runs after WARMUP, in ms."""
    for _ in range(WARMUP):
        fn()
    t = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        t.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t), min(t)


# --------------------------------------------------------------- NumPy
def numpy_workloads():
    rng = np.random.default_rng(0)
    f32 = np.float32
    a, b, c = (rng.uniform(-1, 1, BIG).astype(f32) for _ in range(3))
    dst = np.empty_like(a)
    img = rng.uniform(-1, 1, IMG).astype(f32)
    ma = rng.uniform(-1, 1, (MM, MM)).astype(f32)
    mb = rng.uniform(-1, 1, (MM, MM)).astype(f32)

    s1, s2 = 1 / np.sqrt(784), 1 / np.sqrt(HIDDEN)
    w1 = rng.uniform(-s1, s1, (784, HIDDEN)).astype(f32)
    b1 = rng.uniform(-s1, s1, HIDDEN).astype(f32)
    w2 = rng.uniform(-s2, s2, (HIDDEN, 10)).astype(f32)
    b2 = rng.uniform(-s2, s2, 10).astype(f32)
    x = rng.uniform(-1, 1, (BATCH, 784)).astype(f32)
    labels = rng.integers(0, 10, BATCH)
    lr = f32(0.01)

    def train_step():
        # Forward, cross-entropy, backward by hand, SGD in place.
        h_pre = x @ w1 + b1
        h = np.maximum(h_pre, 0)
        logits = h @ w2 + b2
        m = logits.max(axis=1, keepdims=True)
        e = np.exp(logits - m)
        s = e.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(s[:, 0]) + m[:, 0] - logits[np.arange(BATCH), labels]))
        g = e / s
        g[np.arange(BATCH), labels] -= 1
        g /= BATCH
        gw2 = h.T @ g
        gb2 = g.sum(axis=0)
        gh = (g @ w2.T) * (h_pre > 0)
        gw1 = x.T @ gh
        gb1 = gh.sum(axis=0)
        for p, gp in ((w1, gw1), (b1, gb1), (w2, gw2), (b2, gb2)):
            p -= lr * gp
        return loss

    return {
        "copy (memcpy)": lambda: np.copyto(dst, a),
        "elementwise": lambda: np.maximum(a * b + c, 0) * f32(0.5) + np.exp(-a),
        "mean axis 0": lambda: img.mean(axis=0),
        "max axis -1": lambda: img.max(axis=-1),
        "sum": lambda: a.sum(),
        "matmul": lambda: ma @ mb,
        "mlp train step": train_step,
    }


# ------------------------------------------------------------- PyTorch
def torch_workloads():
    g = torch.Generator().manual_seed(0)

    def u(*shape, lo=-1.0, hi=1.0):
        return torch.rand(*shape, generator=g) * (hi - lo) + lo

    a, b, c = u(BIG), u(BIG), u(BIG)
    dst = torch.empty_like(a)
    img = u(*IMG)
    ma, mb = u(MM, MM), u(MM, MM)

    s1, s2 = 784 ** -0.5, HIDDEN ** -0.5
    params = [u(784, HIDDEN, lo=-s1, hi=s1), u(HIDDEN, lo=-s1, hi=s1),
              u(HIDDEN, 10, lo=-s2, hi=s2), u(10, lo=-s2, hi=s2)]
    for p in params:
        p.requires_grad_(True)
    w1, b1, w2, b2 = params
    x = u(BATCH, 784)
    labels = torch.randint(0, 10, (BATCH,), generator=g)
    opt = torch.optim.SGD(params, lr=0.01)

    def train_step():
        opt.zero_grad(set_to_none=True)
        logits = torch.relu(x @ w1 + b1) @ w2 + b2
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        opt.step()
        return loss

    def no_grad(fn):
        def run():
            with torch.no_grad():
                return fn()
        return run

    return {
        "copy (memcpy)": no_grad(lambda: dst.copy_(a)),
        "elementwise": no_grad(lambda: torch.relu(a * b + c) * 0.5 + torch.exp(-a)),
        "mean axis 0": no_grad(lambda: img.mean(dim=0)),
        "max axis -1": no_grad(lambda: img.amax(dim=-1)),
        "sum": no_grad(lambda: a.sum()),
        "matmul": no_grad(lambda: ma @ mb),
        "mlp train step": train_step,
    }


def run_peer(name, make):
    out = {}
    try:
        work = make()
    except Exception as e:  # a peer that cannot run is left out
        log(f"{name}: cannot set up the workloads: {e}")
        return out
    for key, fn in work.items():
        log(f"{name}: {key}")
        try:
            out[key] = timeit(fn)
        except Exception as e:
            log(f"{name}: {key}: {e}")
    return out


# --------------------------------------------------------------- smelt
def run_smelt():
    cmd = [ARGS.smelt_bench, "--json", "--target", ARGS.target,
           "--threads", str(THREADS), "--repeats", str(REPEATS)]
    if ARGS.quick:
        cmd.append("--quick")
    log("smelt:", " ".join(cmd))
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.stderr:
        log(p.stderr.rstrip())
    meta, rows = {}, {}
    for line in p.stdout.splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if r.get("meta"):
            meta = r
        elif "workload" in r:
            rows[r["workload"]] = r
    if not rows:
        sys.exit(f"peers.py: {ARGS.smelt_bench} printed no results (exit status {p.returncode})")
    return meta, rows


# ------------------------------------------------------------- machine
def sh(*cmd):
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    info = {}
    for line in sh("lscpu").splitlines():
        k, _, v = line.partition(":")
        info[k.strip()] = v.strip()
    model = info.get("Model name") or platform.processor() or "unknown"
    cpus = info.get("CPU(s)") or str(os.cpu_count())
    cores = info.get("Core(s) per socket")
    sockets = info.get("Socket(s)")
    topo = f"{cpus} logical CPUs"
    if cores and sockets:
        topo += f" ({sockets} socket(s) x {cores} core(s))"
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
            mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        pass
    llvm = ""
    for name in ("llvm-config-19", "llvm-config-18", "llvm-config"):
        if shutil.which(name):
            llvm = sh(name, "--version")
            break
    return model, topo, mem, llvm


# --------------------------------------------------------------- table
def fmt_ms(v):
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def ratio(peer, mine):
    if peer is None or mine is None or mine <= 0:
        return "-"
    return f"{peer / mine:.2f}x"


def main():
    meta, smelt = run_smelt()
    peers = {}
    if np is not None:
        peers["numpy"] = run_peer("numpy", numpy_workloads)
    else:
        log("numpy does not import: its columns are empty")
    if torch is not None:
        peers["torch"] = run_peer("torch", torch_workloads)
    else:
        log("torch does not import: its columns are empty")

    model, topo, mem, llvm = machine()
    smelt_v = meta.get("smelt_version", "?")
    print("# smelt benchmarks\n")
    print(f"Generated by `python3 bench/peers.py {' '.join(sys.argv[1:])}` on "
          f"{time.strftime('%Y-%m-%d')}.\n")
    print("| | |\n|---|---|")
    print(f"| CPU | {model} |")
    print(f"| cores | {topo} |")
    print(f"| memory | {mem or '?'} |")
    print(f"| OS | {platform.system()} {platform.release()} |")
    print(f"| smelt | {smelt_v}, target {ARGS.target} |")
    print(f"| LLVM | {llvm or '?'} (llvm-config on PATH) |")
    print(f"| Python | {platform.python_version()} |")
    print(f"| NumPy | {np.__version__ if np is not None else 'not installed'} |")
    print(f"| PyTorch | {torch.__version__ if torch is not None else 'not installed'} |")
    print(f"| threads | {THREADS} for everyone (smelt --threads, torch.set_num_threads, "
          f"OMP/OPENBLAS/MKL_NUM_THREADS) |")
    print(f"| method | {WARMUP} warm-up runs, median of {REPEATS} timed runs |")
    print()

    copy_bw = None
    c = smelt.get("copy (memcpy)")
    if c and "gb_per_s" in c:
        copy_bw = c["gb_per_s"]

    def rate(key, ms):
        if ms is None:
            return None
        if bytes_of(key):
            return bytes_of(key) / ms / 1e6, "GB/s"
        if flops_of(key):
            return flops_of(key) / ms / 1e6, "GFLOP/s"
        return None

    order = ["copy (memcpy)", "copy (smelt)", "elementwise", "mean axis 0", "max axis -1",
             "sum", "matmul", "mlp train step"]
    print("| workload | size | smelt ms | numpy ms | torch ms | smelt rate | "
          "numpy / smelt | torch / smelt | % of copy (smelt / numpy / torch) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for key in order:
        s = smelt.get(key, {})
        if "error" in s:
            mine, size = None, "-"
        else:
            mine, size = s.get("median_ms"), s.get("size", "-")
        pn = peers.get("numpy", {}).get(key, (None,))[0]
        pt = peers.get("torch", {}).get(key, (None,))[0]
        if key == "copy (smelt)":  # smelt only; compare with the peers' copies
            pn = peers.get("numpy", {}).get("copy (memcpy)", (None,))[0]
            pt = peers.get("torch", {}).get("copy (memcpy)", (None,))[0]
        if mine is None and pn is None and pt is None:
            continue
        r = rate(key, mine)
        rate_s = f"{r[0]:.2f} {r[1]}" if r else ("error: " + s["error"] if "error" in s else "-")
        frac = "-"
        if copy_bw and bytes_of(key) and key in ("elementwise", "mean axis 0",
                                                  "max axis -1", "sum"):
            parts = []
            for ms in (mine, pn, pt):
                rr = rate(key, ms)
                parts.append(f"{100 * rr[0] / copy_bw:.0f}%" if rr else "-")
            frac = " / ".join(parts)
        print(f"| {key} | {size} | {fmt_ms(mine)} | {fmt_ms(pn)} | {fmt_ms(pt)} | {rate_s} | "
              f"{ratio(pn, mine)} | {ratio(pt, mine)} | {frac} |")
    print()
    print("Ratios are the peer's median time over smelt's: above 1, smelt is faster. "
          "`copy (smelt)` is the program `y = x` (compared with the peers' copies into a "
          "preallocated buffer); smelt's times are those of `smelt_program_run`, which "
          "writes into the program's own output buffers (reused from run to run; "
          "`smelt_program_read` copies out). Rates count logical bytes read and written "
          "(or 2mnk flops for matmul, 3x the forward flops for the training step).")
    print()

    cold, cached = smelt.get("compile (cold)"), smelt.get("compile (cached)")
    if cold or cached:
        print("Compiling the training program (JIT, `smelt_program_get_stats`):\n")
        print("| compile | compile_ms | wall ms | from cache | kernels "
              "| arena MB (without reuse) |")
        print("|---|---:|---:|---|---:|---:|")
        for name, r in (("cold (empty cache dir)", cold), ("cached (same dir)", cached)):
            if not r:
                continue
            if "error" in r:
                print(f"| {name} | error: {r['error']} | | | | |")
                continue
            print(f"| {name} | {r['compile_ms']:.1f} | {r['wall_ms']:.1f} | "
                  f"{'yes' if r['from_cache'] else 'no'} | {r['kernels']} | "
                  f"{r['arena_bytes'] / 1e6:.2f} ({r['unplanned_bytes'] / 1e6:.2f}) |")
        print()


if __name__ == "__main__":
    main()
