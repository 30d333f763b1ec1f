#!/usr/bin/env python3
"""Holds the library's dependencies to one direction: fails when a circle comes back.

The layers, from the top (README, "Repository"):
  src/bin/*      the binaries: read the settings, build the parts, run them
  settings       the environment, read once; builds the parts of core and aws
  aws::*         the AWS adapters (Lambda, S3, the batch path, CloudWatch metrics)
  core::*        decoding, the model, its heads, the response: nothing about AWS

Checked over every `crate::`, `super::` and `object_detector::`-free path in the library's non-test
code (a `#[cfg(test)]` module may reach further up, as tests do):
  1. core never names aws or settings; aws never names settings;
  2. no circle between the modules of core and aws (`core::detector`, `aws::lambda`, ...);
  3. no circle between the files of one folder (`aws/lambda/reply.rs` <-> `aws/lambda/error.rs`),
     the folder's `mod.rs` aside: it declares its files and re-exports them.

    python tools/check_layers.py [SRC_DIR]     # prints the module graph's edges; exit 1 on a breach
    python tools/check_layers.py --self-test   # shows each rule failing on a tree built to break it
"""
import pathlib
import re
import sys
import tempfile

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def strip(text):
    """The code without comments, string literals and `#[cfg(test)]` items."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'r#*"(?:.|\n)*?"#*|"(?:\\.|[^"\\])*"', '""', text)
    out, i = [], 0
    while True:
        j = text.find("#[cfg(test)]", i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        k = text.find("{", j)
        semi = text.find(";", j)
        if semi >= 0 and (k < 0 or semi < k):  # `#[cfg(test)] use ...;` or `mod x;`
            i = semi + 1
            continue
        depth, k = 0, k
        while k < len(text):
            depth += {"{": 1, "}": -1}.get(text[k], 0)
            k += 1
            if depth == 0:
                break
        i = k


def paths_after(text, start):
    """The paths of a use tree or path that begins at `start` (just after `crate::`)."""

    def tree(pos):
        found, prefix = [], []
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos < len(text) and text[pos] == "{":
                pos += 1
                while True:
                    sub, pos = tree(pos)
                    found += [prefix + s for s in sub]
                    while text[pos].isspace() or text[pos] == ",":
                        pos += 1
                    if text[pos] == "}":
                        return found, pos + 1
            m = IDENT.match(text, pos)
            if not m:
                return found + [prefix], pos
            prefix = prefix + [m.group()]
            pos = m.end()
            if text.startswith("::", pos):
                pos += 2
            else:
                return found + [prefix], pos

    return tree(start)[0]


def module_path(src, file):
    """`src/aws/lambda/reply.rs` -> ["aws", "lambda", "reply"]."""
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts.pop()
    return parts


def references(src, file):
    """(line, absolute path) for every path the file names in the crate."""
    here = module_path(src, file)
    # A file's `super` is its parent module; a folder's mod.rs is its module itself.
    text = strip(file.read_text())
    for m in re.finditer(r"\b(crate|super)::", text):
        line = text.count("\n", 0, m.start()) + 1
        for path in paths_after(text, m.end()):
            if m.group(1) == "crate":
                yield line, path
            else:
                base, rest = here[:-1], list(path)
                while rest and rest[0] == "super":
                    base, rest = base[:-1], rest[1:]
                yield line, base + rest


def unit(path, reexports):
    """The module a path lands in, at the granularity the rules speak of."""
    if path and path[0] in reexports:
        path = reexports[path[0]] + path[1:]
    if not path:
        return None
    if path[0] in ("core", "aws"):
        return "::".join(path[:2]) if len(path) > 1 else None
    return path[0]


def root_reexports(src):
    text = (src / "lib.rs").read_text()
    found = {}
    for m in re.finditer(r"pub use crate::([\w:]+)::(\{[^}]*\}|\w+);", text):
        names = re.findall(r"\w+", m.group(2))
        for name in names:
            found[name] = m.group(1).split("::")
    return found


def cycles(edges):
    """The strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
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

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def check(src, quiet=False):
    src = pathlib.Path(src)
    reexports = root_reexports(src)
    edges, sites, breaches = {}, {}, []
    folder_edges = {}
    for file in sorted(src.rglob("*.rs")):
        rel = file.relative_to(src)
        if rel.parts[0] == "bin" or rel.name == "lib.rs":
            continue
        here = module_path(src, file)
        source = unit(here, reexports)
        for line, path in references(src, file):
            target = unit(path, reexports)
            site = f"{file}:{line}"
            if target and target != source:
                edges.setdefault(source, set()).add(target)
                sites.setdefault((source, target), site)
                layer = source.split("::")[0]
                if layer == "core" and target.split("::")[0] in ("aws", "settings"):
                    breaches.append(f"{site}: core names {target}")
                if layer == "aws" and target == "settings":
                    breaches.append(f"{site}: aws names settings")
            # Files of one folder: `here` and the target share the folder and both are its files.
            if here[:-1] not in (["core"], ["aws"]) and file.name != "mod.rs" and len(path) > len(here) - 1 and path[: len(here) - 1] == here[:-1]:
                sibling = path[len(here) - 1]
                if sibling != here[-1] and (file.parent / f"{sibling}.rs").exists():
                    key = "/".join(here[:-1])
                    folder_edges.setdefault(key, {}).setdefault(here[-1], set()).add(sibling)
                    sites.setdefault((f"{key}/{here[-1]}", f"{key}/{sibling}"), site)
    for comp in cycles(edges):
        where = [sites[(a, b)] for a in comp for b in comp if (a, b) in sites]
        breaches.append(f"circle between {', '.join(comp)} (at {', '.join(where)})")
    for folder, graph in folder_edges.items():
        for comp in cycles(graph):
            names = [f"{folder}/{c}" for c in comp]
            where = [sites[(a, b)] for a in names for b in names if (a, b) in sites]
            breaches.append(f"circle between the files {', '.join(names)} (at {', '.join(where)})")
    if not quiet:
        for source in sorted(edges):
            print(f"{source} -> {', '.join(sorted(edges[source]))}")
        for b in breaches:
            print(f"check_layers: {b}", file=sys.stderr)
    return not breaches


