#!/usr/bin/python3
# Cross-check of smelt's forward semantics against PyTorch.
#
#   tests/crosscheck/torch_forward.py SMELTC [-v] [-k SUBSTRING] [--keep DIR]
#
# For every op of the public API (include/smelt/smelt.h) and every dtype it
# takes, this script writes the op as smelt text (sugar lines), random
# inputs as .npy (broadcasting shapes, size-0 and size-1 dims, rank 0, NaN,
# inf and -0), runs them with `smeltc run FILE --input ... --output-dir DIR
# -q` (thousands of cases batched into a few graph files, run in parallel)
# and compares every output with the same computation in PyTorch:
#
#  - dtype and shape must match exactly (torch dtypes mapped to smelt's);
#  - integers and bools must match exactly;
#  - floats: ops that IEEE or PyTorch define exactly (arithmetic, sqrt,
#    views, indexing, max/min, where, cast, clamp, ...) must match bit for
#    bit, signed zeros included (except which zero max/min pick from -0 and
#    +0: torch's vectorized and scalar loops differ there, so ties between
#    zeros are not compared); other ops within |got - want| <= rtol*|want|
#    + atol with rtol 1e-6 for f32 (about 8 ulp) and 1e-12 for f64, atol the
#    smallest normal number, and for composites with cancellation (softmax,
#    log_softmax, logsumexp, cross_entropy, gelu, var/std) atol = rtol times
#    the largest finite |input| (at least 1; not counting the -1e30 sentinel). A result may match either torch's own result
#    or torch's result computed from inputs widened to f64 and rounded to the
#    output dtype (smelt accumulates in double, torch in the dtype). NaN
#    positions and infinities must match exactly.
#
# A few references are not torch 1.13's own result where that is an artifact
# of its implementation: Python-scalar exponents and dividends (x ** -0.5 is
# rsqrt(x), 2.5 / x is x.reciprocal() * 2.5) are computed as torch.pow and
# torch.div of tensors; linspace follows today's PyTorch algorithm (torch
# 1.13's integer linspace has a precision bug; see t_linspace).
#
# Where PyTorch rejects a call, smelt must reject it too, unless the case
# gives the documented smelt meaning (e.g. an i32 gather index, computed in
# torch with the index widened to i64). Where smelt rejects a call on
# purpose and documents it (smelt.h), the case expects the rejection.
#
# Prints one line per failing case (op, inputs, first mismatching index and
# both values), then 'N passed, M failed'; exits 1 when anything failed and
# 77 (meson's "skipped") when numpy or torch cannot be imported. It needs
# Debian's python3-torch and python3-numpy; run it with /usr/bin/python3.
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
    print(f"torch_forward: SKIP: cannot import numpy and torch with {sys.executable}: {e}")
    sys.exit(77)

warnings.filterwarnings("ignore")
torch.set_num_threads(1)

# ------------------------------------------------------------------ dtypes

NP = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, "bool": np.bool_}
NP2S = {np.dtype(v): k for k, v in NP.items()}
T2S = {torch.float32: "f32", torch.float64: "f64", torch.int32: "i32", torch.int64: "i64",
       torch.bool: "bool"}
S2T = {v: k for k, v in T2S.items()}
FLOATS = ["f32", "f64"]
INTS = ["i32", "i64"]
DTYPES = ["f32", "f64", "i32", "i64", "bool"]
RTOL = {"f32": 1e-6, "f64": 1e-12}
TINY = {"f32": float(np.finfo(np.float32).tiny), "f64": float(np.finfo(np.float64).tiny)}

INF = float("inf")
NAN = float("nan")


def sname(a):
    return NP2S[a.dtype]


def ty(a):
    return f"{sname(a)}[{','.join(str(d) for d in a.shape)}]"


