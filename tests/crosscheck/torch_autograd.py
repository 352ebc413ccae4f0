#!/usr/bin/python3
# Cross-check of smelt's gradients against PyTorch's autograd.
#
#   tests/crosscheck/torch_autograd.py SMELTC [-v] [-k SUBSTRING] [--keep DIR]
#
# For every differentiable op and composite of the public API
# (include/smelt/smelt.h) this script writes a smelt text graph (sugar lines,
# as tests/crosscheck/torch_forward.py does) computing
#
#     r = op(inputs)                          the forward value
#     y = sum(r * R)                          R: a fixed random input of r's shape
#     g_j = grad y, x_j                       for every float input x_j
#     v_j = grad r, x_j, R                    the seeded form (a vector-Jacobian product)
#
# so that every element of r matters, and for the cases marked second (third)
# order also
#
#     h_jk = grad sum(g_j * S_j), x_k         S_j: random, of x_j's shape
#     t    = grad sum(h_00 * T), x_0          (third order, one input)
#
# runs the graphs with `smeltc run FILE --input ... --output-dir DIR -q`
# (hundreds of cases batched into a few graph files, run in parallel), and
# compares every output with the same formula in PyTorch (requires_grad
# inputs, torch.autograd.grad, with create_graph for the higher orders), in
# f64 and in f32:
#
#  - dtype and shape must match exactly: a gradient has its input's;
#  - NaN positions and infinities must match exactly;
#  - otherwise |smelt - torch| <= rtol * |torch| + atol with rtol 1e-10 in
#    f64 and 1e-5 in f32, and atol = rtol * scale, scale the largest finite
#    |torch| of that output (the gradient's scale; for y, sum(|r * R|)).
#    An f32 result may match either torch's f32 result or torch's result
#    from the same inputs widened to f64 (smelt accumulates in double, torch
#    in the dtype), and its atol is at least 4 times the largest difference
#    between those two (torch's own f32 error: the output's conditioning;
#    it exceeds rtol * scale in about 20 of 2900 f32 outputs, by at most
#    about 10 times). Two cases widen it on purpose, saying why (tol=).
#
# Inputs are random with broadcasting shapes, size-1 dims and rank 0, and
# place values on purpose at the kinks and ties whose gradients
# docs/autodiff.md specifies: relu and abs at 0, clamp at its bounds,
# maximum/minimum ties (halves), max/min reduction ties (split evenly, as
# torch.amax/amin), max_dim/min_dim (the whole gradient to the first index,
# as torch.max(x, dim)), prod with one and several zeros, pow at 0 and with
# exponent 0.
#
# smelt's text has no max_dim line: it is written as smelt_max_dim builds it
# (argmax keepdim, gather at the index, squeeze). Where smelt documents a
# rule that departs from PyTorch, the case follows the documentation (see
# the cases marked DOCUMENTED: a NaN in a max/min reduction, relu of NaN);
# every other difference is reported as a failure. A few references avoid
# artifacts of torch 1.13 itself (marked "torch 1.13" where they are made).
#
# Prints one line per mismatching output (op, case, inputs, output, first
# mismatching index, smelt vs torch), then 'N passed, M failed' (cases);
# exits 1 when anything failed and 77 (meson's "skipped") when numpy or
# torch cannot be imported. It needs Debian's python3-torch and
# python3-numpy; run it with /usr/bin/python3.
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except Exception as e:  # pragma: no cover - depends on the machine
    print(f"torch_autograd: SKIP: cannot import numpy and torch with {sys.executable}: {e}")
    sys.exit(77)

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
T0 = time.time()

# ------------------------------------------------------------------ dtypes

NP = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, "bool": np.bool_}
NP2S = {np.dtype(v): k for k, v in NP.items()}
T2S = {torch.float32: "f32", torch.float64: "f64", torch.int32: "i32", torch.int64: "i64",
       torch.bool: "bool"}
FLOATS = ["f32", "f64"]
RTOL = {"f32": 1e-5, "f64": 1e-10}
TINY = {"f32": float(np.finfo(np.float32).tiny), "f64": float(np.finfo(np.float64).tiny)}

INF = float("inf")
NAN = float("nan")


def sname(a):
    return NP2S[a.dtype]


def ty(a):
    return f"{sname(a)}[{','.join(str(d) for d in a.shape)}]"


def lst(xs):
    return "[" + ",".join(str(x) for x in xs) + "]"


# ------------------------------------------------------------------ inputs
# Float inputs are made in f64 and rounded to f32 for the f32 variant of a
# case; the values placed on kinks and ties (integers, halves, the clamp
# bounds) are exact in both.

RNG = np.random.default_rng(20240612)


def normal(*shape, scale=1.0):
    return np.array(RNG.standard_normal(shape) * scale, np.float64)


def positive(*shape, lo=0.5, hi=2.5):
    return np.array(RNG.uniform(lo, hi, shape), np.float64)


def nonzero(*shape):
    """|x| in [0.5, 2], either sign: away from poles."""
    return positive(*shape, lo=0.5, hi=2.0) * np.where(RNG.random(shape) < 0.5, -1.0, 1.0)


def ties(*shape, k=3):
    """Small integers: many exact ties."""
    return np.array(RNG.integers(-k, k + 1, shape), np.float64)


def halves(*shape, k=4):
    """Multiples of 0.5 in [-k/2, k/2]: values at 0 and at half-integer bounds."""
    return np.array(RNG.integers(-k, k + 1, shape), np.float64) * 0.5


def with_zeros(*shape, frac=0.3):
    a = normal(*shape)
    a[RNG.random(shape) < frac] = 0.0
    return a


def index(shape, n, dt=np.int64):
    return np.array(RNG.integers(0, n, shape), dt)


def cond(*shape):
    return np.array(RNG.random(shape) < 0.5)


class Keep:
    """A float input whose dtype is fixed (not the case's dtype)."""

    def __init__(self, a):
        self.a = np.asarray(a)


# ------------------------------------------------------------------ torch side


def tgrad(y, xs, create):
    """Gradients of scalar y with respect to xs; zeros where y does not depend
    on an x (smelt's rule; torch's allow_unused gives None)."""
    if not y.requires_grad:
        return [torch.zeros_like(x) for x in xs]
    gs = torch.autograd.grad(y, xs, create_graph=create, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(xs, gs)]


def torch_outputs(fn, args, wrt, W, order):
    """Every output of a case computed by torch, as float64/float32 numpy
    arrays in a dict keyed by output name. args: numpy arrays; W: the random
    weights R, S_j, T."""
    ts = [torch.from_numpy(a.copy()) for a in args]
    for j in wrt:
        ts[j].requires_grad_(True)
    xs = [ts[j] for j in wrt]
    out = fn(*ts)
    res = {"r": out}
    Rt = torch.from_numpy(W["R"].copy())
    y = (out * Rt).sum()
    res["y"] = y
    gs = tgrad(y, xs, order >= 2)
    for j, gj in zip(wrt, gs):
        res[f"g{j}"] = gj
        res[f"v{j}"] = gj
    if order >= 2:
        for j, gj in zip(wrt, gs):
            z = (gj * torch.from_numpy(W[f"S{j}"].copy())).sum()
            hs = tgrad(z, xs, order >= 3)
            for k, hk in zip(wrt, hs):
                res[f"h{j}_{k}"] = hk
        if order >= 3:
            j0 = wrt[0]
            w = (res[f"h{j0}_{j0}"] * torch.from_numpy(W["T"].copy())).sum()
            res["t"] = tgrad(w, [xs[0]], False)[0]
    return {k: v.detach().numpy().copy() for k, v in res.items()}


# ------------------------------------------------------------------ cases