def self_test():
    """Each rule, broken once in a small tree: the check must fail on it (and pass the clean tree)."""
    clean = {
        "lib.rs": "pub mod core; pub mod aws; pub mod settings;\npub use crate::core::error::{Error, Result};\n",
        "core/mod.rs": "pub mod error; pub mod detector;\n",
        "core/error.rs": "pub struct Error;\n",
        "core/detector.rs": "use crate::Error;\n#[cfg(test)]\nmod tests { use crate::settings::S; }\n",
        "aws/mod.rs": "pub mod lambda;\n",
        "aws/lambda/mod.rs": "mod reply; mod error;\n",
        "aws/lambda/reply.rs": "use super::error::E;\nuse crate::core::{detector::D, error::Error};\n",
        "aws/lambda/error.rs": "// use super::reply::R;\nconst S: &str = \"crate::settings\";\n",
        "settings.rs": "use crate::aws::lambda::Config;\n",
    }
    broken = {
        "core names aws": ("core/detector.rs", "use crate::aws::lambda::App;\n"),
        "aws names settings": ("aws/lambda/error.rs", "use crate::settings::Settings;\n"),
        "circle in core": ("core/error.rs", "use super::detector::D;\n"),
        "circle between files": ("aws/lambda/error.rs", "use super::reply::R;\n"),
        "circle in a nested use tree": ("core/error.rs", "use crate::{core::{detector::{self, D}}};\n"),
    }

    def run(files):
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in files.items():
                p = pathlib.Path(tmp, name)
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(text)
            return check(tmp, quiet=True)

    assert run(clean), "the clean tree must pass"
    for name, (file, line) in broken.items():
        files = dict(clean)
        files[file] = files[file] + line
        assert not run(files), f"the check missed: {name}"
    print(f"check_layers self-test: the clean tree passes, {len(broken)} broken trees fail")


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        self_test()
    else:
        src = sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent / "src"
        sys.exit(0 if check(src) else 1)