def num(v):
    """A number as smelt text writes it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if v != v:
        return "nan"
    if v in (INF, -INF):
        return "inf" if v > 0 else "-inf"
    return repr(float(v))


def lst(xs):
    return "[" + ",".join(str(x) for x in xs) + "]"


# ------------------------------------------------------------------ inputs

R = np.random.default_rng(20240611)
SPECIALS = [NAN, INF, -INF, -0.0, 0.0, 1e-30, -1e30]


def rnd(dt, shape, special=False, lo=-9, hi=10, big=False, scale=2.0):
    shape = tuple(shape)
    if dt in FLOATS:
        a = np.array(R.standard_normal(shape) * scale, dtype=NP[dt])
        if special and a.size:
            flat = a.reshape(-1)
            k = max(1, flat.size // 3)
            pos = R.choice(flat.size, size=min(k, flat.size), replace=False)
            for j, p in enumerate(pos):
                flat[p] = SPECIALS[(j + R.integers(len(SPECIALS))) % len(SPECIALS)]
        return a
    if dt in INTS:
        a = np.array(R.integers(lo, hi, shape), dtype=NP[dt])
        if big and a.size:
            info = np.iinfo(NP[dt])
            bigs = [info.max, info.min, info.max - 1, info.min + 1, 2**53 + 1 if dt == "i64" else 2**24 + 1,
                    -(2**53) - 3 if dt == "i64" else -(2**24) - 3]
            flat = a.reshape(-1)
            for j in range(min(len(bigs), flat.size)):
                flat[R.integers(flat.size)] = bigs[j]
        return a
    return np.array(R.random(shape) < 0.5)


def idx(shape, n, dt="i64"):
    return np.array(R.integers(0, n, tuple(shape)) if n > 0 else np.zeros(shape), dtype=NP[dt])


# ------------------------------------------------------------------ cases


class Case:
    def __init__(self, op, text, args, fn, outs, tol, alt, reject, exact, scale, zero_sign, check):
        self.op = op
        self.text = text
        self.args = [np.array(a, order="C") for a in args]  # (ascontiguousarray makes 0-d 1-d)
        self.outs = list(outs)
        self.tol = tol or {}
        self.exact = exact
        self.reject = reject  # documented reason when smelt rejects on purpose
        self.desc = ", ".join(f"${j}={ty(a)}" for j, a in enumerate(self.args))
        self.torch_error = None
        self.want = None
        self.want_hi = None
        self.expect_error = False
        self.failure = None
        self.smelt_error = ""
        self.zero_sign = zero_sign  # compare the sign of zeros (exact cases)
        self.check = check  # a property check of the outputs instead of torch's values
        self.scale = 1.0
        tin = [torch.from_numpy(a.copy()) for a in self.args]
        f = fn
        try:
            res = fn(*tin)
        except Exception as e:
            self.torch_error = str(e).strip().splitlines()[0][:160]
            res = None
            if alt is not None:
                try:
                    res, f = alt(*tin), alt
                except Exception:
                    res = None
        if reject is not None or res is None:
            self.expect_error = True
            return
        self.want = list(res) if isinstance(res, (tuple, list)) else [res]
        assert len(self.want) == len(self.outs), op
        # The same computation from inputs widened to f64 (float outputs only).
        if not exact and any(w.dtype in (torch.float32,) for w in self.want):
            wide = [t.double() if t.dtype == torch.float32 else t for t in tin]
            try:
                hi = f(*wide)
                hi = list(hi) if isinstance(hi, (tuple, list)) else [hi]
                self.want_hi = [h.to(w.dtype) if isinstance(h, torch.Tensor) else None
                                for h, w in zip(hi, self.want)]
            except Exception:
                self.want_hi = None
        if scale:
            m = 1.0
            for a in self.args:
                if a.dtype.kind == "f" and a.size:
                    fin = np.abs(a[np.isfinite(a)])
                    fin = fin[fin < 1e20]  # not the -1e30 sentinel: it underflows or dominates
                    if fin.size:
                        m = max(m, float(fin.max()))
            self.scale = m

    def render(self, k):
        p = f"c{k}_"
        self.prefix = p
        lines = [f"input %{p}i{j} : {ty(a)}" for j, a in enumerate(self.args)]
        body = re.sub(r"%([A-Za-z_][A-Za-z0-9_.]*)", lambda m: "%" + p + m.group(1), self.text)
        body = re.sub(r"\$(\d+)", lambda m: f"%{p}i{m.group(1)}", body)
        lines += [ln.strip() for ln in body.strip().splitlines()]
        lines += [f"output {p}{o} = %{p}{o}" for o in self.outs]
        return lines

    def label(self):
        text = "; ".join(ln.strip() for ln in self.text.strip().splitlines())
        return f"{self.op}: {text}  ({self.desc or 'no inputs'})"


CASES = []


def case(op, text, args=(), fn=None, outs=("r",), tol=None, alt=None, reject=None, exact=False,
         scale=False, zero_sign=True, check=None):
    """One check: `text` is smelt sugar using $0, $1... for the inputs `args`
    and defining the ids in `outs`; `fn` computes the same in torch."""
    CASES.append(Case(op, text, args, fn, outs, tol, alt, reject, exact, scale, zero_sign, check))


# ------------------------------------------------------------------ comparison


def first_bad(mask):
    i = np.argwhere(mask)[0]
    return tuple(int(x) for x in i)


def compare(c, got, want, want_hi):
    """None when got (numpy) matches want (torch); else a message."""
    wdt = T2S.get(want.dtype, str(want.dtype))
    msg = meta_compare(got, want)
    if msg:
        return msg
    w = want.numpy()
    if got.size == 0:
        return None
    if wdt not in FLOATS:
        bad = got != w
        if bad.any():
            i = first_bad(bad)
            return f"at {i}: smelt {got[i]!r} vs torch {w[i]!r}"
        return None
    gn, wn = np.isnan(got), np.isnan(w)
    if (gn != wn).any():
        i = first_bad(gn != wn)
        return f"NaN at {i}: smelt {got[i]!r} vs torch {w[i]!r}"
    if c.exact:
        same = (got == w) | gn
        zero = same & (got == 0)
        sign = zero & (np.signbit(got) != np.signbit(w)) & c.zero_sign
        bad = ~same | sign
        if bad.any():
            i = first_bad(bad)
            return f"at {i}: smelt {got[i]!r} vs torch {w[i]!r} (exact)"
        return None
    rtol = c.tol.get("rtol", RTOL[wdt])
    atol = c.tol.get("atol", TINY[wdt]) + (rtol * c.scale if c.tol.get("scaled") else 0)

    def ok(ref):
        inf = np.isinf(ref) | np.isinf(got)
        with np.errstate(invalid="ignore", over="ignore"):
            close = np.abs(got.astype(np.float64) - ref.astype(np.float64)) <= \
                atol + rtol * np.abs(ref.astype(np.float64))
        return np.where(wn, True, np.where(inf, got == ref, close))

    good = ok(w)
    if want_hi is not None:
        good |= ok(want_hi.numpy())
    if not good.all():
        i = first_bad(~good)
        hi = f", f64 reference {want_hi.numpy()[i]!r}" if want_hi is not None else ""
        return (f"at {i}: smelt {got[i]!r} vs torch {w[i]!r}{hi} "
                f"(rtol {rtol:g}, atol {atol:g})")
    return None


# ------------------------------------------------------------------ running


def meta_compare(got, want):
    """dtype and shape only (for the property checks)."""
    wdt, gdt = T2S.get(want.dtype, str(want.dtype)), NP2S.get(got.dtype, str(got.dtype))
    if gdt != wdt:
        return f"dtype: smelt {gdt} vs torch {wdt}"
    if tuple(got.shape) != tuple(want.shape):
        return f"shape: smelt {list(got.shape)} vs torch {list(want.shape)}"
    return None


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
        lines, starts, inputs = ["# torch_forward cross-check"], [], []
        for c in cases:
            starts.append(len(lines) + 1)
            lines += c.lines
            for j, a in enumerate(c.args):
                f = os.path.join(self.root, f"{c.prefix}i{j}.npy")
                inputs.append((f"{c.prefix}i{j}", f))
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
                    self.collect(c, out)
                return
            m = re.search(re.escape(path) + r":(\d+):(\d+): (.*)", err)
            if m:
                line = int(m.group(1))
                k = max(j for j, s in enumerate(starts) if s <= line)
                cases[k].failure = f"smelt rejects it: {m.group(3)} (torch accepts)"
                cases = cases[:k] + cases[k + 1:]
                continue
            if len(cases) == 1:
                cases[0].failure = f"smeltc failed: {err}"
                return
            h = len(cases) // 2
            self.run(cases[:h], f"{tag}a")  # a run-time error: bisect to the case
            self.run(cases[h:], f"{tag}b")
            return

    def collect(self, c, out):
        gots = []
        for o, w, k in zip(c.outs, c.want, range(len(c.outs))):
            f = os.path.join(out, f"{c.prefix}{o}.npy")
            try:
                got = np.load(f)
            except Exception as e:
                c.failure = f"output {o}: cannot load {f}: {e}"
                return
            hi = c.want_hi[k] if c.want_hi else None
            msg = meta_compare(got, w) if c.check else compare(c, got, w, hi)
            if msg:
                c.failure = f"output {o}: {msg}"
                return
            gots.append(got)
        if c.check:
            msg = c.check(*gots, *c.args)
            if msg:
                c.failure = msg


def run_error_case(smeltc, root, k, c):
    d = os.path.join(root, f"e{k}")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "g.smelt")
    with open(path, "w") as fh:
        fh.write("\n".join(c.lines) + "\n")
    inputs = [(f"{c.prefix}i{j}", os.path.join(root, f"{c.prefix}i{j}.npy"))
              for j in range(len(c.args))]
    rc, err = run_smeltc(smeltc, path, inputs, os.path.join(d, "out"))
    c.smelt_error = err
    if rc == 0:
        why = f"torch rejects it ({c.torch_error})" if c.torch_error else f"documented: {c.reject}"
        c.failure = f"smelt accepts it but {why}"
    elif rc != 1 or path not in err:
        c.failure = f"smeltc exit {rc}: {err}"
    elif re.search(r"unknown (op|id|dtype)|has no attribute|expected |missing|declared ", err):
        c.failure = f"the case's text is wrong: {err}"  # a bug of this script, not smelt


# ================================================================== the cases

# ---------------------------------------------------------------- elementwise

UNARY_SHAPES = [(), (0,), (1,), (7,), (3, 4), (2, 0, 3), (2, 1, 3, 4)]
EXACT_UNARY = {"neg", "abs", "sign", "relu", "logical_not", "stop_gradient", "sqrt", "reciprocal"}
TORCH_UNARY = {
    "neg": torch.neg, "abs": torch.abs, "sign": torch.sign, "exp": torch.exp, "log": torch.log,
    "sqrt": torch.sqrt, "rsqrt": torch.rsqrt, "reciprocal": torch.reciprocal, "sin": torch.sin,
    "cos": torch.cos, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu,
    "logical_not": torch.logical_not, "stop_gradient": lambda x: x.detach(),
    "gelu": lambda x: F.gelu(x, approximate="tanh"),
}
for op, fn in TORCH_UNARY.items():
    for dt in DTYPES:
        for si, shape in enumerate(UNARY_SHAPES):
            a = rnd(dt, shape, special=si % 2 == 1 or si == 6, big=op in ("neg", "abs", "sign"))
            alt = None
            reject = None
            if op == "gelu" and dt not in FLOATS:
                # smelt.h: unary math of int/bool computes in f32 (torch has no int gelu kernel)
                alt = lambda x: F.gelu(x.float(), approximate="tanh")
            if op == "sign" and dt == "bool":
                reject = "smelt.h: neg, abs, sign and relu keep the dtype and reject bool"
            case(op, f"%r = {op} $0", [a], fn, exact=op in EXACT_UNARY, alt=alt, reject=reject,
                 tol={"scaled": True} if op == "gelu" else None, scale=op == "gelu")
    # large arguments
    for dt in FLOATS:
        a = np.array([-100, -30, -1e-8, 1e-8, 30, 88, 100, 700, -745, 1e5, 3.14159265], NP[dt])
        case(op, f"%r = {op} $0", [a], fn, exact=op in EXACT_UNARY,
             tol={"scaled": True} if op == "gelu" else None, scale=op == "gelu")

BINARY = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "pow": torch.pow,
    "maximum": torch.maximum, "minimum": torch.minimum, "lt": torch.lt, "le": torch.le,
    "gt": torch.gt, "ge": torch.ge, "eq": torch.eq, "ne": torch.ne,
    "logical_and": torch.logical_and, "logical_or": torch.logical_or,
}
PYOPS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
         "div": lambda a, b: a / b, "pow": lambda a, b: a ** b, "lt": lambda a, b: a < b,
         "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
         "eq": lambda a, b: a == b, "ne": lambda a, b: a != b}
EXACT_BINARY = {"add", "sub", "mul", "div", "maximum", "minimum", "lt", "le", "gt", "ge", "eq",
                "ne", "logical_and", "logical_or"}
BIN_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((), (2, 3)), ((2, 3), ()),
              ((), ()), ((0, 3), (1, 3)), ((2, 1, 3), (4, 1)), ((1,), (0,)),
              ((1, 6, 4, 1, 7, 2), (5, 6, 1, 3, 1, 2))]


def bin_inputs(op, da, db, sa, sb, special):
    if op == "pow" and da in INTS + ["bool"] and db in INTS + ["bool"]:
        a = rnd(da, sa, lo=-5, hi=6)
        b = rnd(db, sb, lo=-2, hi=8)
        return a, b
    big = op in ("add", "sub", "mul", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge")
    a = rnd(da, sa, special=special, big=big and da == db)
    b = rnd(db, sb, special=special, big=big and da == db)
    if op in ("eq", "ne", "le", "ge") and a.shape == b.shape and a.size:
        # some equal pairs
        m = R.random(a.shape) < 0.5
        b = np.where(m, a.astype(b.dtype), b)
    return a, b


for op, fn in BINARY.items():
    for da in DTYPES:
        for db in DTYPES:
            shapes = BIN_SHAPES if da == db else BIN_SHAPES[:6]
            for si, (sa, sb) in enumerate(shapes):
                a, b = bin_inputs(op, da, db, sa, sb, special=si % 3 == 0)
                case(op, f"%r = {op} $0, $1", [a, b], fn, exact=op in EXACT_BINARY,
                     zero_sign=op not in ("maximum", "minimum"))
    # literals on either side (weak scalars); true/false are bool rank-0 tensors
    for da in DTYPES:
        for lit in [2, -3, 0, 2.5, -0.5, NAN, INF, True]:
            if op == "pow" and da in INTS + ["bool"] and isinstance(lit, int) and not \
                    isinstance(lit, bool) and lit < 0:
                continue  # torch rejects int ** negative literal; tensor exponents are checked
            a = rnd(da, (3, 4), special=True) if da in FLOATS else rnd(da, (3, 4), lo=-4, hi=5)
            lv = torch.tensor(lit) if isinstance(lit, bool) else lit

            def weak(x, lv=lv):
                # torch.maximum and the logical ops take no Python scalar: the literal as a
                # tensor of the promoted dtype is the same thing
                if isinstance(lv, torch.Tensor):
                    return x, lv
                rt = torch.result_type(x, lv)
                return x.to(rt), torch.tensor(lv, dtype=rt)
            # torch's x ** -0.5 is rsqrt(x) and 2.5 / x is x.reciprocal() * 2.5: special
            # cases of Python scalars that torch.pow / torch.div of tensors do not share
            # (pow(-inf, -0.5) is 0 there, as C's pow)
            viaw = op in ("pow", "div")
            # torch rejects any bool operand of sub, literal or not: no weak fallback
            nosub = op == "sub" and da == "bool"
            case(op, f"%r = {op} $0, {num(lit)}", [a],
                 (lambda x, fn=fn, weak=weak: fn(*weak(x))) if viaw else
                 (lambda x, lv=lv, fn=fn: fn(x, lv)),
                 alt=None if nosub else lambda x, fn=fn, weak=weak: fn(*weak(x)),
                 exact=op in EXACT_BINARY, zero_sign=op not in ("maximum", "minimum"))
            pyop = PYOPS.get(op)
            case(op, f"%r = {op} {num(lit)}, $0", [a],
                 (lambda x, fn=fn, weak=weak: fn(*reversed(weak(x)))) if viaw or not pyop else
                 (lambda x, lv=lv, pyop=pyop: pyop(lv, x)),
                 alt=None if nosub else lambda x, fn=fn, weak=weak: fn(*reversed(weak(x))),
                 exact=op in EXACT_BINARY, zero_sign=op not in ("maximum", "minimum"))

# integer wrap-around, as PyTorch (two's complement)
for dt in INTS:
    info = np.iinfo(NP[dt])
    a = np.array([info.max, info.min, info.max, 12345678, -7, info.min], NP[dt])
    b = np.array([1, -1, info.max, 87654321, info.min, 2], NP[dt])
    for op in ("add", "sub", "mul"):
        case(op, f"%r = {op} $0, $1", [a, b], BINARY[op], exact=True)
    case("neg", "%r = neg $0", [a], torch.neg, exact=True)
    case("abs", "%r = abs $0", [a], torch.abs, exact=True)
    case("pow", "%r = pow $0, $1", [np.array([3, -3, 7, 2, -1, 0], NP[dt]),
                                     np.array([40, 41, 25, 63, -5, 0], NP[dt])], torch.pow)
    case("sum", "%r = sum $0", [a], torch.sum)
    case("prod", "%r = prod $0", [a], torch.prod)

# where: condition, values of every dtype pair, literals
for da in DTYPES:
    for db in DTYPES:
        for sc, sa, sb in [((3, 4), (3, 4), (3, 4)), ((3, 1), (4,), ()), ((), (2, 3), (2, 1)),
                           ((2, 0, 1), (1, 3), (0, 1))][:4 if da == db else 2]:
            c = rnd("bool", sc)
            case("where", "%r = where $0, $1, $2", [c, rnd(da, sa, special=True),
                                                   rnd(db, sb, special=True)], torch.where,
                 exact=True)
    for lit in [2, 2.5, -0.0, NAN]:
        c, a = rnd("bool", (3, 4)), rnd(da, (4,), special=True)
        case("where", f"%r = where $0, $1, {num(lit)}", [c, a],
             lambda c, a, lit=lit: torch.where(c, a, lit), exact=True)
        case("where", f"%r = where $0, {num(lit)}, $1", [c, a],
             lambda c, a, lit=lit: torch.where(c, lit, a), exact=True)
case("where", "%r = where $0, 2, 2.5", [rnd("bool", (5,))], lambda c: torch.where(c, 2, 2.5),
     exact=True)
case("where", "%r = where $0, $1, $2", [rnd("i32", (3,)), rnd("f32", (3,)), rnd("f32", (3,))],
     lambda c, a, b: torch.where(c, a, b),  # torch requires a bool condition, so does smelt
     exact=True)

# cast: every pair
for src in DTYPES:
    for dst in DTYPES:
        for shape in [(), (0, 2), (7,), (3, 4)]:
            if src in FLOATS and dst in INTS:
                a = (R.standard_normal(shape) * 1e3).astype(NP[src])  # trunc toward zero, in range
            else:
                a = rnd(src, shape, special=True, big=True)
            case("cast", f"%r = cast $0 dtype={dst}", [a], lambda x, dst=dst: x.to(S2T[dst]),
                 exact=True)
        if src in FLOATS and dst != src:
            sp = np.array([NAN, INF, -INF, -0.0, 0.0, 0.5, -0.5, 1.5, -2.5, 1e-45, 1e300,
                           16777217.0, 0.1], np.float64)
            if dst in INTS:
                sp = np.array([-0.0, 0.0, 0.5, -0.5, 0.999, -0.999, 1.5, -2.5, 1e-45, 123456.7,
                               -2147483648.0, 2147483647.0 if src == "f64" else 2147483520.0],
                              np.float64)
            case("cast", f"%r = cast $0 dtype={dst}", [sp.astype(NP[src])],
                 lambda x, dst=dst: x.to(S2T[dst]), exact=True)
        if src in INTS and dst != src:
            info = np.iinfo(NP[src])
            a = np.array([info.max, info.min, 2**24 + 1, -(2**24) - 1, 2**31 - 1, 0, -1,
                          *([2**53 + 1, -(2**62) - 3, 2**31 + 5, -(2**33) - 7] if src == "i64" else [])],
                         NP[src])
            case("cast", f"%r = cast $0 dtype={dst}", [a], lambda x, dst=dst: x.to(S2T[dst]),
                 exact=True)

# clamp
CLAMP_BOUNDS = [(-1, 2), (-0.5, 1.5), (2, 1), (None, 0), (0.5, None), (-INF, 0.25), (1, 1),
                (-3, INF)]
for dt in DTYPES:
    for lo, hi in CLAMP_BOUNDS:
        for shape in [(3, 4), (), (0,)]:
            a = rnd(dt, shape, special=True, lo=-4, hi=5)
            attrs = (f" lo={num(lo)}" if lo is not None else "") + (f" hi={num(hi)}" if hi is not None else "")
            # smelt's defaults are lo=-inf and hi=inf (docs/text-format.md): the
            # same as torch.clamp with those bounds
            tl = -INF if lo is None else lo
            th = INF if hi is None else hi
            case("clamp", f"%r = clamp $0{attrs}", [a],
                 lambda x, tl=tl, th=th: torch.clamp(x, tl, th), exact=True)

# ---------------------------------------------------------------- reductions

RED_SHAPES = [((3, 4, 5), [None, [0], [-1], [1], [0, 2], [-1, 0], [0, 1, 2]]),
              ((2, 0, 3), [None, [1], [0, 2], [-1]]),
              ((1, 6), [None, [0], [1]]),
              ((7,), [None, [0], [-1]]),
              ((), [None, [0], [-1]]),
              ((2, 3, 1, 4), [[1, 3], [-2], [0, 1, 2, 3]])]


def axes_attr(axes):
    return "" if axes is None else f" axes={lst(axes)}"


def tdims(axes, rank):
    return tuple(range(rank)) if axes is None else tuple(axes)


def t_prod(x, axes, keepdim):
    dims = sorted(a % x.dim() for a in tdims(axes, x.dim())) if x.dim() else []
    if x.dim() == 0:
        return torch.prod(x, 0, keepdim=keepdim) if axes else torch.prod(x)
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


for name in ["sum", "prod", "max", "min", "mean", "logsumexp"]:
    for dt in DTYPES:
        for shape, axsets in RED_SHAPES:
            for ai, axes in enumerate(axsets):
                for keepdim in (False, True):
                    a = rnd(dt, shape, special=(ai + keepdim) % 3 == 0,
                            scale=0.7 if name == "prod" else 2.0)
                    alt = None
                    if name == "logsumexp" and dt == "bool":
                        alt = lambda x, axes=axes, k=keepdim: t_red("logsumexp", x.float(), axes, k)
                    case(name, f"%r = {name} $0{axes_attr(axes)}{' keepdim' if keepdim else ''}",
                         [a], lambda x, n=name, axes=axes, k=keepdim: t_red(n, x, axes, k),
                         exact=name in ("max", "min"), alt=alt, zero_sign=False,
                         tol={"scaled": True} if name == "logsumexp" else None,
                         scale=name == "logsumexp")
# logsumexp edge rows: all -inf, +inf, NaN
for dt in FLOATS:
    a = np.array([[-INF, -INF, -INF], [INF, 1, 2], [NAN, 1, 2], [-INF, 0, 1], [1000, 1000, -1000],
                  [-1000, -1000, -1001]], NP[dt])
    for axes in ([1], None, [0]):
        case("logsumexp", f"%r = logsumexp $0{axes_attr(axes)}", [a],
             lambda x, axes=axes: t_red("logsumexp", x, axes, False))

for name in ["var", "std"]:
    for dt in DTYPES:
        for shape, axsets in RED_SHAPES:
            for axes in axsets:
                for corr in (None, 0, 1, 2, 5):
                    keepdim = corr == 2
                    a = rnd(dt, shape, special=corr == 5) + (3 if dt in FLOATS else 0)
                    if dt == "f32":
                        # smelt.h: var/std of f32 square deviations in f32, so a deviation
                        # beyond ~1.8e19 overflows (PyTorch's CPU kernel works in double)
                        a = np.where(np.abs(a) > 1e19, np.float32(-1e15), a).astype(np.float32)
                    ctext = "" if corr is None else f" correction={corr}"
                    case(name, f"%r = {name} $0{axes_attr(axes)}{ctext}{' keepdim' if keepdim else ''}",
                         [a], lambda x, n=name, axes=axes, c=1 if corr is None else corr, k=keepdim:
                         t_red(n, x, axes, k, c), tol={"scaled": True}, scale=True)

# max/min of integers at the extremes; sum of many f32 (accumulation)
for dt in INTS:
    a = rnd(dt, (4, 5), big=True)
    for name in ["max", "min", "sum"]:
        case(name, f"%r = {name} $0 axes=[1]", [a], lambda x, n=name: t_red(n, x, [1], False))
case("sum", "%r = sum $0 axes=[0]", [rnd("f32", (5000, 3))], lambda x: torch.sum(x, 0))
case("mean", "%r = mean $0", [rnd("f32", (300, 7))], lambda x: torch.mean(x))

# argmax / argmin and torch.max / torch.min with indices
for dt in DTYPES:
    for shape, axes_list in [((3, 4, 5), [0, 1, 2, -1, -3]), ((1, 6), [0, 1]), ((7,), [0, -1]),
                             ((), [0, -1]), ((2, 1, 3), [1])]:
        for ax in axes_list:
            for keepdim in (False, True):
                if dt in INTS:
                    a = rnd(dt, shape, lo=-3, hi=3)  # ties: the first index wins
                else:
                    a = rnd(dt, shape, special=keepdim)
                for name in ("argmax", "argmin"):
                    tf = torch.argmax if name == "argmax" else torch.argmin
                    alt = None
                    if dt == "bool":  # torch has no bool kernel; the same order as uint8
                        alt = lambda x, tf=tf, ax=ax, k=keepdim: tf(x.to(torch.uint8), ax, keepdim=k)
                    case(name, f"%r = {name} $0 axis={ax}{' keepdim' if keepdim else ''}", [a],
                         lambda x, tf=tf, ax=ax, k=keepdim: tf(x, ax, keepdim=k), alt=alt)
                for name, tf in (("max", torch.max), ("min", torch.min)):
                    arg = "argmax" if name == "max" else "argmin"
                    kd = " keepdim" if keepdim else ""
                    case(f"{name}_dim", f"%v = {name} $0 axes=[{ax}]{kd}\n%i = {arg} $0 axis={ax}{kd}",
                         [a], lambda x, tf=tf, ax=ax, k=keepdim: tuple(tf(x, ax, keepdim=k)),
                         outs=("v", "i"), exact=True,
                         zero_sign=False)
# NaN counts as the maximum and the minimum, first one wins
for dt in FLOATS:
    a = np.array([[1, NAN, 3, NAN], [-INF, INF, -INF, INF], [2, 2, -1, -1], [-0.0, 0.0, 0.0, -0.0]],
                 NP[dt])
    for name, tf in (("argmax", torch.argmax), ("argmin", torch.argmin)):
        case(name, f"%r = {name} $0 axis=1", [a], lambda x, tf=tf: tf(x, 1))
        case(name, f"%r = {name} $0 axis=0", [a], lambda x, tf=tf: tf(x, 0))
    for name, tf in (("max", torch.max), ("min", torch.min)):
        arg = "argmax" if name == "max" else "argmin"
        case(f"{name}_dim", f"%v = {name} $0 axes=[1]\n%i = {arg} $0 axis=1", [a],
             lambda x, tf=tf: tuple(tf(x, 1)), outs=("v", "i"), exact=True,
                         zero_sign=False)
# bad axis lists: both reject
for name in ("sum", "mean", "max", "var", "logsumexp"):
    for axes in ([0, 0], [3], [-4], [0, -3]):
        case(name, f"%r = {name} $0 axes={lst(axes)}", [rnd("f32", (2, 3, 4))],
             lambda x, n=name, axes=axes: t_red(n, x, axes, False, 1))
    case(name, f"%r = {name} $0 axes=[1]", [rnd("f32", ())],
         lambda x, n=name: t_red(n, x, [1], False, 1))
for name in ("argmax", "softmax", "unsqueeze"):
    case(name, f"%r = {name} $0 axis=3", [rnd("f32", (2, 3))],
         lambda x, n=name: getattr(torch, n)(x, 3))
# an empty reduced axis has no max / argmax: both reject
for name in ("max", "min"):
    case(name, f"%r = {name} $0 axes=[1]", [rnd("f32", (2, 0))], lambda x: torch.amax(x, 1))
case("argmax", "%r = argmax $0 axis=0", [rnd("f32", (0, 3))], lambda x: torch.argmax(x, 0))
case("mean", "%r = mean $0", [rnd("i32", (3,))], lambda x: torch.mean(x))

# ---------------------------------------------------------------- views

for dt in DTYPES:
    x = rnd(dt, (2, 3, 4), special=True, big=True)
    for shp in [[4, 6], [-1], [2, -1, 2], [24], [1, 2, 1, 12], [3, 8, 1]]:
        case("reshape", f"%r = reshape $0 shape={lst(shp)}", [x], lambda t, s=shp: t.reshape(s),
             exact=True)
    for src, shp in [((), [1, 1]), ((1,), []), ((0, 3), [-1]), ((0, 3), [3, 0, 5]), ((4,), [2, 2])]:
        case("reshape", f"%r = reshape $0 shape={lst(shp)}", [rnd(dt, src)],
             lambda t, s=shp: t.reshape(s), exact=True)
    for perm in [[0, 1, 2], [2, 0, 1], [1, 0, 2], [-1, -3, -2]]:
        case("permute", f"%r = permute $0 perm={lst(perm)}", [x], lambda t, p=perm: t.permute(p),
             exact=True)
    for a0, a1 in [(0, 2), (1, -1), (-3, -2), (1, 1)]:
        case("transpose", f"%r = transpose $0 axis0={a0} axis1={a1}", [x],
             lambda t, a0=a0, a1=a1: t.transpose(a0, a1), exact=True)
    case("transpose", "%r = transpose $0 axis0=0 axis1=-1", [rnd(dt, ())],
         lambda t: t.transpose(0, -1), exact=True)
    for src, shp in [((3, 1), [3, 4]), ((3, 1), [2, 3, 5]), ((1, 4), [-1, 4]), ((), [2, 3]),
                     ((3, 1), [2, -1, 0]), ((1,), [0]), ((2, 1, 1), [4, 2, -1, 3])]:
        a = rnd(dt, src, special=True)
        case("expand", f"%r = expand $0 shape={lst(shp)}", [a], lambda t, s=shp: t.expand(*s),
             exact=True)
        if -1 not in shp:
            case("broadcast_to", f"%r = broadcast_to $0 shape={lst(shp)}", [a],
                 lambda t, s=shp: torch.broadcast_to(t, s), exact=True)
    y = rnd(dt, (1, 3, 1, 4, 1), special=True)
    case("squeeze", "%r = squeeze $0", [y], lambda t: t.squeeze(), exact=True)
    for axes in [[0], [-1], [0, 2], [4, 0, 2]]:
        def sq(t, axes=axes):
            for a in sorted((a % t.dim() for a in axes), reverse=True):
                t = t.squeeze(a)
            return t
        case("squeeze", f"%r = squeeze $0 axes={lst(axes)}", [y], sq, exact=True)
    case("squeeze", "%r = squeeze $0", [rnd(dt, ())], lambda t: t.squeeze(), exact=True)
    case("squeeze", "%r = squeeze $0 axes=[1]", [y], lambda t: t.squeeze(1),
         reject="smelt.h: squeezing an axis whose size is not 1 is an error (torch: no-op)")
    for ax in [0, 1, 3, -1, -4]:
        case("unsqueeze", f"%r = unsqueeze $0 axis={ax}", [x], lambda t, a=ax: t.unsqueeze(a),
             exact=True)
    case("unsqueeze", "%r = unsqueeze $0 axis=-1", [rnd(dt, ())], lambda t: t.unsqueeze(-1),
         exact=True)
    for s, e in [(0, -1), (1, 2), (0, 0), (-2, -1), (2, 2)]:
        case("flatten", f"%r = flatten $0 start_axis={s} end_axis={e}", [x],
             lambda t, s=s, e=e: torch.flatten(t, s, e), exact=True)
    case("flatten", "%r = flatten $0", [rnd(dt, ())], lambda t: torch.flatten(t), exact=True)
    case("flatten", "%r = flatten $0 start_axis=1", [rnd(dt, (2, 0, 3))],
         lambda t: torch.flatten(t, 1), exact=True)
    # slicing, Python semantics
    z = rnd(dt, (6, 5, 4), special=True, big=True)
    for ax, st, sp, stp in [(0, 1, 5, 2), (1, -3, None, 1), (2, -100, 100, 3), (0, 4, 2, 1),
                            (-1, None, -1, 1), (1, 3, 3, 1), (0, -2, -1, 5), (1, 0, None, 7),
                            (2, 5, 9, 1), (0, -7, -6, 1)]:
        attrs = f" axis={ax}" + (f" start={st}" if st is not None else "") + \
            (f" stop={sp}" if sp is not None else "") + f" step={stp}"
        sl = [slice(None)] * 3
        sl[ax] = slice(st, sp, stp)
        case("slice", f"%r = slice $0{attrs}", [z], lambda t, sl=tuple(sl): t[sl], exact=True)
    for st, sp, stp in [([0, 1, -3], [6, -1, 4], [2, 2, 1]), ([-1, -5, 0], [6, 5, 9223372036854775807], [1, 3, 4]),
                        ([5, 0, 1], [1, 5, 3], [1, 1, 1])]:
        sl = tuple(slice(a, b, c) for a, b, c in zip(st, sp, stp))
        case("slice", f"%r = slice $0 start={lst(st)} stop={lst(sp)} step={lst(stp)}", [z],
             lambda t, sl=sl: t[sl], exact=True)
    for axes in [[0], [-1], [0, 2], [1, 0, 2]]:
        case("flip", f"%r = flip $0 axes={lst(axes)}", [z], lambda t, a=axes: torch.flip(t, a),
             exact=True)
    case("flip", "%r = flip $0 axes=[0]", [rnd(dt, (0, 2))], lambda t: torch.flip(t, [0]),
         exact=True)
    # a 0-dim tensor takes dim 0 and -1, as in torch
    case("flip", "%r = flip $0 axes=[-1]", [rnd(dt, ())], lambda t: torch.flip(t, [-1]), exact=True)
    case("squeeze", "%r = squeeze $0 axes=[0]", [rnd(dt, ())], lambda t: torch.squeeze(t, 0),
         exact=True)
    case("flatten", "%r = flatten $0 start_axis=0 end_axis=-1", [rnd(dt, ())],
         lambda t: torch.flatten(t, 0, -1), exact=True)
    # pad: smelt lists (lo, hi) in axis order, torch from the last axis
    for lo, hi, v in [([0, 1, 0], [1, 0, 2], 0), ([2, 0, 1], [0, 3, 1], -1.5), ([0, 0, 0], [0, 0, 1], 7),
                      ([1, 1, 1], [1, 1, 1], NAN if dt in FLOATS else 2), ([0, 2, 0], [0, 0, 0], -INF if dt in FLOATS else 2.7)]:
        pads = []
        for a in reversed(range(3)):
            pads += [lo[a], hi[a]]
        case("pad", f"%r = pad $0 lo={lst(lo)} hi={lst(hi)} value={num(v)}", [x],
             lambda t, p=pads, v=v: F.pad(t, p, value=v), exact=True)
    case("pad", "%r = pad $0 lo=[1,0] hi=[2,1] value=3", [rnd(dt, (0, 2))],
         lambda t: F.pad(t, [0, 1, 1, 2], value=3), exact=True)
    # concat and stack (dtypes promote)
    for db in DTYPES:
        a, b = rnd(dt, (2, 3), special=True), rnd(db, (2, 1), special=True)
        case("concat", "%r = concat $0, $1 axis=1", [a, b], lambda s, t: torch.cat([s, t], 1),
             exact=True)
        c = rnd(db, (4, 3), special=True)
        case("concat", "%r = concat $0, $1, $0 axis=-2", [a, c], lambda s, t: torch.cat([s, t, s], -2),
             exact=True)
        case("stack", "%r = stack $0, $1 axis=1", [a, rnd(db, (2, 3))],
             lambda s, t: torch.stack([s, t], 1), exact=True)
    case("concat", "%r = concat $0, $1 axis=1", [rnd(dt, (2, 0)), rnd(dt, (2, 3))],
         lambda s, t: torch.cat([s, t], 1), exact=True)
    case("concat", "%r = concat $0 axis=0", [rnd(dt, (3,))], lambda s: torch.cat([s], 0), exact=True)
    for ax in [0, 2, -1, -3]:
        case("stack", f"%r = stack $0, $1, $2 axis={ax}", [rnd(dt, (2, 3)), rnd(dt, (2, 3)), rnd(dt, (2, 3))],
             lambda *ts, ax=ax: torch.stack(ts, ax), exact=True)
    case("stack", "%r = stack $0, $1", [rnd(dt, ()), rnd(dt, ())], lambda s, t: torch.stack([s, t]),
         exact=True)
    case("stack", "%r = stack $0, $1 axis=1", [rnd(dt, (0, 2)), rnd(dt, (0, 2))],
         lambda s, t: torch.stack([s, t], 1), exact=True)
case("concat", "%r = concat $0, $1 axis=0", [rnd("f32", ()), rnd("f32", ())],
     lambda s, t: torch.cat([s, t], 0))
case("stack", "%r = stack $0, $1", [rnd("f32", (2,)), rnd("f32", (3,))],
     lambda s, t: torch.stack([s, t]))

# ---------------------------------------------------------------- matmul

MM_SHAPES = [((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
             ((2, 3), (5, 3, 4)), ((3,), (5, 3, 4)), ((5, 2, 3), (3,)), ((2, 1, 2, 3), (4, 3, 5)),
             ((1, 2, 3), (6, 3, 1)), ((2, 0), (0, 3)), ((0, 3), (3, 4)), ((0, 2, 3), (3, 4)),
             ((0,), (0,)), ((1, 1), (1, 1)), ((3, 1, 4, 5), (1, 2, 5, 2))]
for dt in DTYPES:
    for sa, sb in MM_SHAPES:
        a, b = rnd(dt, sa, lo=-5, hi=6), rnd(dt, sb, lo=-5, hi=6)
        case("matmul", "%r = matmul $0, $1", [a, b], torch.matmul,
             reject="smelt.h/ops.md: matmul of bool is an error (torch: only for empty results)"
             if dt == "bool" else None)
for da, db in [("f32", "f64"), ("i32", "f32"), ("i64", "i32"), ("i32", "f64")]:
    for sa, sb in [((2, 3), (3, 4)), ((3,), (5, 3, 2))]:
        # torch.matmul requires equal dtypes; smelt promotes (smelt.h: "promoted")
        rt = torch.promote_types(S2T[da], S2T[db])
        case("matmul", "%r = matmul $0, $1", [rnd(da, sa), rnd(db, sb)], torch.matmul,
             alt=lambda s, t, rt=rt: torch.matmul(s.to(rt), t.to(rt)))
case("matmul", "%r = matmul $0, $1", [rnd("f32", (2, 3)), rnd("f32", (4, 5))], torch.matmul)
case("matmul", "%r = matmul $0, $1", [rnd("f32", (2, 2, 3)), rnd("f32", (3, 3, 1))], torch.matmul)
case("matmul", "%r = matmul $0, $1", [rnd("f32", ()), rnd("f32", (3,))], torch.matmul)
case("matmul", "%r = matmul $0, $1", [rnd("f32", (64, 200), special=False),
                                      rnd("f32", (200, 32))], torch.matmul)
case("matmul", "%r = matmul $0, $1", [rnd("f32", (2, 3), special=True),
                                      rnd("f32", (3, 2), special=True)], torch.matmul)

# ---------------------------------------------------------------- indexing

for dt in DTYPES:
    x = rnd(dt, (3, 4, 5), special=True, big=True)
    for it in INTS:
        for ax, ishape in [(0, (2, 4, 5)), (1, (3, 7, 2)), (2, (1, 2, 5)), (-1, (3, 4, 0)), (1, (3, 0, 5))]:
            n = x.shape[ax]
            ix = idx(ishape, n, it)
            case("gather", f"%r = gather $0, $1 axis={ax}", [x, ix],
                 lambda t, i, ax=ax: torch.gather(t, ax, i),
                 alt=lambda t, i, ax=ax: torch.gather(t, ax, i.long()), exact=True)
        for ax, ishape in [(1, (3, 2, 1)), (0, (6, 1, 5)), (2, (1, 4, 3)), (-2, (1, 1, 1))]:
            ix = idx(ishape, x.shape[ax], it)
            case("take_along_axis", f"%r = take_along_axis $0, $1 axis={ax}", [x, ix],
                 lambda t, i, ax=ax: torch.take_along_dim(t, i, ax),
                 alt=lambda t, i, ax=ax: torch.take_along_dim(t, i.long(), ax), exact=True)
        for ax, ishape in [(0, (5,)), (1, (4,)), (-1, (0,)), (2, ())]:
            ix = idx(ishape, x.shape[ax], it)
            case("index_select", f"%r = index_select $0, $1 axis={ax}", [x, ix],
                 lambda t, i, ax=ax: torch.index_select(t, ax, i), exact=True)
        w = rnd(dt, (6, 3), special=True)
        for ishape in [(4,), (2, 3), (), (0,), (2, 0, 1)]:
            ix = idx(ishape, 6, it)
            case("embedding", "%r = embedding $0, $1", [w, ix], lambda t, i: F.embedding(i, t),
                 exact=True)
for it in INTS:
    for ishape, n in [((5,), 4), ((2, 3), 7), ((), 3), ((0,), 2), ((3, 1), 1)]:
        ix = idx(ishape, n, it)
        case("one_hot", f"%r = one_hot $0 num_classes={n}", [ix],
             lambda i, n=n: F.one_hot(i, n), alt=lambda i, n=n: F.one_hot(i.long(), n))
# take_along_axis broadcasts x against the index too; 0-dim operands as torch
x = rnd("f32", (3, 1, 5))
case("take_along_axis", "%r = take_along_axis $0, $1 axis=2", [x, idx((3, 4, 2), 5)],
     lambda t, i: torch.take_along_dim(t, i, 2), exact=True)
case("take_along_axis", "%r = take_along_axis $0, $1 axis=0", [rnd("f64", (4, 1)), idx((2, 3), 4)],
     lambda t, i: torch.take_along_dim(t, i, 0), exact=True)
# (not compared: gather and index_select of a 0-dim x, where torch's results
# are artifacts: index_select(x[], 0, [0, 0]) has shape [])
case("cross_entropy", "%r = cross_entropy $0, $1", [rnd("f32", (2, 3)), np.array([0, 3])],
     lambda l, y: F.cross_entropy(l, y))
# out-of-range indices are errors (at run time) in both
case("gather", "%r = gather $0, $1 axis=0", [rnd("f32", (3,)), np.array([0, 3])],
     lambda t, i: torch.gather(t, 0, i))
case("gather", "%r = gather $0, $1 axis=0", [rnd("f32", (3,)), np.array([-1, 0])],
     lambda t, i: torch.gather(t, 0, i))
case("index_select", "%r = index_select $0, $1 axis=0", [rnd("f32", (3,)), np.array([5])],
     lambda t, i: torch.index_select(t, 0, i))
case("one_hot", "%r = one_hot $0 num_classes=3", [np.array([0, 3])], lambda i: F.one_hot(i, 3))
case("embedding", "%r = embedding $0, $1", [rnd("f32", (3, 2)), np.array([[4]])],
     lambda t, i: F.embedding(i, t))

# ---------------------------------------------------------------- nn

for dt in FLOATS:
    for shape, axes in [((3, 5), [1, 0, -1]), ((2, 3, 4), [2, 1, -3]), ((7,), [0]), ((2, 1), [1]),
                        ((2, 0), [0, 1]), ((), [0])]:
        for ax in axes:
            for special in (False, True):
                a = rnd(dt, shape, special=special)
                case("softmax", f"%r = softmax $0 axis={ax}", [a],
                     lambda t, ax=ax: torch.softmax(t, ax), tol={"scaled": True}, scale=True)
                case("log_softmax", f"%r = log_softmax $0 axis={ax}", [a],
                     lambda t, ax=ax: F.log_softmax(t, ax), tol={"scaled": True}, scale=True)
    e = np.array([[-INF, -INF, -INF], [-INF, 0, 1], [INF, 0, 1], [1000, 999, -1000],
                  [NAN, 1, 2], [80, 90, 100]], NP[dt])
    case("softmax", "%r = softmax $0 axis=1", [e], lambda t: torch.softmax(t, 1),
         tol={"scaled": True}, scale=True)
    case("log_softmax", "%r = log_softmax $0 axis=1", [e], lambda t: F.log_softmax(t, 1),
         tol={"scaled": True}, scale=True)
    for it in INTS:
        for n, c in [(4, 3), (1, 5), (8, 1), (0, 3)]:
            logits = rnd(dt, (n, c), scale=3)
            lab = idx((n,), c, it)
            case("cross_entropy", "%r = cross_entropy $0, $1", [logits, lab],
                 lambda l, y: F.cross_entropy(l, y),
                 alt=lambda l, y: F.cross_entropy(l, y.long()), tol={"scaled": True}, scale=True)
        case("cross_entropy", "%r = cross_entropy $0, $1", [rnd(dt, (4,)), idx((), 4, it)],
             lambda l, y: F.cross_entropy(l, y),
             alt=lambda l, y: F.cross_entropy(l, y.long()), tol={"scaled": True}, scale=True)
    case("cross_entropy", "%r = cross_entropy $0, $1",
         [np.array([[0, -INF, 1], [50, 60, 70]], NP[dt]), np.array([2, 0])],
         lambda l, y: F.cross_entropy(l, y), tol={"scaled": True}, scale=True)
    for db in FLOATS:
        for sa, sb in [((3, 4), (3, 4)), ((3, 4), (4,)), ((), (2, 3)), ((0, 2), (0, 2)), ((2, 1), (1, 3))]:
            case("mse_loss", "%r = mse_loss $0, $1", [rnd(dt, sa), rnd(db, sb)],
                 lambda s, t: F.mse_loss(s, t))
    case("mse_loss", "%r = mse_loss $0, $1", [rnd(dt, (4,), special=True), rnd(dt, (4,))],
         lambda s, t: F.mse_loss(s, t))
    x = rnd(dt, (3, 4), special=True)
    case("dropout", "%r = dropout $0 p=0.5", [x], lambda t: F.dropout(t, 0.5, training=False),
         exact=True)
    case("dropout", "%r = dropout $0 p=0 training", [x], lambda t: F.dropout(t, 0.0, training=True),
         exact=True)
    case("dropout", "%r = dropout $0 p=1 training", [rnd(dt, (3, 4))],
         lambda t: F.dropout(t, 1.0, training=True), exact=True)
case("mse_loss", "%r = mse_loss $0, $1", [rnd("i32", (3,)), rnd("i32", (3,))],
     lambda s, t: F.mse_loss(s, t))
case("softmax", "%r = softmax $0 axis=0", [rnd("i64", (3,))], lambda t: torch.softmax(t, 0),
     reject="smelt.h/ops.md: softmax needs a float tensor")
case("cross_entropy", "%r = cross_entropy $0, $1", [rnd("f32", (2, 3)), rnd("f32", (2,))],
     lambda l, y: F.cross_entropy(l, y.long()),
     reject="smelt.h: labels are integer class indices (torch reads float targets as probabilities)")

# ---------------------------------------------------------------- sources


# f32 linspace: torch steps in f32, smelt in double; values near 0 of a range
# through 0 differ by a few ulp of the bounds
LINSPACE_TOL = lambda s, e: {"atol": 4 * 2.0**-23 * max(abs(s), abs(e), 1)}


def t_linspace(start, stop, n, dt):
    """torch.linspace as PyTorch computes it today (aten/src/ATen/native/cpu/
    RangeFactoriesKernel.cpp): the bounds converted to the dtype, the step in
    double for integers (in the dtype for floats), start + i*step for the lower
    half and stop - (n-1-i)*step for the upper half. torch 1.13 (Debian's)
    still has an integer linspace with a precision bug (linspace(48, -14, 40,
    dtype=int32)[10] is 31, not trunc(32.1) = 32) and computes f64 values as
    base + j*step in vector lanes; its dtype and shape are checked here, its
    values replaced by those of the current algorithm."""
    t = torch.linspace(start, stop, n) if dt is None else torch.linspace(start, stop, n, dtype=S2T[dt])
    sdt = T2S[t.dtype]
    if n == 0:
        return t
    if sdt in INTS:
        info = np.iinfo(NP[sdt])
        if not (info.min <= int(start) <= info.max and info.min <= int(stop) <= info.max):
            raise ValueError("value cannot be converted without overflow")
        s0, e0 = float(int(start)), float(int(stop))
        conv = lambda v: int(v)
    elif sdt == "f64":
        s0, e0 = float(start), float(stop)
        conv = float
    else:
        s0, e0 = np.float32(start), np.float32(stop)
        conv = np.float32
    if n == 1:
        vals = [conv(s0)]
    else:
        step = (e0 - s0) / (np.float32(n - 1) if sdt == "f32" else float(n - 1))
        vals = [conv(s0 + step * (np.float32(i) if sdt == "f32" else i)) if i < n // 2 else
                conv(e0 - step * (np.float32(n - 1 - i) if sdt == "f32" else n - 1 - i))
                for i in range(n)]
    r = torch.tensor(np.array(vals, dtype=NP[sdt]))
    assert r.shape == t.shape and r.dtype == t.dtype
    return r


for dt in DTYPES:
    tdt = S2T[dt]
    for start, stop, step in [(0, 5, 1), (1, 2, 0.25), (-3, 7, 2), (5, 0, -1), (0, 1, 0.1), (2, 2, 1),
                              (-1.5, 2.5, 0.5), (0, 10, 3), (10, -10, -3)]:
        if dt == "bool":
            continue
        if dt in INTS and not all(float(v).is_integer() for v in (start, stop, step)):
            # torch truncates the bounds and the step of an integer arange first (and then
            # counts the elements from the truncated bounds for i64, the original ones for
            # i32); smelt documents start + i*step computed in double: not compared
            continue
        case("arange", f"%r = arange start={num(start)} stop={num(stop)} step={num(step)} dtype={dt}", [],
             lambda s=start, e=stop, p=step, t=tdt: torch.arange(s, e, p, dtype=t))
    for start, stop, n in [(0, 1, 5), (-3, 10, 7), (2, 2, 3), (0, 10, 4), (1, 0, 1), (0, 1, 0),
                           (-1, 1, 2), (0.5, -2.5, 9), (0, 1, 101), (48, -14, 40), (-3.9, 3.9, 5),
                           (0.1, 0.7, 7), (-1e10, 1e10, 33), (0, 7, 22)]:
        if dt == "bool":
            continue  # torch has no bool linspace
        case("linspace", f"%r = linspace start={num(start)} stop={num(stop)} n={n} dtype={dt}", [],
             lambda s=start, e=stop, n=n, dt=dt: t_linspace(s, e, n, dt), exact=dt != "f32",
             tol=LINSPACE_TOL(start, stop))
    for n, m in [(3, 3), (3, 4), (4, 2), (0, 3), (1, 1)]:
        case("eye", f"%r = eye n={n} m={m} dtype={dt}", [],
             lambda n=n, m=m, t=tdt: torch.eye(n, m, dtype=t), exact=True)
    for shape, v in [((2, 3), 7), ((), -2.5), ((0, 4), 1), ((3,), 2.7), ((2, 2), -0.0), ((1,), 0)]:
        if dt in FLOATS:
            vals = [v, NAN, INF]
        else:
            vals = [v]
        for val in vals:
            case("full", f"%r = full value={num(val)} shape={lst(shape)} dtype={dt}", [],
                 lambda s=shape, v=val, t=tdt: torch.full(s, v, dtype=t), exact=True)
    for name, tf in (("zeros", torch.zeros), ("ones", torch.ones)):
        for shape in [(2, 3), (), (0,)]:
            case(name, f"%r = {name} shape={lst(shape)} dtype={dt}", [],
                 lambda s=shape, t=tdt, tf=tf: tf(s, dtype=t), exact=True)
# linspace of integers: torch truncates the bounds, steps in double and computes the upper
# half of the values from the end
for k in range(60):
    s0, e0, n = int(R.integers(-50, 51)), int(R.integers(-50, 51)), int(R.integers(2, 41))
    for dt in INTS + FLOATS:
        case("linspace", f"%r = linspace start={s0} stop={e0} n={n} dtype={dt}", [],
             lambda s0=s0, e0=e0, n=n, dt=dt: t_linspace(s0, e0, n, dt), exact=dt != "f32",
             tol=LINSPACE_TOL(s0, e0))
# the default dtypes, as torch: i64 when every bound is an integer, else f32
case("arange", "%r = arange stop=5", [], lambda: torch.arange(5))
case("arange", "%r = arange start=1 stop=4", [], lambda: torch.arange(1, 4))
case("arange", "%r = arange start=0 stop=2.5", [], lambda: torch.arange(0, 2.5))
case("arange", "%r = arange start=0.5 stop=3 step=1", [], lambda: torch.arange(0.5, 3, 1))
case("linspace", "%r = linspace start=0 stop=1 n=5", [], lambda: t_linspace(0, 1, 5, None))
case("eye", "%r = eye n=3", [], lambda: torch.eye(3), exact=True)
case("full", "%r = full value=3 shape=[2]", [], lambda: torch.full((2,), 3.0), exact=True)
case("zeros", "%r = zeros shape=[2]", [], lambda: torch.zeros(2), exact=True)

# random sources and dropout: no torch values to compare (other generators), so
# properties: dtype and shape as torch, range, moments, and dropout's exact values
# where it keeps an element (x * (1/(1-p)) with the literal in the dtype)


def rand_check(kind, n):
    def chk(r):
        r = r.astype(np.float64).reshape(-1)
        if r.size == 0:
            return None
        if not np.isfinite(r).all():
            return f"{kind}: non-finite values"
        if kind == "rand" and not ((r >= 0) & (r < 1)).all():
            return f"rand: values outside [0, 1): min {r.min()!r}, max {r.max()!r}"
        m, sd = r.mean(), r.std()
        em, esd = (0.5, (1 / 12) ** 0.5) if kind == "rand" else (0.0, 1.0)
        if n >= 1000 and (abs(m - em) > 5 * esd / n ** 0.5 or abs(sd - esd) > 0.05 * esd):
            return f"{kind}: mean {m:.4f} std {sd:.4f} (want {em}, {esd:.4f}) over {n} values"
        return None
    return chk


for dt in FLOATS:
    for kind in ("rand", "randn"):
        for shape in [(100, 50), (), (0, 3), (7,)]:
            n = int(np.prod(shape))
            case(kind, f"%r = {kind} seed=7 shape={lst(shape)} dtype={dt}", [],
                 lambda shape=shape, dt=dt: torch.empty(shape, dtype=S2T[dt]),
                 check=rand_check(kind, n))
    for p in (0.3, 0.75):
        x = rnd(dt, (200, 30))
        x[x == 0] = 1

        def drop_check(d, x, p=p, dt=dt):
            scale = NP[dt](1.0 / (1.0 - p))
            want = (x * scale).astype(NP[dt])
            kept = d != 0
            if not (d[kept] == want[kept]).all():
                i = first_bad(kept & (d != want))
                return f"dropout: kept element {i} is {d[i]!r}, want x/(1-p) = {want[i]!r}"
            frac = kept.mean()
            if abs(frac - (1 - p)) > 0.03:
                return f"dropout: kept {frac:.3f} of the elements, want {1 - p} (p = {p})"
            return None
        case("dropout", f"%r = dropout $0 p={p} seed=11 training", [x],
             lambda t, p=p: F.dropout(t, p, training=True), check=drop_check)

# typed constants with special values, as torch.tensor
for dt, vals in [("f32", "[nan,-0,inf,-inf,1e-45,3.4028234663852886e+38,0.1]"),
                 ("f64", "[nan,-0,inf,5e-324,1.7976931348623157e+308,0.1]"),
                 ("i32", "[-2147483648,2147483647,0]"),
                 ("i64", "[-9223372036854775808,9223372036854775807,9007199254740993]"),
                 ("bool", "[true,false]")]:
    n = vals.count(",") + 1
    pyvals = [float(v) if dt in FLOATS else (v == "true") if dt == "bool" else int(v)
              for v in vals[1:-1].split(",")]
    case("const", f"%r = const {vals} : {dt}[{n}]", [],
         lambda pv=pyvals, dt=dt: torch.tensor(pv, dtype=S2T[dt]), exact=True)

# a literal that does not fit the tensor's dtype: torch 1.13 wraps it around in add
# and mul but rejects it in where ("value cannot be converted to type int without
# overflow"); smelt always rejects it (tests/test_dtype.c literal_out_of_range)
LIT_REJECT = "integer literal out of the tensor's range (torch: wraps in add, rejects in where)"
case("add", "%r = add $0, 3000000000", [np.array([1, -2, 3], np.int32)], lambda x: x + 3000000000,
     reject=LIT_REJECT)
case("mul", "%r = mul $0, -4294967297", [np.array([1, -2, 3], np.int32)], lambda x: x * -4294967297,
     reject=LIT_REJECT)
case("where", "%r = where $0, $1, 3000000000", [rnd("bool", (3,)), np.array([1, -2, 3], np.int32)],
     lambda c, x: torch.where(c, x, 3000000000))
# clamp with a NaN bound: torch gives NaN everywhere
# (the sugar's hi defaults to inf: torch.clamp(x, nan) with min only returns x in torch 1.13,
# while torch.clamp(x, nan, inf) gives NaN; smelt's clamp always has both bounds)
case("clamp", "%r = clamp $0 lo=nan", [rnd("f32", (4,))], lambda x: torch.clamp(x, NAN, INF),
     exact=True)
case("clamp", "%r = clamp $0 lo=0 hi=nan", [rnd("f64", (4,))], lambda x: torch.clamp(x, 0, NAN),
     exact=True)

# chains of views and ops: strided, flipped, expanded and padded operands
for dt in ["f32", "f64", "i64"]:
    x = rnd(dt, (4, 5, 6), special=dt != "i64")
    y = rnd(dt, (6, 5))
    chains = [
        ("%t = transpose $0 axis0=0 axis1=2\n%s = slice %t axis=1 start=1 step=2\n%r = sum %s axes=[0]",
         lambda a, b: torch.sum(a.transpose(0, 2)[:, 1::2], 0)),
        ("%f = flip $0 axes=[1]\n%g = flip $1 axes=[0]\n%r = matmul %f, %g",
         lambda a, b: torch.matmul(torch.flip(a, [1]), torch.flip(b, [0]))),
        ("%t = transpose $0 axis0=1 axis1=2\n%u = transpose $1 axis0=0 axis1=1\n%r = matmul %t, %u",
         lambda a, b: torch.matmul(a.transpose(1, 2), b.t())),
        ("%e = expand $1 shape=[4,6,5]\n%p = permute %e perm=[0,2,1]\n%r = add $0, %p",
         lambda a, b: a + b.expand(4, 6, 5).permute(0, 2, 1)),
        ("%s = slice $0 start=[-1,0,1] stop=[0,5,6] step=[1,2,3]\n%r = mul %s, %s",
         lambda a, b: a[-1:0, 0:5:2, 1:6:3] * a[-1:0, 0:5:2, 1:6:3]),
        ("%s = slice $0 start=[1,0,1] step=[2,2,3]\n%c = concat %s, %s axis=2\n%r = max %c axes=[2]",
         lambda a, b: torch.amax(torch.cat([a[1::2, 0::2, 1::3]] * 2, 2), 2)),
        ("%p = pad $1 lo=[1,0] hi=[0,2] value=3\n%q = flip %p axes=[0,1]\n%r = reshape %q shape=[-1,7]",
         lambda a, b: torch.flip(F.pad(b, [0, 2, 1, 0], value=3), [0, 1]).reshape(-1, 7)),
    ]
    for text, fn in chains:
        case("chain", text, [x, y], fn,
             exact=not ("matmul" in text or "sum" in text or ("mul" in text and dt == "f32")))

# ------------------------------------------------------------------ promotion
# Mixed dtypes, rank-0 tensors and literals through several ops at once.
for da in DTYPES:
    for db in DTYPES:
        for sa, sb in [((3,), ()), ((), (3,)), ((), ())]:
            a, b = rnd(da, sa, lo=1, hi=5), rnd(db, sb, lo=1, hi=5)
            case("promote", "%r = mul $0, $1\n%s = add %r, 1\n%t = div %s, 2.5\n%u = maximum $0, $1",
                 [a, b], lambda s, t: (s * t, s * t + 1, (s * t + 1) / 2.5, torch.maximum(s, t)),
                 outs=("r", "s", "t", "u"))


# ---------------------------------------------------------------- convolution and pooling
# unfold (a view: exact, every dtype), conv2d, max_pool2d (exact: a maximum),
# avg_pool2d and batch_norm over strides, paddings, dilations, groups,
# ceil_mode, count_include_pad, unbatched [C, H, W] inputs, f32 and f64.
# (Last, so that the inputs drawn for the cases above do not change.)


def pair(v):
    """An int-or-pair attribute as smelt text writes it."""
    return str(v) if isinstance(v, int) else lst(v)


for dt in DTYPES:
    x = rnd(dt, (3, 7, 4), special=dt in FLOATS, big=True)
    for ax, size, step in [(1, 3, 1), (1, 3, 2), (1, 2, 3), (1, 7, 1), (1, 7, 5), (-1, 2, 2),
                           (0, 1, 1), (2, 4, 4), (1, 0, 1), (1, 0, 3), (-3, 2, 1)]:
        case("unfold", f"%r = unfold $0 axis={ax} size={size} step={step}", [x],
             lambda t, a=ax, s=size, p=step: t.unfold(a, s, p), exact=True)
    case("unfold", "%r = unfold $0 axis=0 size=2", [rnd(dt, (5,))], lambda t: t.unfold(0, 2, 1),
         exact=True)
    case("unfold", "%r = unfold $0 axis=1 size=0", [rnd(dt, (2, 0))], lambda t: t.unfold(1, 0, 1),
         exact=True)
    # windows of windows, and windows over padding and transposes
    case("unfold", "%u = unfold $0 axis=1 size=3 step=2\n%r = unfold %u axis=2 size=2 step=1", [x],
         lambda t: t.unfold(1, 3, 2).unfold(2, 2, 1), exact=True)
    case("unfold", "%t = transpose $0 axis0=0 axis1=2\n%r = unfold %t axis=1 size=4 step=3", [x],
         lambda t: t.transpose(0, 2).unfold(1, 4, 3), exact=True)
    if dt != "bool":
        case("unfold", "%p = pad $0 lo=[0,2,1] hi=[0,1,0] value=-3\n%r = unfold %p axis=1 size=3 step=2",
             [x], lambda t: F.pad(t, [1, 0, 2, 1], value=-3).unfold(1, 3, 2), exact=True)
    # both reject: size larger than the axis, step 0, a negative size
    for size, step in [(8, 1), (2, 0), (-1, 1)]:
        case("unfold", f"%r = unfold $0 axis=1 size={size} step={step}", [x],
             lambda t, s=size, p=step: t.unfold(1, s, p))
case("unfold", "%r = unfold $0 axis=0 size=1 step=1", [rnd("f32", ())], lambda t: t.unfold(0, 1, 1),
     reject="smelt.h: unfold takes an axis of the tensor; a rank-0 tensor has none (torch: as [1])")

# (x shape, w shape, bias, stride, padding, dilation, groups)
CONV_CASES = [((2, 3, 7, 6), (4, 3, 3, 3), True, 1, 0, 1, 1),
              ((1, 4, 8, 7), (6, 2, 3, 2), False, [2, 1], [1, 2], [1, 2], 2),
              ((3, 8, 8), (4, 3, 2, 2), True, 2, 1, 1, 1),          # unbatched
              ((2, 4, 5, 5), (4, 1, 3, 3), True, 1, 1, 1, 4),       # depthwise
              ((1, 2, 9, 9), (3, 2, 3, 3), True, 3, 0, 2, 1),
              ((1, 1, 4, 4), (1, 1, 4, 4), False, 1, 0, 1, 1),      # one output position
              ((2, 2, 6, 7), (2, 2, 1, 1), True, [1, 3], 0, 1, 1),  # 1x1
              ((1, 6, 5, 4), (6, 2, 2, 3), False, [2, 2], [2, 1], [3, 1], 3),
              ((2, 2, 3, 3), (3, 2, 3, 3), True, 1, 2, 2, 1),       # mostly padding
              ((0, 2, 4, 4), (3, 2, 2, 2), True, 1, 0, 1, 1),       # an empty batch
              ((2, 3, 5, 6), (2, 3, 3, 3), True, 1, [0, 1], 1, 1)]
for dt in FLOATS:
    for xs, ws, bias, st, pd, dl, gr in CONV_CASES:
        args = [rnd(dt, xs), rnd(dt, ws)] + ([rnd(dt, (ws[0],))] if bias else [])
        text = (f"%r = conv2d $0, $1{', $2' if bias else ''} stride={pair(st)} padding={pair(pd)} "
                f"dilation={pair(dl)} groups={gr}")
        case("conv2d", text, args,
             lambda *t, st=st, pd=pd, dl=dl, gr=gr: F.conv2d(t[0], t[1], t[2] if len(t) > 2 else None,
                                                             st, pd, dl, gr),
             tol={"scaled": True}, scale=True)
    case("conv2d", "%r = conv2d $0, $1", [rnd(dt, (1, 2, 4, 4)), rnd(dt, (3, 2, 3, 3))], F.conv2d,
         tol={"scaled": True}, scale=True)
    # both reject: groups that do not divide, a weight of the wrong shape, a
    # kernel larger than the padded input, a 2-D input, a bias of the wrong size
    x = rnd(dt, (1, 4, 4, 4))
    case("conv2d", "%r = conv2d $0, $1 groups=3", [x, rnd(dt, (6, 2, 2, 2))],
         lambda a, w: F.conv2d(a, w, groups=3))
    case("conv2d", "%r = conv2d $0, $1", [x, rnd(dt, (2, 3, 2, 2))], F.conv2d)
    case("conv2d", "%r = conv2d $0, $1", [x, rnd(dt, (2, 4, 5, 5))], F.conv2d)
    case("conv2d", "%r = conv2d $0, $1 padding=1 dilation=3", [x, rnd(dt, (2, 4, 3, 3))],
         lambda a, w: F.conv2d(a, w, padding=1, dilation=3))
    case("conv2d", "%r = conv2d $0, $1", [rnd(dt, (4, 4)), rnd(dt, (1, 1, 2, 2))], F.conv2d)
    case("conv2d", "%r = conv2d $0, $1, $2", [x, rnd(dt, (2, 4, 2, 2)), rnd(dt, (3,))], F.conv2d)
    case("conv2d", "%r = conv2d $0, $1 stride=0", [x, rnd(dt, (2, 4, 2, 2))],
         lambda a, w: F.conv2d(a, w, stride=0))
case("conv2d", "%r = conv2d $0, $1", [rnd("f32", (1, 1, 4, 4)), rnd("f64", (1, 1, 2, 2))], F.conv2d)
case("conv2d", "%r = conv2d $0, $1", [rnd("i64", (1, 1, 4, 4)), rnd("i64", (1, 1, 2, 2))], F.conv2d,
     reject="smelt.h/ops.md: conv2d takes float tensors (torch's CPU kernel also takes integers)")

# (x shape, kernel, stride, padding, dilation, ceil_mode); stride None: the kernel's
POOL_CASES = [((2, 3, 6, 6), 2, None, 0, 1, False),
              ((1, 2, 5, 5), 3, 2, 1, 1, True),
              ((1, 2, 5, 5), 2, 2, 1, 1, True),  # ceil_mode drops a window in the padding
              ((2, 1, 7, 6), [3, 2], [2, 1], [1, 1], [1, 2], True),
              ((3, 5, 5), [2, 3], [1, 2], [1, 0], 1, False),  # unbatched
              ((1, 1, 8, 7), 3, 3, 1, 2, True),
              ((1, 2, 4, 4), 4, 4, 2, 1, True),
              ((2, 2, 3, 8), [1, 3], [1, 3], [0, 1], 1, False),
              ((1, 1, 6, 6), 2, 1, 1, [2, 1], False)]
for dt in FLOATS:
    for xs, k, st, pd, dl, ceil in POOL_CASES:
        x = rnd(dt, xs, special=True)
        tst = k if st is None else st
        stext = "" if st is None else f" stride={pair(st)}"
        cm = " ceil_mode" if ceil else ""
        case("max_pool2d", f"%r = max_pool2d $0 kernel={pair(k)}{stext} padding={pair(pd)} "
             f"dilation={pair(dl)}{cm}", [x],
             lambda t, k=k, st=tst, pd=pd, dl=dl, c=ceil: F.max_pool2d(t, k, st, pd, dl, ceil_mode=c),
             exact=True, zero_sign=False)
        if dl != 1:
            continue
        for inc in (True, False):
            xa = rnd(dt, xs, special=not inc)
            case("avg_pool2d", f"%r = avg_pool2d $0 kernel={pair(k)}{stext} padding={pair(pd)}{cm} "
                 f"count_include_pad={'true' if inc else 'false'}", [xa],
                 lambda t, k=k, st=tst, pd=pd, c=ceil, inc=inc:
                 F.avg_pool2d(t, k, st, pd, ceil_mode=c, count_include_pad=inc),
                 tol={"scaled": True}, scale=True)
    # -inf padding never wins; windows of -inf, NaN and infinities
    x = np.array([[[[-5, -4, -3], [-2, -1, -INF], [NAN, 2, INF]]]], NP[dt])
    case("max_pool2d", "%r = max_pool2d $0 kernel=2 stride=1 padding=1", [x],
         lambda t: F.max_pool2d(t, 2, 1, 1), exact=True)
    case("avg_pool2d", "%r = avg_pool2d $0 kernel=2 stride=1 padding=1", [x],
         lambda t: F.avg_pool2d(t, 2, 1, 1))
    # both reject: padding more than half the window, a window larger than
    # the padded input, 2-D and 5-D inputs, no kernel size
    x = rnd(dt, (1, 1, 4, 4))
    case("max_pool2d", "%r = max_pool2d $0 kernel=2 padding=2", [x], lambda t: F.max_pool2d(t, 2, padding=2))
    case("avg_pool2d", "%r = avg_pool2d $0 kernel=3 padding=2", [x], lambda t: F.avg_pool2d(t, 3, padding=2))
    case("max_pool2d", "%r = max_pool2d $0 kernel=5", [x], lambda t: F.max_pool2d(t, 5))
    case("max_pool2d", "%r = max_pool2d $0 kernel=2 dilation=4", [x], lambda t: F.max_pool2d(t, 2, dilation=4))
    case("avg_pool2d", "%r = avg_pool2d $0 kernel=5", [x], lambda t: F.avg_pool2d(t, 5))
    case("max_pool2d", "%r = max_pool2d $0 kernel=2", [rnd(dt, (4, 4))], lambda t: F.max_pool2d(t, 2))
    case("avg_pool2d", "%r = avg_pool2d $0 kernel=2", [rnd(dt, (1, 1, 1, 4, 4))], lambda t: F.avg_pool2d(t, 2))
case("max_pool2d", "%r = max_pool2d $0 kernel=2", [rnd("i64", (1, 1, 4, 4))], lambda t: F.max_pool2d(t, 2))
case("avg_pool2d", "%r = avg_pool2d $0 kernel=2", [rnd("i64", (1, 1, 4, 4))], lambda t: F.avg_pool2d(t, 2),
     reject="smelt.h/ops.md: avg_pool2d takes float tensors (torch's also takes integers)")

# batch_norm: batch statistics (training; smeltc runs a training program) or
# the running ones (training=false), with and without weight and bias
for dt in FLOATS:
    for xs in [(4, 3), (2, 3, 5), (2, 3, 4, 4), (5, 1, 2, 1)]:
        c = xs[1]
        x = rnd(dt, xs) + 1
        w, b = rnd(dt, (c,)), rnd(dt, (c,))
        rm, rv = rnd(dt, (c,)), np.abs(rnd(dt, (c,))) + np.array(0.5, NP[dt])
        case("batch_norm", "%r = batch_norm $0", [x],
             lambda t: F.batch_norm(t, None, None, training=True), tol={"scaled": True}, scale=True)
        case("batch_norm", "%r = batch_norm $0, $1, $2 eps=0.01", [x, w, b],
             lambda t, w, b: F.batch_norm(t, None, None, w, b, training=True, eps=0.01),
             tol={"scaled": True}, scale=True)
        case("batch_norm", "%r = batch_norm $0, $1, $2, $3, $4 momentum=0.3", [x, w, b, rm, rv],
             lambda t, w, b, m, v: F.batch_norm(t, m, v, w, b, training=True, momentum=0.3),
             tol={"scaled": True}, scale=True)
        case("batch_norm", "%r = batch_norm $0, $1, $2, $3, $4 training=false eps=0.001",
             [x, w, b, rm, rv], lambda t, w, b, m, v: F.batch_norm(t, m, v, w, b, training=False, eps=1e-3),
             tol={"scaled": True}, scale=True)
    # a constant channel: 0 / sqrt(eps)
    x = np.array([[1, 2], [1, -2], [1, 0.5]], NP[dt])
    case("batch_norm", "%r = batch_norm $0", [x], lambda t: F.batch_norm(t, None, None, training=True))
    # both reject: no running statistics without training, one value per
    # channel in training, a rank-1 input, a weight of the wrong size
    x = rnd(dt, (4, 3))
    case("batch_norm", "%r = batch_norm $0 training=false", [x],
         lambda t: F.batch_norm(t, None, None, training=False))
    case("batch_norm", "%r = batch_norm $0", [rnd(dt, (1, 3))],
         lambda t: F.batch_norm(t, None, None, training=True))
    case("batch_norm", "%r = batch_norm $0", [rnd(dt, (3,))],
         lambda t: F.batch_norm(t, None, None, training=True))
    case("batch_norm", "%r = batch_norm $0, $1, $1", [x, rnd(dt, (4,))],
         lambda t, w: F.batch_norm(t, None, None, w, w, training=True))
    case("batch_norm", "%r = batch_norm $0 eps=0", [x], lambda t: F.batch_norm(t, None, None, training=True, eps=0),
         reject="smelt.h: eps must be positive (torch accepts 0: inf or NaN for a constant channel)")
    case("batch_norm", "%r = batch_norm $0 momentum=2", [x],
         lambda t: F.batch_norm(t, None, None, training=True, momentum=2),
         reject="smelt.h: momentum must be in [0, 1] (torch does not check it)")
case("batch_norm", "%r = batch_norm $0", [rnd("i64", (4, 3))], lambda t: F.batch_norm(t, None, None, training=True))


# ================================================================== main


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="Cross-check smelt's forward semantics against PyTorch.")
    ap.add_argument("smeltc")
    ap.add_argument("-v", "--verbose", action="store_true", help="also list the passing cases")
    ap.add_argument("-k", default="", help="only cases whose op or text contains this")
    ap.add_argument("--keep", help="write the graphs and .npy files here (kept)")
    args = ap.parse_args(argv)
    if not os.access(args.smeltc, os.X_OK):
        print(f"torch_forward: {args.smeltc} is not an executable smeltc")
        return 2
    t0 = time.time()
    cases = [c for c in CASES if args.k in c.op or args.k in c.text]
    tmp = None
    if args.keep:
        root = os.path.abspath(args.keep)
        os.makedirs(root, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="smelt-torch-")
        root = tmp.name
    try:
        for k, c in enumerate(cases):
            c.lines = c.render(k)
            for j, a in enumerate(c.args):
                np.save(os.path.join(root, f"{c.prefix}i{j}.npy"), a)
        good = [c for c in cases if not c.expect_error]
        bad = [c for c in cases if c.expect_error]
        nb = max(1, min(16, os.cpu_count() or 4))
        per = (len(good) + nb - 1) // nb
        batches = [Batch(args.smeltc, root, f"b{i}", good[i * per:(i + 1) * per]) for i in range(nb)]
        with ThreadPoolExecutor(max_workers=nb) as ex:
            list(ex.map(lambda b: b.run(), batches))
            list(ex.map(lambda kc: run_error_case(args.smeltc, root, *kc), enumerate(bad)))
    finally:
        if tmp:
            tmp.cleanup()
    failed = [c for c in cases if c.failure]
    for c in failed:
        print(f"FAIL {c.label()}: {c.failure}")
    if args.verbose:
        for c in cases:
            if not c.failure:
                rej = f"  [both reject: torch: {c.torch_error or c.reject} | smelt: " \
                    f"{c.smelt_error.splitlines()[-1]}]" if c.expect_error else ""
                print(f"ok   {c.label()}{rej}")
    ops = sorted({c.op for c in cases})
    print(f"# {len(cases)} cases over {len(ops)} ops ({sum(c.expect_error for c in cases)} "
          f"expecting a rejection) in {time.time() - t0:.1f}s")
    print(f"{len(cases) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