class Case:
    def __init__(self, op, text, args, fn, dt, order, wrt, post, rshape, tol):
        self.op, self.dt, self.order = op, dt, order
        self.tol = tol or {}
        self.text = text.replace("{dt}", dt)
        self.args = []
        for a in args:
            if isinstance(a, Keep):
                a = np.asarray(a.a)
            elif np.asarray(a).dtype.kind == "f":
                a = a.astype(NP[dt])
            self.args.append(np.array(a, order="C"))
        self.desc = ", ".join(f"${j}={ty(a)}" for j, a in enumerate(self.args))
        self.wrt = [j for j, a in enumerate(self.args) if a.dtype.kind == "f"] if wrt is None \
            else list(wrt)
        self.fn, self.post = fn, post
        self.failures = []
        self.checks = 0
        # the forward value's type, for R
        if fn is not None:
            with torch.no_grad():
                r0 = fn(*[torch.from_numpy(a.copy()) for a in self.args])
            rdt, rsh = T2S[r0.dtype], tuple(r0.shape)
        else:
            rdt, rsh = dt, rshape
        W = {"R": normal(*rsh).astype(NP[rdt])}
        if order >= 2:
            for j in self.wrt:
                W[f"S{j}"] = normal(*self.args[j].shape).astype(self.args[j].dtype)
        if order >= 3:
            j0 = self.wrt[0]
            W["T"] = normal(*self.args[j0].shape).astype(self.args[j0].dtype)
        self.W = W
        self.outs = ["r", "y"] + [f"{p}{j}" for j in self.wrt for p in "gv"]
        if order >= 2:
            self.outs += [f"h{j}_{k}" for j in self.wrt for k in self.wrt]
        if order >= 3:
            self.outs += ["t"]
        self.want = self.want_hi = None
        if fn is not None:
            self.want = torch_outputs(fn, self.args, self.wrt, W, order)
            if dt == "f32" or any(a.dtype == np.float32 for a in self.args):
                wide = [a.astype(np.float64) if a.dtype == np.float32 else a for a in self.args]
                Wd = {k: v.astype(np.float64) for k, v in W.items()}
                self.want_hi = torch_outputs(fn, wide, self.wrt, Wd, order)

    def render(self, k):
        # the case's own ids are %c<k>_<id>; the harness's %c<k>__<id>
        p = f"c{k}_"
        q = p + "_"
        self.prefix = p
        lines = [f"input %{p}i{j} : {ty(a)}" for j, a in enumerate(self.args)]
        lines += [f"input %{q}{n} : {ty(a)}" for n, a in self.W.items()]
        body = re.sub(r"%([A-Za-z_][A-Za-z0-9_.]*)", lambda m: "%" + p + m.group(1), self.text)
        body = re.sub(r"\$(\d+)", lambda m: f"%{p}i{m.group(1)}", body)
        lines += [ln.strip() for ln in body.strip().splitlines()]
        lines += [f"%{q}m = mul %{p}r, %{q}R", f"%{q}y = sum %{q}m"]
        for j in self.wrt:
            lines += [f"%{q}g{j} = grad %{q}y, %{p}i{j}", f"%{q}v{j} = grad %{p}r, %{p}i{j}, %{q}R"]
        if self.order >= 2:
            for j in self.wrt:
                lines += [f"%{q}gs{j} = mul %{q}g{j}, %{q}S{j}", f"%{q}z{j} = sum %{q}gs{j}"]
                lines += [f"%{q}h{j}_{k} = grad %{q}z{j}, %{p}i{k}" for k in self.wrt]
        if self.order >= 3:
            j0 = self.wrt[0]
            lines += [f"%{q}hs = mul %{q}h{j0}_{j0}, %{q}T", f"%{q}w = sum %{q}hs",
                      f"%{q}t = grad %{q}w, %{p}i{j0}"]
        lines += [f"output {self.oname(o)} = %{p if o == 'r' else q}{o}" for o in self.outs]
        return lines

    def oname(self, o):
        return f"{self.prefix}{o}" if o == "r" else f"{self.prefix}_{o}"

    def inputs(self, root):
        res = [(f"{self.prefix}i{j}", os.path.join(root, f"{self.prefix}i{j}.npy"))
               for j in range(len(self.args))]
        res += [(f"{self.prefix}_{n}", os.path.join(root, f"{self.prefix}_{n}.npy")) for n in self.W]
        return res

    def save(self, root):
        for j, a in enumerate(self.args):
            np.save(os.path.join(root, f"{self.prefix}i{j}.npy"), a)
        for n, a in self.W.items():
            np.save(os.path.join(root, f"{self.prefix}_{n}.npy"), a)

    def label(self):
        text = "; ".join(ln.strip() for ln in self.text.strip().splitlines())
        return f"{self.op} [{self.dt}]: {text}  ({self.desc or 'no inputs'})"


def out_label(o):
    if o == "r":
        return "forward r"
    if o == "y":
        return "forward y = sum(r*R)"
    if o[0] == "g":
        return f"d y/d ${o[1:]}"
    if o[0] == "v":
        return f"vjp(r, ${o[1:]}, R)"
    if o[0] == "h":
        j, k = o[1:].split("_")
        return f"d/d ${k} of sum(S*dy/d ${j})"
    return "third derivative"


CASES = []


def case(op, text, args, fn, dts=FLOATS, order=1, wrt=None, post=None, rshape=None, tol=None):
    """One check per dtype in dts: `text` is smelt sugar using $0, $1... for
    the inputs `args` (float numpy arrays take the case's dtype, {dt} in the
    text is replaced by it) and defining %r; `fn` computes r in torch.
    tol: {"rtol": dtype name} to use another dtype's rtol (a case whose
    gradient passes through f32 inside an f64 graph); {"scale": s} to floor
    the scale of every output at s (gradients that cancel exactly, as of
    x / x)."""
    for dt in dts:
        CASES.append(Case(op, text, args, fn, dt, order, wrt, post, rshape, tol))


# ------------------------------------------------------------------ comparison


def first_bad(mask):
    i = np.argwhere(mask)[0]
    return tuple(int(x) for x in i)


def scale_of(w):
    fin = np.abs(w[np.isfinite(w)]).astype(np.float64)
    return float(fin.max()) if fin.size else 0.0


def compare(c, o, got, want, want_hi, yscale):
    """None when got matches want (or want_hi); else a message."""
    gdt, wdt = NP2S.get(got.dtype, str(got.dtype)), NP2S.get(want.dtype, str(want.dtype))
    if gdt != wdt:
        return f"dtype: smelt {gdt} vs torch {wdt}"
    if tuple(got.shape) != tuple(want.shape):
        return f"shape: smelt {list(got.shape)} vs torch {list(want.shape)}"
    if got.size == 0:
        return None
    rtol = RTOL[c.tol.get("rtol", wdt)]
    w = want.astype(np.float64)
    scale = yscale if o == "y" else scale_of(w)
    scale = max(scale, c.tol.get("scale", 0.0))
    atol = max(rtol * scale, TINY[wdt])
    refs = [w]
    if want_hi is not None:
        # f32: torch's own f32 error (against the same formula in f64) measures
        # how ill-conditioned the output is; smelt may be off by 4 times that
        h = want_hi.astype(np.float64)
        refs.append(h)
        both = np.isfinite(w) & np.isfinite(h)
        if both.any():
            atol = max(atol, 4 * float(np.abs(w[both] - h[both]).max()))
    g = got.astype(np.float64)
    good = np.zeros(got.shape, bool)
    for ref in refs:
        rn, gn = np.isnan(ref), np.isnan(g)
        inf = np.isinf(ref) | np.isinf(g)
        with np.errstate(invalid="ignore", over="ignore"):
            close = np.abs(g - ref) <= atol + rtol * np.abs(ref)
        good |= np.where(rn | gn, rn & gn, np.where(inf, g == ref, close))
    if not good.all():
        i = first_bad(~good)
        hi = f", f64 reference {want_hi[i]!r}" if want_hi is not None else ""
        return (f"at {i} (of {int((~good).sum())}): smelt {got[i]!r} vs torch {want[i]!r}{hi} "
                f"(rtol {rtol:g}, atol {atol:.3g})")
    return None


def check(c, out):
    got = {}
    for o in c.outs:
        f = os.path.join(out, f"{c.oname(o)}.npy")
        try:
            got[o] = np.load(f)
        except Exception as e:
            c.failures.append(f"{out_label(o)}: cannot load {f}: {e}")
            return
    want, want_hi = c.want, c.want_hi
    if c.post is not None:
        want, want_hi = c.post(got, c.args, c.W), None
    for o in c.outs:
        if o not in want:
            continue
        c.checks += 1
        ys = None
        if o == "y":
            refs = [want["r"]] + ([want_hi["r"]] if want_hi else [])
            ys = max(float(np.nansum(np.abs(r.astype(np.float64) * c.W["R"]))) for r in refs)
        msg = compare(c, o, got[o], want[o], want_hi[o] if want_hi else None, ys)
        if msg:
            c.failures.append(f"{out_label(o)}: {msg}")


