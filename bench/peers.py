#!/usr/bin/env python3
"""Runs smelt-bench and the same workloads in NumPy, PyTorch (eager and
torch.compile) and JAX (jax.jit), with the same thread count, and prints
Markdown tables with the ratios.

    python3 bench/peers.py build/bench/smelt-bench [--quick] [--threads N]
                           [--repeats N] [--target cpu|interp]

The output is Markdown (a machine description, then the tables), ready
for `> bench/RESULTS.md`. Progress goes to stderr. Every peer is
optional: one that does not import (or fails on a workload) gets "-".
`--threads N` below the core count also pins this process, smelt-bench
and the peers to the first N CPUs (JAX has no thread-count setting).

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
    ap.add_argument("--no-compile", action="store_true",
                    help="leave out torch.compile (slow to compile on small machines)")
    ap.add_argument("--memory-probe", choices=["torch"], help=argparse.SUPPRESS)
    return ap.parse_args()


ARGS = parse_args()
THREADS = ARGS.threads or os.cpu_count() or 1
REPEATS = ARGS.repeats or (5 if ARGS.quick else 20)
WARMUP = 1 if ARGS.quick else 3

if THREADS < (os.cpu_count() or 1) and hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:THREADS])

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
try:
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_platforms", "cpu")
except ImportError:
    jax = None


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --------------------------------------------------------------- sizes
# The same as smelt-bench's (bench/bench.c, main).
BIG = 1 << 16 if ARGS.quick else 1 << 24
IMG = (5, 32, 32, 3) if ARGS.quick else (5, 256, 256, 3)
SQUARES = (64, 100, 128) if ARGS.quick else (256, 1000, 1024, 4096)
BATCH, HIDDEN = (32, 64) if ARGS.quick else (256, 512)
CNN_BATCH = 8 if ARGS.quick else 64
LINEAR_SQ = 128 if ARGS.quick else 1024
IMG_N = IMG[0] * IMG[1] * IMG[2] * IMG[3]

# Matrix products (m, n, k, A stored transposed, B stored transposed, bias +
# ReLU): the square ones, the five of the MLP step, and two with the fused
# epilogue. The keys are smelt-bench's (bench/bench.c, main).
GEMMS = {f"matmul {s}": (s, s, s, False, False, False) for s in SQUARES}
GEMMS.update({
    "mlp x@w1": (BATCH, HIDDEN, 784, False, False, False),
    "mlp h@w2": (BATCH, 10, HIDDEN, False, False, False),
    "mlp x^T@gh": (784, HIDDEN, BATCH, True, False, False),
    "mlp h^T@g": (HIDDEN, 10, BATCH, True, False, False),
    "mlp g@w2^T": (BATCH, HIDDEN, 10, False, True, False),
    "linear+relu mlp": (BATCH, HIDDEN, 784, False, False, True),
    "linear+relu square": (LINEAR_SQ, LINEAR_SQ, LINEAR_SQ, False, False, True),
})


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
    if key in GEMMS:
        m, n, k = GEMMS[key][:3]
        return 2.0 * m * n * k
    if key == "mlp train step":
        return 3 * 2.0 * BATCH * (784 * HIDDEN + HIDDEN * 10)
    if key == "cnn train step":
        return 3 * 2.0 * CNN_BATCH * (28 * 28 * 32 * 9 + 14 * 14 * 64 * 32 * 9 + 64 * 7 * 7 * 10)
    return None


def repeats_of(key):
    """As smelt-bench: 5 runs for products above 1e11 flops."""
    f = flops_of(key)
    return 5 if key in GEMMS and f and f > 1e11 and REPEATS > 5 else REPEATS


def timeit(fn, key=""):
    """Median and minimum of the timed runs after WARMUP, in ms."""
    for _ in range(WARMUP):
        fn()
    t = []
    for _ in range(repeats_of(key)):
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

    work = {
        "copy (memcpy)": lambda: np.copyto(dst, a),
        "elementwise": lambda: np.maximum(a * b + c, 0) * f32(0.5) + np.exp(-a),
        "mean axis 0": lambda: img.mean(axis=0),
        "max axis -1": lambda: img.max(axis=-1),
        "sum": lambda: a.sum(),
        "mlp train step": train_step,
    }

    def gemm(m, n, k, ta, tb, lr):
        A = rng.uniform(-1, 1, (k, m) if ta else (m, k)).astype(f32)
        B = rng.uniform(-1, 1, (n, k) if tb else (k, n)).astype(f32)
        A, B = (A.T if ta else A), (B.T if tb else B)
        bias = rng.uniform(-1, 1, n).astype(f32)
        out = np.empty((m, n), f32)
        if not lr:
            return lambda: np.matmul(A, B, out=out)

        def linear_relu():  # sgemm, then the bias and the ReLU in place
            np.matmul(A, B, out=out)
            np.add(out, bias, out=out)
            return np.maximum(out, 0, out=out)
        return linear_relu

    for key, shape in GEMMS.items():
        work[key] = gemm(*shape)
    return work


# ------------------------------------------------------------- PyTorch
def torch_uniform(g):
    """u(*shape, lo, hi): uniform f32 tensors drawn from generator g."""
    def u(*shape, lo=-1.0, hi=1.0):
        return torch.rand(*shape, generator=g) * (hi - lo) + lo
    return u


def torch_workloads():
    g = torch.Generator().manual_seed(0)
    u = torch_uniform(g)

    a, b, c = u(BIG), u(BIG), u(BIG)
    dst = torch.empty_like(a)
    img = u(*IMG)

    def no_grad(fn):
        def run():
            with torch.no_grad():
                return fn()
        return run

    work = {
        "copy (memcpy)": no_grad(lambda: dst.copy_(a)),
        "elementwise": no_grad(lambda: torch.relu(a * b + c) * 0.5 + torch.exp(-a)),
        "mean axis 0": no_grad(lambda: img.mean(dim=0)),
        "max axis -1": no_grad(lambda: img.amax(dim=-1)),
        "sum": no_grad(lambda: a.sum()),
        "mlp train step": torch_mlp_step(u, g),
        "cnn train step": torch_cnn_step(u),
    }

    def gemm(m, n, k, ta, tb, lr):
        A = u(k, m).t() if ta else u(m, k)
        B = u(n, k).t() if tb else u(k, n)
        bias, out = u(n), torch.empty(m, n)
        if not lr:
            return no_grad(lambda: torch.matmul(A, B, out=out))
        # sgemm with the bias as its C input (beta = 1), then the ReLU in place
        return no_grad(lambda: torch.addmm(bias, A, B, out=out).relu_())

    for key, shape in GEMMS.items():
        work[key] = gemm(*shape)
    return work


def torch_mlp_step(u, g, compiled=False):
    """One SGD step of the MLP (params from u, labels from generator g);
    compiled: the loss (forward and, through AOTAutograd, backward) and
    the optimizer step go through torch.compile (inductor)."""
    s1, s2 = 784 ** -0.5, HIDDEN ** -0.5
    params = [u(784, HIDDEN, lo=-s1, hi=s1), u(HIDDEN, lo=-s1, hi=s1),
              u(HIDDEN, 10, lo=-s2, hi=s2), u(10, lo=-s2, hi=s2)]
    for p in params:
        p.requires_grad_(True)
    w1, b1, w2, b2 = params
    x = u(BATCH, 784)
    labels = torch.randint(0, 10, (BATCH,), generator=g)
    opt = torch.optim.SGD(params, lr=0.01)
    return torch_step(opt, lambda x, labels: F.cross_entropy(
        torch.relu(x @ w1 + b1) @ w2 + b2, labels), x, labels, compiled)


def torch_step(opt, loss_fn, x, labels, compiled):
    """A training step: zero the gradients, the loss, backward, the
    optimizer; compiled: the loss and the optimizer step through
    torch.compile."""
    step_fn = opt.step
    if compiled:
        loss_fn, step_fn = torch.compile(loss_fn), torch.compile(opt.step)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(x, labels)
        loss.backward()
        step_fn()
        return loss
    return step


def torch_cnn_params(u):
    shapes = [((32, 1, 3, 3), 9), ((32,), 9), ((64, 32, 3, 3), 288), ((64,), 288),
              ((64 * 7 * 7, 10), 3136), ((10,), 3136)]
    params = [u(*sh, lo=-fan ** -0.5, hi=fan ** -0.5).requires_grad_(True) for sh, fan in shapes]
    return params


def torch_cnn_forward(params, x):
    c1w, c1b, c2w, c2b, fw, fb = params
    h = F.max_pool2d(torch.relu(F.conv2d(x, c1w, c1b, padding=1)), 2)
    h = F.max_pool2d(torch.relu(F.conv2d(h, c2w, c2b, padding=1)), 2)
    return h.flatten(1) @ fw + fb


def torch_cnn_step(u, compiled=False):
    params = torch_cnn_params(u)
    x = u(CNN_BATCH, 1, 28, 28)
    labels = torch.randint(0, 10, (CNN_BATCH,))
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    return torch_step(opt, lambda x, labels: F.cross_entropy(torch_cnn_forward(params, x), labels),
                      x, labels, compiled)


def torch_compile_workloads():
    """torch.compile (inductor) of the training steps: the loss (forward and,
    through AOTAutograd, backward) and the optimizer step."""
    g = torch.Generator().manual_seed(0)
    u = torch_uniform(g)

    def elementwise_fn(a, b, c):
        return torch.relu(a * b + c) * 0.5 + torch.exp(-a)
    a, b, c = u(BIG), u(BIG), u(BIG)
    ew = torch.compile(elementwise_fn)

    def elementwise():
        with torch.no_grad():
            return ew(a, b, c)
    return {"elementwise": elementwise, "mlp train step": torch_mlp_step(u, g, compiled=True),
            "cnn train step": torch_cnn_step(u, compiled=True)}


# ----------------------------------------------------------------- JAX
def jax_workloads():
    """jax.jit of the same computations (parameters donated to the step)."""
    key = jax.random.PRNGKey(0)
    ks = iter(jax.random.split(key, 64))

    def u(*shape, lo=-1.0, hi=1.0):
        return jax.random.uniform(next(ks), shape, jnp.float32, lo, hi)

    def ready(x):
        return jax.block_until_ready(x)

    a, b, c = u(BIG), u(BIG), u(BIG)
    img = u(*IMG)
    ew = jax.jit(lambda a, b, c: jnp.maximum(a * b + c, 0) * 0.5 + jnp.exp(-a))
    mean0 = jax.jit(lambda x: x.mean(axis=0))
    max1 = jax.jit(lambda x: x.max(axis=-1))
    total = jax.jit(lambda x: x.sum())

    def xent(logits, labels):
        lse = jax.nn.logsumexp(logits, axis=1)
        return jnp.mean(lse - jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0])

    s1, s2 = 784 ** -0.5, HIDDEN ** -0.5
    mlp = [u(784, HIDDEN, lo=-s1, hi=s1), u(HIDDEN, lo=-s1, hi=s1),
           u(HIDDEN, 10, lo=-s2, hi=s2), u(10, lo=-s2, hi=s2)]
    x = u(BATCH, 784)
    labels = jax.random.randint(next(ks), (BATCH,), 0, 10)

    def mlp_loss(p, x, labels):
        w1, b1, w2, b2 = p
        return xent(jnp.maximum(x @ w1 + b1, 0) @ w2 + b2, labels)

    def sgd(loss_fn):
        def step(p, x, labels):
            loss, g = jax.value_and_grad(loss_fn)(p, x, labels)
            return loss, [pi - 0.01 * gi for pi, gi in zip(p, g)]
        return jax.jit(step, donate_argnums=0)
    mlp_step = sgd(mlp_loss)
    state = {"mlp": mlp}

    def train_step():
        loss, state["mlp"] = mlp_step(state["mlp"], x, labels)
        return ready(loss)

    shapes = [((32, 1, 3, 3), 9), ((32,), 9), ((64, 32, 3, 3), 288), ((64,), 288),
              ((64 * 7 * 7, 10), 3136), ((10,), 3136)]
    cnn = [u(*sh, lo=-fan ** -0.5, hi=fan ** -0.5) for sh, fan in shapes]
    cx = u(CNN_BATCH, 1, 28, 28)
    clabels = jax.random.randint(next(ks), (CNN_BATCH,), 0, 10)

    def conv_relu_pool(h, w, bias):
        h = jax.lax.conv_general_dilated(h, w, (1, 1), ((1, 1), (1, 1)),
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
        h = jnp.maximum(h + bias[None, :, None, None], 0)
        return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2),
                                     "VALID")

    def cnn_loss(p, x, labels):
        h = conv_relu_pool(x, p[0], p[1])
        h = conv_relu_pool(h, p[2], p[3])
        return xent(h.reshape(h.shape[0], -1) @ p[4] + p[5], labels)

    def cnn_sgd_momentum():
        def step(p, v, x, labels):
            loss, g = jax.value_and_grad(cnn_loss)(p, x, labels)
            v = [0.9 * vi + gi for vi, gi in zip(v, g)]
            return loss, [pi - 0.01 * vi for pi, vi in zip(p, v)], v
        return jax.jit(step, donate_argnums=(0, 1))
    cnn_step = cnn_sgd_momentum()
    state["cnn"] = (cnn, [jnp.zeros_like(p) for p in cnn])

    def cnn_train_step():
        loss, p, v = cnn_step(*state["cnn"], cx, clabels)
        state["cnn"] = (p, v)
        return ready(loss)

    work = {
        "elementwise": lambda: ready(ew(a, b, c)),
        "mean axis 0": lambda: ready(mean0(img)),
        "max axis -1": lambda: ready(max1(img)),
        "sum": lambda: ready(total(a)),
        "mlp train step": train_step,
        "cnn train step": cnn_train_step,
    }

    def gemm(m, n, k, ta, tb, lr):
        A = u(k, m) if ta else u(m, k)
        B = u(n, k) if tb else u(k, n)
        bias = u(n)
        f = jax.jit(lambda A, B, bias: (
            (jnp.maximum((A.T if ta else A) @ (B.T if tb else B) + bias, 0)) if lr
            else (A.T if ta else A) @ (B.T if tb else B)))
        return lambda: ready(f(A, B, bias))

    for key_, shape in GEMMS.items():
        work[key_] = gemm(*shape)
    return work


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
            out[key] = timeit(fn, key)
        except Exception as e:
            log(f"{name}: {key}: {e}")
    return out


def torch_memory_probe():
    """Run in a fresh process (--memory-probe torch): the resident-set growth
    of the PyTorch MLP step, measured as smelt-bench measures smelt's (from
    just before the first step to the peak over 5 steps, VmHWM reset through
    /proc/self/clear_refs). Prints bytes."""
    def status(field):
        with open("/proc/self/status") as f:
            return int(re.search(field + r":\s+(\d+)", f.read()).group(1)) * 1024
    g = torch.Generator().manual_seed(0)
    step = torch_mlp_step(torch_uniform(g), g)
    torch.ones(64, 64) @ torch.ones(64, 64)  # the thread pool, before the baseline
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = status("VmRSS")
    for _ in range(5):
        step()
    print(status("VmHWM") - base)


def torch_memory():
    """Bytes from a fresh process running torch_memory_probe, or None."""
    cmd = [sys.executable, os.path.abspath(__file__), ARGS.smelt_bench,
           "--threads", str(THREADS), "--memory-probe", "torch"]
    if ARGS.quick:
        cmd.append("--quick")
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           timeout=300)
        return int(p.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


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
    if ARGS.memory_probe:
        torch_memory_probe()
        return
    meta, smelt = run_smelt()
    peers = {}
    if np is not None:
        peers["numpy"] = run_peer("numpy", numpy_workloads)
    else:
        log("numpy does not import: its columns are empty")
    if torch is not None:
        peers["torch"] = run_peer("torch", torch_workloads)
        if not ARGS.no_compile:
            peers["torch.compile"] = run_peer("torch.compile", torch_compile_workloads)
    else:
        log("torch does not import: its columns are empty")
    if jax is not None:
        peers["jax"] = run_peer("jax", jax_workloads)
    else:
        log("jax does not import: its columns are empty")
    torch_mem = torch_memory() if torch is not None and ARGS.target == "cpu" else None

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
    print(f"| JAX | {jax.__version__ if jax is not None else 'not installed'} |")
    print(f"| threads | {THREADS} for everyone (smelt --threads, torch.set_num_threads, "
          f"OMP/OPENBLAS/MKL_NUM_THREADS, CPU affinity) |")
    print(f"| method | {WARMUP} warm-up runs, median of {REPEATS} timed runs "
          f"(5 for products above 1e11 flops) |")
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

    def peer_ms(peer, key):
        return peers.get(peer, {}).get(key, (None,))[0]

    def mine_of(key):
        s = smelt.get(key, {})
        if "error" in s:
            return None, "-", "error: " + s["error"]
        return s.get("median_ms"), s.get("size", "-"), None

    def table(title, keys, cols, extra=None):
        """One table: smelt's time and rate, each peer's time, the ratios."""
        print(f"### {title}\n")
        head = ["workload", "size", "smelt ms", "smelt rate"] + [f"{c} ms" for c in cols] + \
               [f"{c} / smelt" for c in cols] + ([extra[0]] if extra else [])
        print("| " + " | ".join(head) + " |")
        print("|---|---|" + "---:|" * (len(head) - 2))
        for key in keys:
            mine, size, err = mine_of(key)
            times = [peer_ms(c, key) for c in cols]
            if key == "copy (smelt)":  # compared with the peers' copies
                times = [peer_ms(c, "copy (memcpy)") for c in cols]
            if mine is None and err is None and all(t is None for t in times):
                continue
            r = rate(key, mine)
            rate_s = err or (f"{r[0]:.2f} {r[1]}" if r else "-")
            row = [key, size, fmt_ms(mine), rate_s] + [fmt_ms(t) for t in times] + \
                  [ratio(t, mine) for t in times] + ([extra[1](key, mine, times)] if extra else [])
            print("| " + " | ".join(row) + " |")
        print()

    def pct_of(reference, applies=lambda key: True):
        """A column: each rate of the row as a percentage of reference."""
        def column(key, mine, times):
            if not reference or not applies(key):
                return "-"
            parts = []
            for ms in [mine] + times:
                rr = rate(key, ms)
                parts.append(f"{100 * rr[0] / reference:.0f}%" if rr else "-")
            return " / ".join(parts)
        return column

    bw_cols = [p for p in ("numpy", "torch", "jax") if p in peers]
    ew_cols = [p for p in ("numpy", "torch", "torch.compile", "jax") if p in peers]
    table("Memory-bound workloads", ["copy (memcpy)", "copy (smelt)", "elementwise",
                                     "mean axis 0", "max axis -1", "sum"], ew_cols,
          (f"% of copy (smelt / {' / '.join(ew_cols)})",
           pct_of(copy_bw, lambda key: bytes_of(key) and not key.startswith("copy"))))
    peak = smelt.get("fma peak (C)", {}).get("gflop_per_s")

    if "fma peak (C)" in smelt:
        p = smelt["fma peak (C)"]
        if "error" in p:
            print(f"fma peak: error: {p['error']}\n")
        else:
            print(f"Peak f32 FMA rate measured in the same run (`fma peak (C)`, {p['size']}): "
                  f"{p['gflop_per_s']:.1f} GFLOP/s.\n")
    table("Matrix products (f32)", list(GEMMS), bw_cols,
          (f"% of peak (smelt / {' / '.join(bw_cols)})", pct_of(peak)))
    step_cols = [p for p in ("numpy", "torch", "torch.compile", "jax") if p in peers]
    table("Training steps", ["mlp train step", "cnn train step"], step_cols)

    print("Ratios are the peer's median time over smelt's: above 1, smelt is faster. "
          "`copy (smelt)` is the program `y = x` (compared with the peers' copies into a "
          "preallocated buffer); smelt's times are those of `smelt_program_run`. Rates count "
          "logical bytes read and written, or 2mnk flops per product (3x the forward flops "
          "for a training step). `% of copy` divides a rate by the memcpy bandwidth "
          "measured by smelt-bench in the same run. The NumPy training step is written by "
          "hand; PyTorch's uses autograd and torch.optim; torch.compile compiles the loss "
          "(forward and backward) and the optimizer step; JAX jits value_and_grad plus the "
          "update with the parameters donated. `linear+relu` is relu(A B + bias): fused in "
          "smelt's matmul epilogue, sgemm then in-place passes in NumPy, addmm then relu_ "
          "in PyTorch, whatever XLA makes of it in JAX.")
    print()

    cold, cached = smelt.get("compile (cold)"), smelt.get("compile (cached)")
    if cold or cached:
        print("### Compiling the MLP training program (JIT, `smelt_program_get_stats`)\n")
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

    m = smelt.get("mlp step memory")
    if m and "rss_growth_bytes" in m:
        print("### Peak memory of the MLP training step\n")
        print("| | resident-set growth over 5 steps | planned intermediates |")
        print("|---|---:|---:|")
        print(f"| smelt | {m['rss_growth_bytes'] / 1e6:.2f} MB | "
              f"{m['arena_bytes'] / 1e6:.2f} MB arena |")
        if torch_mem is not None:
            print(f"| torch (eager) | {torch_mem / 1e6:.2f} MB | - |")
        print()
        print("Growth of the process's resident set (VmHWM, reset through "
              "/proc/self/clear_refs) from just before the first step to its peak over 5 "
              "steps, each in a fresh process after the parameters and inputs exist: for "
              "smelt that includes making the program from a warm disk cache (the LLJIT, the "
              "arena, the outputs), for PyTorch the gradients, autograd's graph, its "
              "temporaries and the allocator's caching.")
        print()


if __name__ == "__main__":
    main()
