#!/usr/bin/python3
# Cross-check of smelt's safetensors reader and writer (src/safetensors.c)
# against Python's `safetensors` package, in both directions.
#
#   tests/crosscheck/safetensors_interop.py ST_TOOL [-v] [--keep DIR]
#
# ST_TOOL is the build's tests/st_tool (dump, copy and write with smelt).
#
#  - Python -> smelt: files written by safetensors.numpy.save_file (and by
#    safetensors.torch.save_file when torch is importable) are dumped by
#    `st_tool dump`; every name, dtype, shape and data byte (NaN payloads and
#    -0 included) and every metadata pair must match what Python wrote.
#  - smelt -> Python: arrays saved as .npy by numpy are written by `st_tool
#    write`; safetensors.numpy.load_file (and safetensors.torch.load_file)
#    must read back the same values, dtypes and shapes, and safe_open the
#    same metadata.
#  - Byte identity: `st_tool copy` of a file written by Python gives the
#    same bytes (at most one metadata pair: Python writes several in the
#    random order of a Rust HashMap, smelt sorts them).
#  - Dtypes smelt lacks (F16, BF16, U8, ...) are refused with a message that
#    names the tensor and the dtype.
#
# Without the safetensors package (pip install safetensors) the script
# emulates its writer and reader with struct + json (the format is small:
# see src/safetensors.h) and says so; that checks the format, not the
# package. SMELT_ST_EMULATE=1 forces the emulation. Exits 77 (meson's
# "skipped") when numpy cannot be imported; prints 'N passed, M failed' and
# exits 1 when anything failed. SMELTC_WRAPPER (e.g. a valgrind command
# line) is put in front of every st_tool run.
import json
import os
import shlex
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
except Exception as e:  # pragma: no cover - depends on the machine
    print(f"safetensors_interop: SKIP: cannot import numpy with {sys.executable}: {e}")
    sys.exit(77)

HAVE_PACKAGE = False
if os.environ.get("SMELT_ST_EMULATE", "") in ("", "0"):
    try:
        import safetensors
        import safetensors.numpy

        HAVE_PACKAGE = True
    except Exception:
        pass

try:
    import torch

    HAVE_TORCH = True
except Exception:
    HAVE_TORCH = False

ST_TORCH = None
if HAVE_PACKAGE and HAVE_TORCH:
    try:
        import safetensors.torch as ST_TORCH
    except Exception:
        pass

# --------------------------------------------------------------- emulation
# The library's layout: compact JSON, "__metadata__" first, tensors ordered
# by dtype (widest first: its Rust Dtype enum, descending) then name, data
# contiguous in that order, header padded with spaces to a multiple of 8.
ST_DTYPE = {np.dtype(np.bool_): "BOOL", np.dtype(np.uint8): "U8", np.dtype(np.int8): "I8",
            np.dtype(np.int16): "I16", np.dtype(np.uint16): "U16", np.dtype(np.float16): "F16",
            np.dtype(np.int32): "I32", np.dtype(np.uint32): "U32", np.dtype(np.float32): "F32",
            np.dtype(np.float64): "F64", np.dtype(np.int64): "I64", np.dtype(np.uint64): "U64"}
ENUM_ORDER = ["BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64",
              "I64", "U64"]
NP_OF = {v: k for k, v in ST_DTYPE.items()}