# ------------------------------------------------------------------ running


def run_smeltc(smeltc, path, inputs, outdir):
    cmd = [smeltc, "run", path, "--output-dir", outdir, "-q"]
    for name, f in inputs:
        cmd += ["--input", f"{name}={f}"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p.returncode, p.stderr.strip()


class Batch:
    def __init__(self, smeltc, root, tag, cases):
        self.smeltc, self.root, self.tag, self.cases = smeltc, root, tag, cases

    def write(self, cases, tag):
        d = os.path.join(self.root, tag)
        os.makedirs(d, exist_ok=True)
        lines, starts, inputs = ["# torch_autograd cross-check"], [], []
        for c in cases:
            starts.append(len(lines) + 1)
            lines += c.lines
            inputs += c.inputs(self.root)
        path = os.path.join(d, "g.smelt")
        with open(path, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        return path, starts, inputs, d

    def run(self, cases=None, tag=None):
        cases = self.cases if cases is None else cases
        tag = tag or self.tag
        while cases:
            path, starts, inputs, d = self.write(cases, tag)
            out = os.path.join(d, "out")
            rc, err = run_smeltc(self.smeltc, path, inputs, out)
            if rc == 0:
                for c in cases:
                    check(c, out)
                return
            m = re.search(re.escape(path) + r":(\d+):(\d+): (.*)", err)
            if m:
                line = int(m.group(1))
                k = max(j for j, s in enumerate(starts) if s <= line)
                bad = cases[k].lines[line - starts[k]].strip()
                cases[k].failures.append(f"smelt rejects it: {m.group(3)} (at: {bad})")
                cases = cases[:k] + cases[k + 1:]
                continue
            if len(cases) == 1:
                cases[0].failures.append(f"smeltc failed: {err}")
                return
            h = len(cases) // 2
            self.run(cases[:h], f"{tag}a")  # a run-time error: bisect to the case
            self.run(cases[h:], f"{tag}b")
            return


# ================================================================== the cases

# ---------------------------------------------------------------- elementwise unary

SHAPES1 = [(), (1,), (3, 4), (2, 1, 3)]
UNARY = {
    # op: (torch, input maker, order)
    "neg": (torch.neg, normal, 2),
    "abs": (torch.abs, with_zeros, 2),  # abs'(0) = 0
    "exp": (torch.exp, normal, 3),
    "log": (torch.log, positive, 3),
    "sqrt": (torch.sqrt, positive, 2),
    "rsqrt": (torch.rsqrt, positive, 2),
    "reciprocal": (torch.reciprocal, nonzero, 2),
    "sin": (torch.sin, lambda *s: normal(*s, scale=2.0), 3),
    "cos": (torch.cos, lambda *s: normal(*s, scale=2.0), 2),
    "tanh": (torch.tanh, normal, 3),
    "sigmoid": (torch.sigmoid, lambda *s: normal(*s, scale=2.0), 3),
    "relu": (torch.relu, halves, 2),  # relu'(0) = 0
    "gelu": (lambda x: F.gelu(x, approximate="tanh"), lambda *s: normal(*s, scale=2.0), 2),
    "sign": (torch.sign, with_zeros, 1),  # no gradient
    "stop_gradient": (lambda x: x.detach(), normal, 1),  # no gradient
}
for op, (fn, mk, order) in UNARY.items():
    for shape in SHAPES1:
        case(op, f"%r = {op} $0", [mk(*shape)], fn, order=order if shape == (3, 4) else 1)
# NaN operands: |x|' = sign(NaN) = 0 in both
case("abs", "%r = abs $0", [np.array([NAN, 1.0, -2.0, 0.0])], torch.abs)
# composites of the unary ops
case("stop_gradient", "%s = stop_gradient $0\n%r = mul %s, $0", [normal(3, 4)],
     lambda x: x.detach() * x, order=2)
case("unused", "%r = exp $0", [normal(3), normal(2, 2)], lambda x, b: torch.exp(x), order=2)

# ---------------------------------------------------------------- cast

case("cast", "%r = cast $0 dtype=f64", [Keep(normal(3, 4).astype(np.float32))],
     lambda x: x.double(), dts=["f32"])
case("cast", "%r = cast $0 dtype=f32", [Keep(normal(3, 4))], lambda x: x.float(), dts=["f64"])
case("cast", "%c = cast $0 dtype=f64\n%r = mul %c, %c", [Keep(normal(2, 3).astype(np.float32))],
     lambda x: x.double() * x.double(), dts=["f32"], order=2)
case("cast", "%c = cast $0 dtype=f32\n%t = tanh %c\n%r = cast %t dtype=f64", [Keep(normal(5))],
     lambda x: torch.tanh(x.float()).double(), dts=["f64"], order=2, tol={"rtol": "f32"})
# mixed dtypes promote (an implicit cast): the f32 operand's gradient is f32
f32 = lambda a: Keep(np.asarray(a).astype(np.float32))
case("promote", "%r = mul $0, $1", [f32(normal(3, 4)), Keep(normal(4))], torch.mul, dts=["f32"],
     order=2)
case("promote", "%r = where $0, $1, $2", [cond(2, 3), Keep(normal(2, 1)), f32(normal(3))],
     torch.where, dts=["f32"])
case("promote", "%r = matmul $0, $1", [f32(normal(2, 3)), Keep(normal(3, 2))],
     lambda a, b: a.double() @ b, dts=["f32"])
# casts to integers pass no gradient
case("cast", "%c = cast $0 dtype=i64\n%d = cast %c dtype={dt}\n%r = mul %d, $0",
     [normal(3, 4, scale=3.0)], lambda x: x.long().to(x.dtype) * x, order=2)

# ---------------------------------------------------------------- elementwise binary

BIN_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((), (2, 3)), ((2, 3), ()),
              ((), ()), ((2, 1, 3), (4, 1)), ((1,), (3, 1))]
BINARY = {
    "add": (torch.add, normal, normal),
    "sub": (torch.sub, normal, normal),
    "mul": (torch.mul, normal, normal),
    "div": (torch.div, normal, nonzero),
    "pow": (torch.pow, positive, normal),
    "maximum": (torch.maximum, ties, ties),
    "minimum": (torch.minimum, ties, ties),
}
for op, (fn, ma, mb) in BINARY.items():
    for si, (sa, sb) in enumerate(BIN_SHAPES):
        case(op, f"%r = {op} $0, $1", [ma(*sa), mb(*sb)], fn, order=2 if si < 3 else 1)
# ties between equal-shape operands: maximum/minimum give gy/2 to each side
for op in ("maximum", "minimum"):
    a = halves(4, 5)
    b = np.where(RNG.random((4, 5)) < 0.5, a, halves(4, 5))
    case(op, f"%r = {op} $0, $1", [a, b], BINARY[op][0])
    case(op, f"%r = {op} $0, $0", [a], lambda x, f=BINARY[op][0]: f(x, x))
    # a literal operand, with ties at it
    case(op, f"%r = {op} $0, 0", [halves(3, 4)],
         lambda x, f=BINARY[op][0]: f(x, torch.zeros((), dtype=x.dtype)))
    case(op, f"%r = {op} 0.5, $0", [halves(3, 4)],
         lambda x, f=BINARY[op][0]: f(torch.full((), 0.5, dtype=x.dtype), x))
    # NaN operands get the gradient on both sides (documented, as PyTorch)
    case(op, f"%r = {op} $0, $1", [np.array([NAN, 1.0, NAN, 2.0]), np.array([1.0, NAN, NAN, 2.0])],
         BINARY[op][0])
# the same input on both sides of the other binaries
for op in ("add", "sub", "mul", "div"):
    # (x / x: the two terms of the gradient, about |R / x|, cancel exactly)
    case(op, f"%r = {op} $0, $0", [nonzero(3, 2)], lambda x, f=BINARY[op][0]: f(x, x), order=2,
         tol={"scale": 10.0} if op == "div" else None)
# literals on either side
for op, lit in [("add", 2.5), ("sub", 1.5), ("mul", -3.0), ("div", 0.5)]:
    f = BINARY[op][0]
    case(op, f"%r = {op} $0, {lit}", [nonzero(3, 4)], lambda x, f=f, v=lit: f(x, v), order=2)
    case(op, f"%r = {op} {lit}, $0", [nonzero(3, 4)],
         lambda x, f=f, v=lit: f(torch.full((), v, dtype=x.dtype), x), order=2)

# pow: tensor exponents and literal exponents, at 0, with exponent 0, negative bases
case("pow", "%r = pow $0, $1", [positive(3, 4), normal(3, 4)], torch.pow, order=3, wrt=[0])
case("pow", "%r = pow $0, $1", [positive(3, 4), normal(3, 4)], torch.pow, order=3, wrt=[1])
# (first order only: torch 1.13's second derivatives at a zero base are NaN,
# from 0 * log(0) in the masked branch of its where; smelt's are 0)
case("pow", "%r = pow $0, $1", [np.array([0.0, 0.0, 0.0, 2.0, 0.0, 3.0]),
                                np.array([2.0, 0.0, 1.0, 0.0, 3.5, 2.0])], torch.pow)
# negative base, integer exponents: finite d/da, NaN d/db (log of a negative)
case("pow", "%r = pow $0, $1", [np.array([-2.0, -1.5, -0.5, 1.5]), np.array([3.0, 2.0, -1.0, 2.0])],
     torch.pow)
# a zero base with a negative exponent: inf, and d/db NaN (0 * -inf)
case("pow", "%r = pow $0, $1", [np.array([0.0, 0.0]), np.array([-1.0, -2.0])], torch.pow)
for lit in [2, 3, 0.5, -1, -2.5, 0, 1, 1.5]:
    # at x = 0 as well (0 ** -1 and 0 ** -2.5 are inf, their gradients -inf/inf)
    x = np.concatenate([positive(5), [0.0]])
    case("pow", f"%r = pow $0, {lit}", [x], lambda t, v=lit: torch.pow(t, v),
         order=3 if lit in (3, 0.5) else 2)
    case("pow", f"%r = pow $0, {lit}", [nonzero(2, 3)] if isinstance(lit, int) else [positive(2, 3)],
         lambda t, v=lit: torch.pow(t, v), order=2)
for lit in [2.0, 0.5, 0.0, 1.0]:
    # a literal base: d/dx = y log(base), 0 for base 0 and x >= 0
    x = np.concatenate([normal(5), [0.0, 1.0]]) if lit else np.array([0.0, 1.0, 2.5, 0.5])
    case("pow", f"%r = pow {lit}, $0", [x],
         lambda t, v=lit: torch.pow(torch.full((), v, dtype=t.dtype), t),
         order=2 if lit else 1)  # (the same torch 1.13 artifact at base 0)

# where: the condition (bool) passes no gradient; broadcasting of all three
for sc, sa, sb in [((3, 4), (3, 4), (3, 4)), ((3, 1), (4,), ()), ((), (2, 3), (2, 1)),
                   ((2, 1, 3), (1, 4, 1), (3,))]:
    case("where", "%r = where $0, $1, $2", [cond(*sc), normal(*sa), normal(*sb)], torch.where,
         order=2 if sa == (3, 4) else 1)
case("where", "%r = where $0, $1, 2.5", [cond(3, 4), normal(4)],
     lambda c, a: torch.where(c, a, torch.full((), 2.5, dtype=a.dtype)))
case("where", "%r = where $0, 0, $1", [cond(3, 4), normal(3, 1)],
     lambda c, a: torch.where(c, torch.zeros((), dtype=a.dtype), a))
case("where", "%c = gt $0, 0\n%e = exp $0\n%r = where %c, %e, $0", [normal(3, 4)],
     lambda x: torch.where(x > 0, torch.exp(x), x), order=2)

# clamp: the gradient passes where lo <= x <= hi, bounds included (as torch)
for lo, hi in [(-1, 2), (-0.5, 1.5), (2, 1), (None, 0), (0.5, None), (1, 1), (-1.5, 0.25)]:
    attrs = (f" lo={lo}" if lo is not None else "") + (f" hi={hi}" if hi is not None else "")
    tl, th = -INF if lo is None else lo, INF if hi is None else hi
    for shape in [(4, 5), ()]:
        x = halves(*shape) if lo != -1.5 else np.array(np.clip(halves(*shape), -2, 2) / 8)
        if hi == 0.25 and shape:
            x.flat[0], x.flat[1] = 0.25, -1.5
        case("clamp", f"%r = clamp $0{attrs}", [x], lambda t, tl=tl, th=th: torch.clamp(t, tl, th),
             order=2 if shape else 1)
# NaN: outside lo <= x <= hi, so no gradient (docs/autodiff.md, smelt.h: as torch.clamp)
case("clamp", "%r = clamp $0 lo=-1 hi=1", [np.array([NAN, 0.5, 2.0, -1.0])],
     lambda t: torch.clamp(t, -1, 1))
case("clamp", "%t = tanh $0\n%c = clamp %t lo=-0.5 hi=0.5\n%r = mul %c, $0", [normal(3, 4)],
     lambda x: torch.clamp(torch.tanh(x), -0.5, 0.5) * x, order=2)

# ---------------------------------------------------------------- reductions

RED_SHAPES = [((3, 4, 5), [None, [0], [-1], [1], [0, 2], [0, 1, 2]]),
              ((1, 6), [None, [0], [1]]),
              ((7,), [None, [0]]),
              ((), [None, [0]]),
              ((2, 3, 1, 4), [[1, 3], [-2], [2]])]


def axes_attr(axes):
    return "" if axes is None else f" axes={lst(axes)}"


def tdims(axes, rank):
    return tuple(range(rank)) if axes is None else tuple(axes)


def t_prod(x, axes, keepdim):
    if axes is None:
        # torch.prod(x) without a dim has a wrong second derivative with two
        # zeros or more in torch 1.13 (its backward returns zeros there, which
        # are constant); the one-dim kernel's (cumulative products) is exact
        r = torch.prod(x.reshape(-1), 0)
        return r.reshape((1,) * x.dim()) if keepdim else r
    if x.dim() == 0:
        return torch.prod(x, 0, keepdim=keepdim)
    dims = sorted(a % x.dim() for a in axes)
    r = x
    for a in reversed(dims):
        r = torch.prod(r, a, keepdim=True)
    if not keepdim:
        for a in reversed(dims):
            r = r.squeeze(a)
    return r


def t_red(name, x, axes, keepdim, corr=None):
    d = tdims(axes, x.dim())
    if name == "sum":
        return torch.sum(x, dim=d, keepdim=keepdim)
    if name == "mean":
        return torch.mean(x, dim=d, keepdim=keepdim)
    if name == "prod":
        return t_prod(x, axes, keepdim)
    if name == "max":
        return torch.amax(x, dim=d, keepdim=keepdim)
    if name == "min":
        return torch.amin(x, dim=d, keepdim=keepdim)
    if name == "logsumexp":
        if x.dim() == 0:
            return torch.logsumexp(x, dim=d if axes else ())
        return torch.logsumexp(x, dim=d, keepdim=keepdim)
    if name in ("var", "std"):
        f = torch.var if name == "var" else torch.std
        return f(x, dim=d if x.dim() or axes else None, correction=corr, keepdim=keepdim)
    raise ValueError(name)


RED_INPUT = {"sum": normal, "mean": normal, "prod": lambda *s: nonzero(*s) * 0.9,
             "max": ties, "min": ties, "logsumexp": lambda *s: normal(*s, scale=2.0)}
RED_ORDER2 = {"prod", "logsumexp", "mean"}
for name, mk in RED_INPUT.items():
    for shape, axsets in RED_SHAPES:
        for ai, axes in enumerate(axsets):
            for keepdim in (False, True) if ai % 2 == 0 else (False,):
                kd = " keepdim" if keepdim else ""
                order = 2 if name in RED_ORDER2 and shape == (3, 4, 5) else 1
                case(name, f"%r = {name} $0{axes_attr(axes)}{kd}", [mk(*shape)],
                     lambda x, n=name, axes=axes, k=keepdim: t_red(n, x, axes, k), order=order)
# prod with zeros: one zero in a slice (the product of the others there, 0
# elsewhere), two zeros (0 everywhere), all zeros
p = nonzero(4, 5)
p[0, 1] = 0.0                    # row 0: one zero
p[1, 0] = p[1, 3] = 0.0          # row 1: two zeros
p[3, :] = 0.0                    # row 3: all zero
for axes in ([1], [0], None, [0, 1]):
    case("prod", f"%r = prod $0{axes_attr(axes)}", [p],
         lambda x, axes=axes: t_prod(x, axes, False), order=2)
q = nonzero(6)
q[2] = 0.0
case("prod", "%r = prod $0", [q], lambda x: t_prod(x, None, False), order=2)
case("prod", "%r = prod $0 axes=[1] keepdim", [with_zeros(3, 4, 2, frac=0.15)],
     lambda x: torch.prod(x, 1, keepdim=True), order=2)
# third derivatives with no, one and two zeros; a rank-0 zero
for zs in ([], [1], [0, 3]):
    q = nonzero(5)
    q[zs] = 0.0
    case("prod", "%r = prod $0", [q], lambda x: t_prod(x, None, False), order=3)
case("prod", "%r = prod $0", [np.array(0.0)], lambda x: t_prod(x, None, False), order=2)
# max/min with ties everywhere: the gradient is split evenly (torch.amax)
for name in ("max", "min"):
    t = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [-1.0, 5.0, -1.0, 5.0]])
    for axes in ([1], [0], None):
        case(name, f"%r = {name} $0{axes_attr(axes)}", [t],
             lambda x, n=name, axes=axes: t_red(n, x, axes, False))
    tf = torch.max if name == "max" else torch.min
    case(name, f"%r = {name} $0", [np.array([[1.0, 2.0], [3.0, 3.0]])], lambda x, tf=tf: tf(x))
    # DOCUMENTED (docs/autodiff.md, tie rules): a NaN among the reduced
    # elements makes the result NaN, which no element equals, so the slice
    # gets no gradient (torch 1.13: amax gives NaN, max() sends it to the NaNs)
    tr = torch.amax if name == "max" else torch.amin
    case(name, f"%r = {name} $0", [np.array([1.0, NAN, 3.0, NAN])],
         lambda x, tr=tr: tr(torch.where(torch.isnan(x).any(), x.detach(), x)))
    case(name, f"%r = {name} $0 axes=[1]", [np.array([[1.0, NAN, 3.0, NAN], [2.0, 2.0, 0.0, 1.0],
                                                      [NAN, 0.0, 1.0, 2.0]])],
         lambda x, tr=tr: tr(torch.where(torch.isnan(x).any(1, keepdim=True), x.detach(), x), 1))
