#!/usr/bin/env python3
"""Keeps the shared library's imports one-way.

Usage: module_layers.py SRC_DIR [--edges]

Reads every `.rs` file under SRC_DIR (test modules, `#[cfg(test)] mod … { … }` at the end of a
file, are left out), collects what each file imports from the crate (`use crate::…`,
`use super::…`, `use self::…`, and `crate::…` paths in the code), and fails (exit 1) when:

- two or more files import each other in a circle (a link between a module and its own
  parent or child, `mod.rs` and the files beside it, does not count: a parent declares its
  children); or
- a module imports from a layer above its own. The layers are listed at the top of
  SRC_DIR/lib.rs, bottom up, one per line: `//! - N name: module, module, …` (N from 0). A
  module in layer N may import from layers 0..=N only.

Prints each circle, each upward import, and a last line `circles: C, upward imports: U`.
`--edges` also prints every import between files.
"""
import collections
import os
import re
import sys


def modules(root):
    """Module path (tuple of segments) -> file path relative to root."""
    found = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            if not name.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            found[tuple(parts)] = rel
    return found


TEST_MODULE = re.compile(r"#\[cfg\(test\)\]\s*\n\s*(?:pub(?:\([a-z]+\))?\s+)?mod \w+\s*\{")


def code_of(text):
    """The file without its trailing test module, comments and string literals."""
    cut = TEST_MODULE.search(text)
    if cut:
        text = text[: cut.start()]
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def use_paths(tree):
    """Every path a `use` tree names: `a::{b, c::{d, e}}` -> a::b, a::c::d, a::c::e."""
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)

    def expand(prefix, rest):
        if not rest:
            return [prefix]
        if rest.startswith("{"):
            inner, depth, part, out = rest[1:-1], 0, "", []
            for ch in inner:
                depth += (ch == "{") - (ch == "}")
                if ch == "," and depth == 0:
                    out += expand(prefix, part)
                    part = ""
                else:
                    part += ch
            return out + (expand(prefix, part) if part else [])
        head, _, tail = rest.partition("::")
        return expand(prefix + [head], tail)

    return [p for p in expand([], tree) if p]


def target(path, here, known):
    """The module file a crate-relative path lands in, from module `here`."""
    if path[0] == "crate":
        path = path[1:]
    elif path[0] in ("super", "self"):
        base = list(here)
        while path and path[0] in ("super", "self"):
            if path[0] == "super":
                base = base[:-1]
            path = path[1:]
        path = base + path
    elif tuple(list(here) + [path[0]]) in known:
        path = list(here) + path
    else:
        return None
    for i in range(len(path), 0, -1):
        if tuple(path[:i]) in known:
            return tuple(path[:i])
    return None


def imports(root, known):
    """module -> {imported module: names}."""
    edges = collections.defaultdict(lambda: collections.defaultdict(set))
    for here, rel in known.items():
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            code = code_of(f.read())
        paths = []
        for m in re.finditer(r"\buse\s+([^;]+);", code):
            paths += use_paths(m.group(1))
        for m in re.finditer(r"(?<![:\w])((?:crate|super)(?:::[A-Za-z_]\w*)+)", code):
            paths.append(m.group(1).split("::"))
        for p in paths:
            t = target(p, here, known)
            if t and t != here and not related(here, t):
                edges[here][t].add(p[-1])
    return edges


def related(a, b):
    """A module and its own ancestor or descendant."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def circles(edges, known):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(known):
        if v not in index:
            visit(v)
    return out


LAYER_LINE = re.compile(r"^//!\s*-\s*(\d+)\s+([^:]+):\s*(.+)$")


def layers(root):
    """Top-level module -> layer number, from lib.rs's `//! - N name: a, b` lines."""
    of = {}
    with open(os.path.join(root, "lib.rs"), encoding="utf-8") as f:
        for line in f:
            m = LAYER_LINE.match(line.strip())
            if m:
                for name in re.split(r"[,\s]+", m.group(3).strip().rstrip(".")):
                    if name:
                        of[name.strip("`")] = int(m.group(1))
    return of


def name(mod):
    return "/".join(mod) or "lib"


def main(argv):
    root = argv[1] if len(argv) > 1 else "shared/src"
    known = modules(root)
    edges = imports(root, known)
    if "--edges" in argv:
        for a in sorted(edges):
            for b in sorted(edges[a]):
                print(f"{name(a)} -> {name(b)}: {', '.join(sorted(edges[a][b]))}")
    found = circles(edges, known)
    for comp in found:
        print(f"circle of {len(comp)} files: {' '.join(name(c) for c in comp)}")
    layer = layers(root)
    tops = {m[0] for m in known if m}
    unlayered = sorted(t for t in tops if t not in layer)
    for t in unlayered:
        print(f"module {t} is in no layer: add it to a `//! - N name: …` line of lib.rs")
    upward = 0
    for a in sorted(edges):
        for b in sorted(edges[a]):
            if a and b and a[0] != b[0] and layer.get(a[0], -1) < layer.get(b[0], -1):
                upward += 1
                print(
                    f"upward import: {name(a)} (layer {layer.get(a[0])}) uses "
                    f"{name(b)} (layer {layer.get(b[0])}): {', '.join(sorted(edges[a][b]))}"
                )
    print(f"circles: {len(found)}, upward imports: {upward}, modules in no layer: {len(unlayered)}")
    return 1 if found or upward or unlayered else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