def emu_save(tensors, path, metadata=None):
    items = sorted(tensors.items(),
                   key=lambda kv: (-ENUM_ORDER.index(ST_DTYPE[kv[1].dtype]), kv[0].encode()))
    header, blobs, at = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, a in items:
        b = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": ST_DTYPE[a.dtype], "shape": list(a.shape),
                        "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def emu_load(path):
    """Arrays and metadata; strict like the library on offsets."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", None)
    out, spans = {}, []
    for name, info in header.items():
        b, e = info["data_offsets"]
        dt = np.dtype(NP_OF[info["dtype"]]).newbyteorder("<")
        a = np.frombuffer(data[b:e], dtype=dt).reshape(info["shape"])
        out[name] = a.astype(dt.newbyteorder("="))
        spans.append((b, e))
    at = 0
    for b, e in sorted(spans):
        if b != at:
            raise ValueError("invalid offsets")
        at = e
    if at != len(data):
        raise ValueError("file not fully covered")
    return out, meta


def py_save(tensors, path, metadata=None):
    if HAVE_PACKAGE:
        safetensors.numpy.save_file(tensors, path, metadata=metadata)
    else:
        emu_save(tensors, path, metadata)


def py_load(path):
    if HAVE_PACKAGE:
        arrays = safetensors.numpy.load_file(path)
        with safetensors.safe_open(path, framework="np") as f:
            meta = f.metadata()
        return arrays, meta
    return emu_load(path)


# ------------------------------------------------------------------ tool

class Tool:
    def __init__(self, path):
        self.cmd = shlex.split(os.environ.get("SMELTC_WRAPPER", "")) + [path]

    def run(self, *args):
        p = subprocess.run(self.cmd + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8", "replace").strip()


def le_hex(a):
    return np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes().hex()


# ----------------------------------------------------------------- cases

def bits(dtype, words):
    """Floats from their bit patterns (NaN payloads, -0, subnormals)."""
    u = np.uint32 if dtype == np.float32 else np.uint64
    return np.array(words, dtype=u).view(dtype)


def cases():
    rng = np.random.default_rng(1234)
    c = []
    c.append(("every dtype", {
        "w": rng.standard_normal((3, 4)).astype(np.float32),
        "b": rng.standard_normal(5),
        "i": rng.integers(-2**31, 2**31, (2, 3), dtype=np.int32),
        "n": np.array(-7, np.int64),
        "m": rng.random(7) < 0.5,
    }, {"format": "np"}))
    c.append(("rank 0 to 8", {
        f"r{k}": rng.standard_normal(tuple(1 + (d % 3) for d in range(k))).astype(np.float32)
        for k in range(9)}, None))
    c.append(("size-0 tensors", {
        "e": np.zeros((0,), np.float32), "f": np.zeros((2, 0, 3), np.int64),
        "g": np.zeros((0, 5), np.bool_), "h": np.zeros((4, 0), np.float64),
        "x": np.arange(3, dtype=np.int32)}, None))
    c.append(("special values", {
        "f64": bits(np.float64, [0x7ff8000000000000, 0x7ff0000000000001, 0xfff8000000000123,
                                 0x7ff0000000000000, 0xfff0000000000000, 0x8000000000000000,
                                 0x0000000000000001, 0x7fefffffffffffff]),
        "f32": bits(np.float32, [0x7fc00000, 0x7f800001, 0xffc00123, 0x7f800000, 0xff800000,
                                 0x80000000, 0x00000001, 0x7f7fffff]),
        "i64": np.array([2**63 - 1, -2**63, 0, -1], np.int64),
        "i32": np.array([2**31 - 1, -2**31, 0, -1], np.int32),
    }, None))
    c.append(("names", {
        "": np.array([1.5], np.float32),
        "layer.0.weight": np.ones((2, 2), np.float32),
        "q\"\\/\x01\b\t\n\x0c\r\x1f\x7f\u00e9\u20ac\U0001f600": np.array([5], np.int32),
        "\u65e5\u672c": np.array([True]),
        "a" * 300: np.array([1], np.int64),
    }, {"k\u00e9y": "v\n\u2028\"\\"}))
    c.append(("no tensors", {}, None))
    c.append(("no tensors, metadata", {}, {"only": "metadata"}))
    c.append(("metadata, several keys", {"x": np.arange(4, dtype=np.float64)},
              {"format": "pt", "step": "1000", "": "empty key", "z": ""}))
    c.append(("many tensors", {
        f"block{i}.{['w', 'b', 'idx', 'mask'][i % 4]}":
            [rng.standard_normal((i % 5, 3)).astype(np.float32),
             rng.standard_normal(i % 7),
             rng.integers(-99, 99, (i % 4 + 1,), dtype=np.int64),
             rng.random((2, i % 3)) < 0.5][i % 4]
        for i in range(400)}, None))
    c.append(("a large tensor", {
        "big": rng.standard_normal((1024, 1024)).astype(np.float32),
        "tail": np.arange(3, dtype=np.int32)}, None))
    return c


class Checker:
    def __init__(self, tool, root, verbose):
        self.tool, self.root, self.verbose = tool, root, verbose
        self.passed = self.failed = 0
        self.k = 0

    def path(self, stem, ext=".safetensors"):
        self.k += 1
        return os.path.join(self.root, f"{self.k:03d}_{stem}{ext}")

    def result(self, what, problem):
        if problem:
            self.failed += 1
            print(f"FAIL {what}: {problem}")
        else:
            self.passed += 1
            if self.verbose:
                print(f"ok   {what}")

    # Python writes, smelt reads
    def python_to_smelt(self, what, tensors, meta):
        path = self.path("py")
        py_save(tensors, path, meta)
        self.result(f"python -> smelt: {what}", self.compare_dump(path, tensors, meta))
        return path

    def compare_dump(self, path, tensors, meta):
        rc, out, err = self.tool.run("dump", path)
        if rc != 0:
            return f"st_tool dump failed ({rc}): {err}"
        d = json.loads(out)
        if d["metadata"] != (meta or {}):
            return f"metadata {d['metadata']!r}, want {meta!r}"
        got = {t["name"]: t for t in d["tensors"]}
        if sorted(got) != sorted(tensors):
            return f"names {sorted(got)!r}, want {sorted(tensors)!r}"
        names = [t["name"] for t in d["tensors"]]
        if names != sorted(names, key=lambda s: s.encode()):
            return f"tensors not sorted by name: {names!r}"
        for name, a in tensors.items():
            t = got[name]
            if t["dtype"] != ST_DTYPE[a.dtype]:
                return f"{name!r}: dtype {t['dtype']}, want {ST_DTYPE[a.dtype]}"
            if tuple(t["shape"]) != a.shape:
                return f"{name!r}: shape {t['shape']}, want {list(a.shape)}"
            want = le_hex(a)
            if t["hex"] != want:
                i = next(k for k in range(0, max(len(want), len(t['hex'])), 2)
                         if t["hex"][k:k + 2] != want[k:k + 2])
                return f"{name!r}: data differs at byte {i // 2}"
        return None

    # smelt writes, Python reads
    def smelt_to_python(self, what, tensors, meta):
        args, names = [], list(tensors)
        for j, name in enumerate(names):
            f = self.path(f"in{j}", ".npy")
            np.save(f, tensors[name])
            args += [name, f]
        margs = []
        for k, v in (meta or {}).items():
            margs += ["-m", k, v]
        out = self.path("smelt")
        rc, _, err = self.tool.run("write", out, *margs, *args)
        if rc != 0:
            self.result(f"smelt -> python: {what}", f"st_tool write failed ({rc}): {err}")
            return
        try:
            arrays, got_meta = py_load(out)
        except Exception as e:
            self.result(f"smelt -> python: {what}", f"Python cannot read it: {e}")
            return
        self.result(f"smelt -> python: {what}",
                    self.compare_arrays(arrays, got_meta, tensors, meta))
        if ST_TORCH:
            self.result(f"smelt -> torch: {what}", self.compare_torch(out, tensors))
        # smelt's file is what Python would write (up to metadata order)
        if meta is None or len(meta) <= 1:
            ref = self.path("ref")
            py_save(tensors, ref, meta)
            self.result(f"smelt writes Python's bytes: {what}", same_file(out, ref))

    def compare_arrays(self, arrays, got_meta, tensors, meta):
        if (got_meta or {}) != (meta or {}):
            return f"metadata {got_meta!r}, want {meta!r}"
        if sorted(arrays) != sorted(tensors):
            return f"names {sorted(arrays)!r}, want {sorted(tensors)!r}"
        for name, a in tensors.items():
            g = arrays[name]
            if g.dtype != a.dtype or g.shape != a.shape:
                return f"{name!r}: {g.dtype}{list(g.shape)}, want {a.dtype}{list(a.shape)}"
            if le_hex(g) != le_hex(a):
                return f"{name!r}: values differ"
        return None

    def compare_torch(self, path, tensors):
        got = ST_TORCH.load_file(path)
        for name, a in tensors.items():
            g = got[name]
            want = torch.from_numpy(np.ascontiguousarray(a))
            if g.dtype != want.dtype or tuple(g.shape) != a.shape:
                return f"{name!r}: torch {g.dtype}{list(g.shape)}, want {want.dtype}{list(a.shape)}"
            if g.numpy().tobytes() != want.numpy().tobytes():
                return f"{name!r}: values differ"
        return None

    def copy_identical(self, what, src):
        out = self.path("copy")
        rc, _, err = self.tool.run("copy", src, out)
        if rc != 0:
            self.result(f"copy keeps Python's bytes: {what}", f"st_tool copy failed ({rc}): {err}")
            return
        self.result(f"copy keeps Python's bytes: {what}", same_file(src, out))

    def refused(self, what, path, want):
        rc, _, err = self.tool.run("dump", path)
        if rc != 1 or want not in err:
            self.result(what, f"status {rc}, message {err!r}; want status 1 and {want!r}")
        else:
            self.result(what, None)


def same_file(a, b):
    with open(a, "rb") as f:
        x = f.read()
    with open(b, "rb") as f:
        y = f.read()
    if x == y:
        return None
    i = next((k for k in range(min(len(x), len(y))) if x[k] != y[k]), min(len(x), len(y)))
    return (f"{os.path.basename(a)} and {os.path.basename(b)} differ at byte {i} "
            f"({len(x)} vs {len(y)} bytes)")


def main():
    args = sys.argv[1:]
    verbose = "-v" in args
    keep = None
    if "--keep" in args:
        keep = args[args.index("--keep") + 1]
        args = [a for a in args if a not in ("--keep", keep)]
    args = [a for a in args if a != "-v"]
    if len(args) != 1:
        print(__doc__ or "usage: safetensors_interop.py ST_TOOL [-v] [--keep DIR]")
        return 2
    tool = Tool(args[0])
    if HAVE_PACKAGE:
        print(f"safetensors_interop: the safetensors package {safetensors.__version__}"
              + (f", torch {torch.__version__}" if HAVE_TORCH else ", no torch"))
    else:
        print("safetensors_interop: the safetensors package is not importable: emulating its "
              "format with struct + json (pip install safetensors for the real check)")
    with tempfile.TemporaryDirectory(prefix="smelt-st-") as tmp:
        root = keep or tmp
        os.makedirs(root, exist_ok=True)
        ck = Checker(tool, root, verbose)
        for what, tensors, meta in cases():
            src = ck.python_to_smelt(what, tensors, meta)
            ck.smelt_to_python(what, tensors, meta)
            if meta is None or len(meta) <= 1:
                ck.copy_identical(what, src)

        # dtypes smelt does not have
        for dt, name in [(np.float16, "F16"), (np.uint8, "U8"), (np.int8, "I8"),
                         (np.int16, "I16"), (np.uint64, "U64")]:
            p = ck.path(f"{name}")
            py_save({"ok": np.ones(2, np.float32), "h": np.ones(3, dt)}, p)
            ck.refused(f"refuses {name}", p, f'tensor "h": dtype {name} is not supported')

        if ST_TORCH:
            g = torch.Generator().manual_seed(7)
            tt = {"linear.weight": torch.randn(4, 3, generator=g),
                  "linear.bias": torch.randn(4, generator=g, dtype=torch.float64),
                  "steps": torch.tensor(12, dtype=torch.int64),
                  "idx": torch.tensor([[1, -2], [3, 2**31 - 1]], dtype=torch.int32),
                  "mask": torch.tensor([True, False, True]),
                  "empty": torch.zeros(0, 3)}
            p = ck.path("torch")
            ST_TORCH.save_file(tt, p, metadata={"format": "pt"})
            ck.result("torch -> smelt", ck.compare_dump(p, {k: v.numpy() for k, v in tt.items()},
                                                        {"format": "pt"}))
            ck.copy_identical("torch", p)
            p = ck.path("bf16")
            ST_TORCH.save_file({"w": torch.ones(2, 2, dtype=torch.bfloat16)}, p)
            ck.refused("refuses BF16 (torch)", p, 'tensor "w": dtype BF16 is not supported')
        else:
            print("safetensors_interop: the torch checks are skipped (they need torch and the "
                  "safetensors package)")

        # a file Python refuses, smelt refuses too (truncated data)
        p = ck.path("trunc")
        py_save({"x": np.arange(4, dtype=np.float32)}, p)
        with open(p, "rb") as f:
            raw = f.read()
        with open(p, "wb") as f:
            f.write(raw[:-1])
        ck.refused("refuses a truncated file", p,
                   'tensor "x": data_offsets [0, 16] run past the end of the data (15 bytes)')
        try:
            py_load(p)
            ck.result("Python refuses the truncated file", "it read it")
        except Exception:
            ck.result("Python refuses the truncated file", None)

    print(f"{ck.passed} passed, {ck.failed} failed")
    return 1 if ck.failed else 0


if __name__ == "__main__":
    sys.exit(main())