# max_dim / min_dim values: the whole gradient to the first maximum (torch.max(x, dim))
for name, arg, tf in (("max_dim", "argmax", torch.max), ("min_dim", "argmin", torch.min)):
    for shape, axes in [((3, 4, 5), [0, 1, 2, -1]), ((1, 6), [0, 1]), ((7,), [0]), ((2, 1, 3), [1])]:
        for ax in axes:
            for keepdim in (False, True):
                text = f"%i = {arg} $0 axis={ax} keepdim\n"
                if keepdim:
                    text += f"%r = gather $0, %i axis={ax}"
                else:
                    text += f"%v = gather $0, %i axis={ax}\n%r = squeeze %v axes=[{ax}]"
                case(name, text, [ties(*shape, k=2)],
                     lambda x, tf=tf, ax=ax, k=keepdim: tf(x, ax, keepdim=k).values)
    # NaN is the maximum and the minimum: the first NaN is selected
    case(name, f"%i = {arg} $0 axis=1 keepdim\n%v = gather $0, %i axis=1\n%r = squeeze %v axes=[1]",
         [np.array([[1.0, NAN, 3.0, NAN], [2.0, 2.0, 0.0, 1.0], [NAN, 0.0, 1.0, 2.0]])],
         lambda x, tf=tf: tf(x, 1).values)
