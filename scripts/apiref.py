#!/usr/bin/env python3
"""API reference from the public headers: every LKS_API function, macro and
type with the comment above it, as Markdown. The headers are the source of
truth; docs/API.md is generated (`ninja -C build apiref`) and a test checks
it is current. Usage: apiref.py OUT.md HEADER..."""
import re
import sys


def entries(text):
    """(kind, name, comment, declaration) in header order."""
    lines = text.split("\n")
    comment, out, i = [], [], 0
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith("/*"):
            block = [line]
            while "*/" not in lines[i]:
                i += 1
                block.append(lines[i])
            comment = block
            i += 1
            continue
        m = re.match(r"^LKS_API .*?\b(lks_\w+)\(", line)
        if m:
            decl = [line]
            while ";" not in decl[-1]:
                i += 1
                decl.append(lines[i])
            out.append(("function", m.group(1), comment, decl))
            comment = []
        elif re.match(r"^typedef (struct|enum) (lks_\w+) \{", line):
            name = re.match(r"^typedef (struct|enum) (lks_\w+)", line).group(2)
            decl = [line]
            while not lines[i].startswith("}"):
                i += 1
                decl.append(lines[i])
            out.append(("type", name, comment, decl))
            comment = []
        elif re.match(r"^#define (LKS_\w+)", line) and not line.startswith("#define LKS_API"):
            out.append(("macro", re.match(r"^#define (LKS_\w+)", line).group(1), comment, [line]))
            comment = []
        elif line.strip() == "":
            comment = []
        i += 1
    return out


def clean(comment):
    text = []
    for c in comment:
        c = re.sub(r"^\s*/\*+\s?|\s*\*+/\s*$|^\s*\*\s?", "", c)
        text.append(c)
    return "\n".join(t for t in text).strip()


def main():
    out_path, headers = sys.argv[1], sys.argv[2:]
    doc = ["# lockstock API reference", "",
           "Generated from the public headers by `scripts/apiref.py` "
           "(`ninja -C build apiref`); the headers are the source of truth.", ""]
    for h in headers:
        name = h.split("/")[-1]
        doc += ["## " + name, ""]
        for kind, sym, comment, decl in entries(open(h).read()):
            doc += ["### `%s` (%s)" % (sym, kind), ""]
            text = clean(comment)
            if text:
                doc += [text, ""]
            doc += ["```c"] + decl + ["```", ""]
    open(out_path, "w").write("\n".join(doc))


main()
