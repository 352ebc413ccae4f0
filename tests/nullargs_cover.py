#!/usr/bin/env python3
"""Checks that the nullargs suite has a row for every pointer argument of
every public function: the prototypes of include/smelt/smelt.h against the
rows that `test_nullargs --list` prints (one "function argument" a line).

Usage: nullargs_cover.py HEADER TEST_NULLARGS
Exits 1, listing what is missing (or stale), when they differ."""
import re
import subprocess
import sys


def prototypes(text):
    """(function, [pointer argument names]) for each smelt_* prototype."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"^\s*#.*$", " ", text, flags=re.M)
    text = re.sub(r"\{[^{}]*\}", ";", text)  # struct bodies and inline bodies
    for decl in text.split(";"):
        decl = " ".join(decl.split())
        m = re.search(r"\b(smelt_\w+)\s*\((.*)\)$", decl)
        if not m or "typedef" in decl:
            continue
        name, params = m.group(1), m.group(2).strip()
        if params in ("", "void"):
            yield name, []
            continue
        ptrs = []
        for p in params.split(","):
            p = p.strip()
            if "*" in p or "[" in p:
                ptrs.append(re.search(r"(\w+)\s*(\[\s*\w*\s*\])?$", p).group(1))
        yield name, ptrs


def main():
    header, exe = sys.argv[1], sys.argv[2]
    with open(header) as f:
        want = {(fn, a) for fn, ptrs in prototypes(f.read()) for a in ptrs}
    out = subprocess.run([exe, "--list"], check=True, capture_output=True, text=True).stdout
    have = {tuple(line.split()[:2]) for line in out.splitlines() if line.strip()}
    missing, stale = sorted(want - have), sorted(have - want)
    for fn, a in missing:
        print(f"no row for {fn}({a} = NULL)")
    # extra rows for a field of an argument (options->object_path) are fine;
    # rows naming a function or argument the header lacks are not
    for fn, a in stale:
        if "->" not in a and "." not in a:
            print(f"a row for {fn}({a} = NULL), which the header does not declare")
            missing.append((fn, a))
    print(f"{len(want)} pointer arguments in the header, {len(have)} rows")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