# var / std with corrections; std of a constant slice
for name in ("var", "std"):
    for shape, axsets in RED_SHAPES:
        for axes in axsets:
            for corr in (None, 0, 1, 2):
                n = int(np.prod([shape[a] for a in tdims(axes, len(shape))])) if shape else 1
                c = 1 if corr is None else corr
                if n - c <= 0:
                    continue  # divisor <= 0: inf/NaN (see torch_forward)
                keepdim = corr == 2
                ctext = "" if corr is None else f" correction={corr}"
                case(name, f"%r = {name} $0{axes_attr(axes)}{ctext}{' keepdim' if keepdim else ''}",
                     [normal(*shape) + 3.0],
                     lambda x, nm=name, axes=axes, c=c, k=keepdim: t_red(nm, x, axes, k, c),
                     order=2 if shape == (3, 4, 5) and corr in (None, 0) else 1)
    # a constant slice: var' = 0; std = 0 there, and torch's std gradient is 0 (not 0/0)
    x = normal(3, 4)
    x[1, :] = 1.5
    case(name, f"%r = {name} $0 axes=[1]", [x], lambda t, nm=name: t_red(nm, t, [1], False, 1))
# logsumexp with -inf and +inf entries (a gradient of 0 at -inf; NaN where torch has NaN)
lse = np.array([[-INF, 0.5, 1.0], [2.0, -INF, -INF], [0.0, 1.0, INF], [1000.0, 999.0, -1000.0]])
for axes in ([1], [0]):
    case("logsumexp", f"%r = logsumexp $0 axes={lst(axes)}", [lse],
         lambda x, axes=axes: torch.logsumexp(x, axes))

# ---------------------------------------------------------------- views

x = normal(2, 3, 4)
for shp in [[4, 6], [-1], [2, -1, 2], [1, 2, 1, 12], [3, 8, 1]]:
    case("reshape", f"%r = reshape $0 shape={lst(shp)}", [x], lambda t, s=shp: t.reshape(s))
for src, shp in [((), [1, 1]), ((1,), [])]:
    case("reshape", f"%r = reshape $0 shape={lst(shp)}", [normal(*src)], lambda t, s=shp: t.reshape(s))
for perm in [[2, 0, 1], [1, 0, 2], [-1, -3, -2]]:
    case("permute", f"%r = permute $0 perm={lst(perm)}", [x], lambda t, p=perm: t.permute(p))
for a0, a1 in [(0, 2), (1, -1)]:
    case("transpose", f"%r = transpose $0 axis0={a0} axis1={a1}", [x],
         lambda t, a0=a0, a1=a1: t.transpose(a0, a1))
for src, shp in [((3, 1), [3, 4]), ((3, 1), [2, 3, 5]), ((1, 4), [-1, 4]), ((), [2, 3]),
                 ((2, 1, 1), [4, 2, -1, 3]), ((1,), [5]), ((1, 1), [1, 1])]:
    a = normal(*src)
    case("expand", f"%r = expand $0 shape={lst(shp)}", [a], lambda t, s=shp: t.expand(*s))
    if -1 not in shp:
        case("broadcast_to", f"%r = broadcast_to $0 shape={lst(shp)}", [a],
             lambda t, s=shp: torch.broadcast_to(t, s))
yq = normal(1, 3, 1, 4, 1)
case("squeeze", "%r = squeeze $0", [yq], lambda t: t.squeeze())
case("squeeze", "%r = squeeze $0 axes=[0,2]", [yq], lambda t: t.squeeze(2).squeeze(0))
for ax in [0, 2, -1]:
    case("unsqueeze", f"%r = unsqueeze $0 axis={ax}", [x], lambda t, a=ax: t.unsqueeze(a))
case("unsqueeze", "%r = unsqueeze $0 axis=0", [normal()], lambda t: t.unsqueeze(0))
for s, e in [(0, -1), (1, 2), (0, 1)]:
    case("flatten", f"%r = flatten $0 start_axis={s} end_axis={e}", [x],
         lambda t, s=s, e=e: torch.flatten(t, s, e))
# slices: steps, negative and out-of-range bounds, empty results
z = normal(6, 5, 4)
for ax, st, sp, stp in [(0, 1, 5, 2), (1, -3, None, 1), (2, -100, 100, 3), (0, 4, 2, 1),
                        (-1, None, -1, 1), (0, -2, -1, 5), (1, 0, None, 7), (0, 0, None, 4),
                        (1, 1, None, 2), (2, 3, None, 2)]:
    attrs = f" axis={ax}" + (f" start={st}" if st is not None else "") + \
        (f" stop={sp}" if sp is not None else "") + f" step={stp}"
    sl = [slice(None)] * 3
    sl[ax] = slice(st, sp, stp)
    case("slice", f"%r = slice $0{attrs}", [z], lambda t, sl=tuple(sl): t[sl])
for st, sp, stp in [([0, 1, -3], [6, -1, 4], [2, 2, 1]), ([-1, -5, 0], [6, 5, 4], [1, 3, 4]),
                    ([1, 0, 1], [6, 5, 4], [3, 2, 2]), ([5, 0, 1], [1, 5, 3], [1, 1, 1])]:
    sl = tuple(slice(a, b, c) for a, b, c in zip(st, sp, stp))
    case("slice", f"%r = slice $0 start={lst(st)} stop={lst(sp)} step={lst(stp)}", [z],
         lambda t, sl=sl: t[sl])
for axes in [[0], [-1], [0, 2]]:
    case("flip", f"%r = flip $0 axes={lst(axes)}", [z], lambda t, a=axes: torch.flip(t, a))
# pad: smelt lists (lo, hi) in axis order, torch from the last axis
for lo, hi, v in [([0, 1, 0], [1, 0, 2], 0.0), ([2, 0, 1], [0, 3, 1], -1.5), ([1, 1, 1], [1, 1, 1], 2.0)]:
    pads = []
    for a in reversed(range(3)):
        pads += [lo[a], hi[a]]
    case("pad", f"%r = pad $0 lo={lst(lo)} hi={lst(hi)} value={v}", [x],
         lambda t, p=pads, v=v: F.pad(t, p, value=v))
case("pad", "%r = pad $0 lo=[2] hi=[1] value=0", [normal(3)], lambda t: F.pad(t, [2, 1]))
# concat / stack, the same input twice (its gradients add)
case("concat", "%r = concat $0, $1 axis=1", [normal(2, 3), normal(2, 1)],
     lambda s, t: torch.cat([s, t], 1))
case("concat", "%r = concat $0, $1, $0 axis=-2", [normal(2, 3), normal(4, 3)],
     lambda s, t: torch.cat([s, t, s], -2))
case("concat", "%r = concat $0, $1 axis=0", [normal(3), normal(1)], lambda s, t: torch.cat([s, t]))
case("concat", "%r = concat $0 axis=0", [normal(3, 2)], lambda s: torch.cat([s], 0))
for ax in [0, 1, -1]:
    case("stack", f"%r = stack $0, $1, $2 axis={ax}", [normal(2, 3), normal(2, 3), normal(2, 3)],
         lambda *ts, ax=ax: torch.stack(ts, ax))
case("stack", "%r = stack $0, $1, $0", [normal(), normal()], lambda s, t: torch.stack([s, t, s]))
# chains of views: strided, flipped, expanded and padded operands
case("chain", "%t = transpose $0 axis0=0 axis1=2\n%s = slice %t axis=1 start=1 step=2\n%r = mul %s, %s",
     [normal(4, 5, 6)], lambda a: a.transpose(0, 2)[:, 1::2] ** 2, order=2)
case("chain", "%e = expand $1 shape=[4,6,5]\n%p = permute %e perm=[0,2,1]\n%r = mul $0, %p",
     [normal(4, 5, 6), normal(6, 5)], lambda a, b: a * b.expand(4, 6, 5).permute(0, 2, 1), order=2)
case("chain", "%p = pad $0 lo=[1,0] hi=[0,2] value=3\n%q = flip %p axes=[0,1]\n%s = slice %q step=[2,3]"
     "\n%r = exp %s", [normal(6, 5)],
     lambda b: torch.exp(torch.flip(F.pad(b, [0, 2, 1, 0], value=3), [0, 1])[::2, ::3]), order=2)

# ---------------------------------------------------------------- matmul

MM_SHAPES = [((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
             ((2, 3), (5, 3, 4)), ((3,), (5, 3, 4)), ((5, 2, 3), (3,)), ((2, 1, 2, 3), (4, 3, 5)),
             ((1, 2, 3), (6, 3, 1)), ((2, 0), (0, 3)), ((0, 3), (3, 4)), ((1, 1), (1, 1)),
             ((3, 1, 4, 5), (1, 2, 5, 2)), ((1, 4), (4, 1))]
for sa, sb in MM_SHAPES:
    case("matmul", "%r = matmul $0, $1", [normal(*sa), normal(*sb)], torch.matmul,
         order=2 if sa in ((2, 3), (5, 2, 3), (3,)) else 1)
# chains
case("matmul", "%t = matmul $0, $1\n%r = matmul %t, $2", [normal(2, 3), normal(3, 4), normal(4, 2)],
     lambda a, b, c: (a @ b) @ c, order=2)
case("matmul", "%t = matmul $0, $1\n%h = tanh %t\n%r = matmul %h, $2",
     [normal(2, 3, 3), normal(3, 4), normal(4)], lambda a, b, c: torch.tanh(a @ b) @ c, order=2)
case("matmul", "%t = matmul $0, $0\n%r = matmul %t, $0", [normal(3, 3) * 0.5],
     lambda a: a @ a @ a, order=3)
case("matmul", "%t = transpose $0 axis0=0 axis1=1\n%r = matmul $0, %t", [normal(3, 4)],
     lambda a: a @ a.t(), order=2)

# ---------------------------------------------------------------- indexing

x = normal(3, 4, 5)
for it in (np.int64, np.int32):
    for ax, ishape in [(0, (2, 4, 5)), (1, (3, 7, 2)), (2, (1, 2, 5)), (-1, (3, 4, 0)), (1, (3, 1, 1))]:
        case("gather", f"%r = gather $0, $1 axis={ax}", [x, index(ishape, x.shape[ax], it)],
             lambda t, i, ax=ax: torch.gather(t, ax, i.long()))
    for ax, ishape in [(1, (3, 2, 1)), (0, (6, 1, 5)), (2, (1, 4, 3)), (-2, (1, 1, 1))]:
        case("take_along_axis", f"%r = take_along_axis $0, $1 axis={ax}",
             [x, index(ishape, x.shape[ax], it)],
             lambda t, i, ax=ax: torch.take_along_dim(t, i.long(), ax))
    for ax, ishape in [(0, (5,)), (1, (6,)), (-1, (0,)), (2, ())]:
        case("index_select", f"%r = index_select $0, $1 axis={ax}", [x, index(ishape, x.shape[ax], it)],
             lambda t, i, ax=ax: torch.index_select(t, ax, i))
    w = normal(6, 3)
    for ishape in [(4,), (2, 3), (), (7, 2)]:
        case("embedding", "%r = embedding $0, $1", [w, index(ishape, 6, it)],
             lambda t, i: F.embedding(i.long(), t))
# take_along_axis broadcasts x against the index: the gradient sums back
case("take_along_axis", "%r = take_along_axis $0, $1 axis=2", [normal(3, 1, 5), index((3, 4, 2), 5)],
     lambda t, i: torch.take_along_dim(t, i, 2))
case("take_along_axis", "%r = take_along_axis $0, $1 axis=0", [normal(4, 1), index((2, 3), 4)],
     lambda t, i: torch.take_along_dim(t, i, 0))
# scatter_add (the primitive; smelt_scatter_add is x + it): gradients to x and src
for ax, ishape in [(1, (3, 6, 5)), (0, (5, 2, 3)), (2, (3, 4, 7))]:
    case("scatter_add", f"%s = scatter_add $1, $2 axis={ax} : {{dt}}[3,4,5]\n%r = add $0, %s",
         [normal(3, 4, 5), index(ishape, x.shape[ax]), normal(*ishape)],
         lambda t, i, s, ax=ax: t.scatter_add(ax, i, s))
case("gather", "%g = gather $0, $1 axis=1\n%r = mul %g, %g", [normal(3, 4), index((3, 6), 4)],
     lambda t, i: torch.gather(t, 1, i) ** 2, order=2)

# ---------------------------------------------------------------- nn

for shape, axes in [((3, 5), [1, 0, -1]), ((2, 3, 4), [2, 1, -3]), ((7,), [0]), ((2, 1), [1]), ((), [0])]:
    for ax in axes:
        order = 2 if shape == (3, 5) else 1
        case("softmax", f"%r = softmax $0 axis={ax}", [normal(*shape, scale=2.0)],
             lambda t, ax=ax: torch.softmax(t, ax), order=order)
        case("log_softmax", f"%r = log_softmax $0 axis={ax}", [normal(*shape, scale=2.0)],
             lambda t, ax=ax: F.log_softmax(t, ax), order=order)
# masked rows: -inf logits get no gradient
e = np.array([[-INF, 0.5, 1.0], [1000.0, 999.0, -1000.0], [2.0, 2.0, 2.0]])
case("softmax", "%r = softmax $0 axis=1", [e], lambda t: torch.softmax(t, 1))
case("log_softmax", "%r = log_softmax $0 axis=1", [e], lambda t: F.log_softmax(t, 1))
for it in (np.int64, np.int32):
    for n, c in [(4, 3), (1, 5), (8, 1)]:
        case("cross_entropy", "%r = cross_entropy $0, $1", [normal(n, c, scale=3.0), index((n,), c, it)],
             lambda l, y: F.cross_entropy(l, y.long()), order=2 if (n, c) == (4, 3) else 1)
    case("cross_entropy", "%r = cross_entropy $0, $1", [normal(4), index((), 4, it)],
         lambda l, y: F.cross_entropy(l, y.long()))
case("cross_entropy", "%r = cross_entropy $0, $1", [np.array([[0.0, -INF, 1.0], [50.0, 60.0, 70.0]]),
                                                   np.array([2, 0])],
     lambda l, y: F.cross_entropy(l, y))
for sa, sb in [((3, 4), (3, 4)), ((3, 4), (4,)), ((), (2, 3)), ((2, 1), (1, 3))]:
    case("mse_loss", "%r = mse_loss $0, $1", [normal(*sa), normal(*sb)],
         lambda s, t: F.mse_loss(s, t), order=2 if sa == (3, 4) else 1)
case("mse_loss", "%r = mse_loss $0, $1", [Keep(normal(3).astype(np.float32)), Keep(normal(3))],
     lambda s, t: F.mse_loss(s.double(), t), dts=["f32"])
case("gelu", "%r = gelu $0", [np.array([0.0, -3.0, 3.0, -0.5, 0.5, 10.0, -10.0])],
     lambda t: F.gelu(t, approximate="tanh"), order=2)
case("relu", "%r = relu $0", [np.array([0.0, -0.0, 1.0, -1.0, 0.5])], torch.relu, order=2)
# DOCUMENTED (docs/autodiff.md: relu passes gy where y > 0, else 0): relu(NaN)
# gets no gradient (torch 1.13's threshold_backward passes it: NaN <= 0 is false)
case("relu", "%r = relu $0", [np.array([NAN, 1.0, -1.0, 0.0])],
     lambda x: torch.where(x > 0, x, torch.relu(x.detach())))
case("dropout", "%r = dropout $0 p=0.5", [normal(3, 4)], lambda t: F.dropout(t, 0.5, training=False))
case("dropout", "%r = dropout $0 p=0 training", [normal(3, 4)],
     lambda t: F.dropout(t, 0.0, training=True))


def dropout_post(p):
    """torch's dropout mask is not smelt's (other generators): the reference is
    built from smelt's forward value, r = x / (1 - p) where kept."""
    def post(got, args, W):
        x = args[0]
        s = x.dtype.type(1.0 / (1.0 - p))
        kept = got["r"] != 0
        g = np.where(kept, W["R"] * s, 0).astype(x.dtype)
        return {"r": np.where(kept, x * s, 0).astype(x.dtype), "g0": g, "v0": g,
                "h0_0": np.zeros_like(x)}
    return post


case("dropout", "%r = dropout $0 p=0.3 seed=5 training", [positive(20, 30)], None,
     post=dropout_post(0.3), rshape=(20, 30), order=2)

# small models: an MLP with a cross-entropy loss, attention, a normalization
case("mlp", "%h = matmul $0, $1\n%a = add %h, $2\n%z = relu %a\n%o = matmul %z, $3\n"
     "%r = cross_entropy %o, $4",
     [normal(5, 4), normal(4, 6), normal(6), normal(6, 3), index((5,), 3)],
     lambda x, w1, b1, w2, y: F.cross_entropy(torch.relu(x @ w1 + b1) @ w2, y), order=2)
case("attention", "%kt = transpose $1 axis0=-1 axis1=-2\n%s = matmul $0, %kt\n%t = mul %s, 0.5\n"
     "%p = softmax %t axis=-1\n%r = matmul %p, $2", [normal(2, 3, 4), normal(2, 5, 4), normal(2, 5, 4)],
     lambda q, k, v: torch.softmax(q @ k.transpose(-1, -2) * 0.5, -1) @ v, order=2)
case("layernorm", "%m = mean $0 axes=[-1] keepdim\n%d = sub $0, %m\n%v = var $0 axes=[-1] correction=0 keepdim\n"
     "%e = add %v, 1e-5\n%s = rsqrt %e\n%n = mul %d, %s\n%w = mul %n, $1\n%r = add %w, $2",
     [normal(4, 6), normal(6), normal(6)],
     lambda x, w, b: F.layer_norm(x, (6,), w, b, eps=1e-5), order=2)
case("mul_chain", "%a = mul $0, $0\n%b = mul %a, $1\n%r = mul %b, $0", [normal(3, 4), normal(4)],
     lambda x, y: x * x * y * x, order=3, wrt=[0])
case("mul_chain", "%a = mul $0, $0\n%b = mul %a, $1\n%r = mul %b, $0", [normal(3, 4), normal(4)],
     lambda x, y: x * x * y * x, order=2)
case("x^3", "%a = mul $0, $0\n%r = mul %a, $0", [normal(5)], lambda x: x * x * x, order=3)


# ---------------------------------------------------------------- convolution and pooling
# unfold's gradient sums the overlapping windows; conv2d's comes from its
# unfolds and matmul; max_pool2d sends each window's gradient to its first
# maximum (inputs with many ties: torch's CPU kernel also keeps the first,
# scanning the window row by row); avg_pool2d divides by PyTorch's divisor;
# batch_norm in training (batch statistics, gradients through them) and
# with running statistics (training=false). The running statistics get no
# gradient (torch has none for them), so wrt leaves them out.


def pair(v):
    return str(v) if isinstance(v, int) else lst(v)


x = normal(3, 7, 4)
for ax, size, step in [(1, 3, 1), (1, 3, 2), (1, 2, 3), (1, 7, 1), (-1, 2, 2), (0, 1, 1), (2, 4, 4),
                       (1, 5, 2)]:
    case("unfold", f"%r = unfold $0 axis={ax} size={size} step={step}", [x],
         lambda t, a=ax, sz=size, p=step: t.unfold(a, sz, p), order=2 if step == 2 else 1)
case("unfold", "%r = unfold $0 axis=1 size=0 step=2", [x], lambda t: t.unfold(1, 0, 2))
# nonlinear: second and third derivatives through the gradient of unfold
case("unfold", "%u = unfold $0 axis=1 size=3 step=2\n%r = mul %u, %u", [x],
     lambda t: t.unfold(1, 3, 2) ** 2, order=3)
case("unfold", "%u = unfold $0 axis=0 size=4 step=1\n%s = sin %u\n%r = mul %s, %u", [normal(6)],
     lambda t: torch.sin(t.unfold(0, 4, 1)) * t.unfold(0, 4, 1), order=3)
case("unfold", "%u = unfold $0 axis=1 size=3 step=2\n%r = unfold %u axis=2 size=2 step=1", [x],
     lambda t: t.unfold(1, 3, 2).unfold(2, 2, 1), order=2)
case("unfold", "%p = pad $0 lo=[0,2,1] hi=[0,1,0] value=0.5\n%u = unfold %p axis=1 size=3 step=2\n"
     "%r = mul %u, %u", [x], lambda t: F.pad(t, [1, 0, 2, 1], value=0.5).unfold(1, 3, 2) ** 2, order=2)

# (x shape, w shape, bias, stride, padding, dilation, groups, order)
for xs, ws, bias, st, pd, dl, gr, order in [
        ((2, 3, 6, 5), (4, 3, 3, 3), True, 1, 0, 1, 1, 2),
        ((1, 4, 7, 6), (6, 2, 3, 2), False, [2, 1], [1, 2], [1, 2], 2, 1),
        ((3, 6, 6), (4, 3, 2, 2), True, 2, 1, 1, 1, 2),          # unbatched
        ((2, 4, 5, 5), (4, 1, 3, 3), True, 1, 1, 1, 4, 1),       # depthwise
        ((1, 2, 9, 8), (3, 2, 3, 3), True, 3, 0, 2, 1, 1),
        ((1, 2, 4, 4), (2, 2, 4, 4), False, 1, 0, 1, 1, 1),
        ((2, 2, 5, 7), (2, 2, 1, 1), True, [1, 3], 0, 1, 1, 1),
        ((1, 6, 5, 4), (6, 2, 2, 3), False, [2, 2], [2, 1], [3, 1], 3, 1),
        ((2, 2, 3, 3), (3, 2, 3, 3), True, 1, 2, 2, 1, 1)]:
    args = [normal(*xs), normal(*ws)] + ([normal(ws[0])] if bias else [])
    case("conv2d", f"%r = conv2d $0, $1{', $2' if bias else ''} stride={pair(st)} padding={pair(pd)} "
         f"dilation={pair(dl)} groups={gr}", args,
         lambda *t, st=st, pd=pd, dl=dl, gr=gr: F.conv2d(t[0], t[1], t[2] if len(t) > 2 else None,
                                                         st, pd, dl, gr), order=order)
case("conv2d", "%c = conv2d $0, $1 padding=1\n%t = tanh %c\n%r = conv2d %t, $2",
     [normal(1, 2, 5, 5), normal(3, 2, 3, 3), normal(2, 3, 2, 2)],
     lambda x, w1, w2: F.conv2d(torch.tanh(F.conv2d(x, w1, padding=1)), w2), order=2)

# (x shape, kernel, stride, padding, dilation, ceil_mode); stride None: the kernel's
for xs, k, st, pd, dl, ceil in [((2, 3, 6, 6), 2, None, 0, 1, False),
                                ((1, 2, 5, 5), 3, 2, 1, 1, True),
                                ((1, 2, 5, 5), 2, 2, 1, 1, True),
                                ((2, 1, 7, 6), [3, 2], [2, 1], [1, 1], [1, 2], True),
                                ((3, 5, 5), [2, 3], [1, 2], [1, 0], 1, False),
                                ((1, 1, 8, 7), 3, 3, 1, 2, True),
                                ((1, 2, 4, 4), 4, 4, 2, 1, True),
                                ((1, 1, 6, 6), 2, 1, 1, [2, 1], False)]:
    tst = k if st is None else st
    stext = "" if st is None else f" stride={pair(st)}"
    cm = " ceil_mode" if ceil else ""
    for mk in (normal, ties):
        case("max_pool2d", f"%r = max_pool2d $0 kernel={pair(k)}{stext} padding={pair(pd)} "
             f"dilation={pair(dl)}{cm}", [mk(*xs)],
             lambda t, k=k, st=tst, pd=pd, dl=dl, c=ceil: F.max_pool2d(t, k, st, pd, dl, ceil_mode=c))
    if dl == 1:
        for inc in (True, False):
            case("avg_pool2d", f"%r = avg_pool2d $0 kernel={pair(k)}{stext} padding={pair(pd)}{cm} "
                 f"count_include_pad={'true' if inc else 'false'}", [normal(*xs)],
                 lambda t, k=k, st=tst, pd=pd, c=ceil, inc=inc:
                 F.avg_pool2d(t, k, st, pd, ceil_mode=c, count_include_pad=inc))
# all equal: each window's first element; second order through the gathered values
case("max_pool2d", "%r = max_pool2d $0 kernel=2 stride=1 padding=1", [np.ones((1, 2, 3, 3))],
     lambda t: F.max_pool2d(t, 2, 1, 1))
case("max_pool2d", "%m = max_pool2d $0 kernel=3 stride=2 padding=1 ceil_mode\n%r = mul %m, %m",
     [normal(2, 2, 5, 5)], lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True) ** 2, order=2)
case("avg_pool2d", "%m = avg_pool2d $0 kernel=3 stride=2 padding=1 ceil_mode count_include_pad=false\n"
     "%r = mul %m, %m", [normal(2, 2, 5, 5)],
     lambda t: F.avg_pool2d(t, 3, 2, 1, ceil_mode=True, count_include_pad=False) ** 2, order=2)

for xs in [(4, 3), (2, 3, 5), (2, 3, 4, 4)]:
    c = xs[1]
    args = [normal(*xs) + 1, positive(c), normal(c), normal(c), positive(c)]
    case("batch_norm", "%r = batch_norm $0", args[:1], lambda t: F.batch_norm(t, None, None, training=True),
         order=2 if xs == (4, 3) else 1)
    case("batch_norm", "%r = batch_norm $0, $1, $2 eps=0.01", args[:3],
         lambda t, w, b: F.batch_norm(t, None, None, w, b, training=True, eps=0.01),
         order=2 if xs == (2, 3, 5) else 1)
    case("batch_norm", "%r = batch_norm $0, $1, $2, $3, $4 momentum=0.3", args,
         lambda t, w, b, m, v: F.batch_norm(t, m.clone(), v.clone(), w, b, training=True, momentum=0.3),
         wrt=[0, 1, 2])
    case("batch_norm", "%r = batch_norm $0, $1, $2, $3, $4 training=false eps=0.001", args,
         lambda t, w, b, m, v: F.batch_norm(t, m, v, w, b, training=False, eps=1e-3), wrt=[0, 1, 2],
         order=2 if xs == (4, 3) else 1)
# a small network: conv (no bias: batch_norm's mean would cancel it, leaving
# gradients that are rounding residue), batch_norm, relu, max_pool, a linear
# layer, cross_entropy; second order in f64 only (in f32 some second
# derivatives are sums that cancel, off by about 1.5 rtol of the output's
# scale in smelt and luckily less in torch)
for dts, order in ((["f64"], 2), (["f32"], 1)):
    case("convnet", "%c = conv2d $0, $1 padding=1\n%n = batch_norm %c, $2, $3\n%a = relu %n\n"
         "%m = max_pool2d %a kernel=2\n%f = reshape %m shape=[2,-1]\n%o = matmul %f, $4\n"
         "%r = cross_entropy %o, $5",
         [normal(2, 1, 4, 4), normal(3, 1, 3, 3), positive(3), normal(3), normal(12, 5),
          index((2,), 5)],
         lambda x, w, g, be, l, y: F.cross_entropy(
             F.max_pool2d(torch.relu(F.batch_norm(F.conv2d(x, w, padding=1), None, None, g, be,
                                                  training=True)), 2).reshape(2, -1) @ l, y),
         dts=dts, order=order)


# ================================================================== main


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="Cross-check smelt's gradients against PyTorch.")
    ap.add_argument("smeltc")
    ap.add_argument("-v", "--verbose", action="store_true", help="also list the passing cases")
    ap.add_argument("-k", default="", help="only cases whose op or text contains this")
    ap.add_argument("--keep", help="write the graphs and .npy files here (kept)")
    args = ap.parse_args(argv)
    if not os.access(args.smeltc, os.X_OK):
        print(f"torch_autograd: {args.smeltc} is not an executable smeltc")
        return 2
    cases = [c for c in CASES if args.k in c.op or args.k in c.text]
    tmp = None
    if args.keep:
        root = os.path.abspath(args.keep)
        os.makedirs(root, exist_ok=True)
    else:
        # thousands of small .npy files: in memory where there is a tmpfs
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        tmp = tempfile.TemporaryDirectory(prefix="smelt-autograd-", dir=shm)
        root = tmp.name
    try:
        for k, c in enumerate(cases):
            c.lines = c.render(k)
            c.save(root)
        nb = max(1, min(16, 2 * (os.cpu_count() or 4)))
        per = (len(cases) + nb - 1) // nb
        batches = [Batch(args.smeltc, root, f"b{i}", cases[i * per:(i + 1) * per]) for i in range(nb)]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 4) as ex:
            list(ex.map(lambda b: b.run(), batches))
    finally:
        if tmp:
            tmp.cleanup()
    failed = [c for c in cases if c.failures]
    for c in failed:
        for f in c.failures:
            print(f"FAIL {c.label()}: {f}")
    if args.verbose:
        for c in cases:
            if not c.failures:
                print(f"ok   {c.label()} ({c.checks} outputs)")
    ops = sorted({c.op for c in cases})
    print(f"# {len(cases)} cases ({sum(c.checks for c in cases)} outputs compared) over {len(ops)} "
          f"ops, orders 1-3, in {time.time() - T0:.1f}s")
    print(f"{len(cases) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
