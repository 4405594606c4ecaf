#!/usr/bin/env python3
"""API reference from the public headers: an index by module, then every
LKS_API function, callback type, type and macro with the comment above it,
under the module (the header's "/* ---- name ---- */" sections) it belongs
to, as Markdown. The headers are the source of truth; docs/API.md is
generated (`ninja -C build apiref`) and a test checks it is current.
Usage: apiref.py OUT.md HEADER..."""
import re
import sys


def take_until(lines, i, done):
    """lines[i..j] up to the first line for which done(line) holds."""
    decl = [lines[i]]
    while not done(decl[-1]):
        i += 1
        decl.append(lines[i])
    return decl, i


def entries(text):
    """(section, kind, name, comment, declaration) in header order."""
    lines = text.split("\n")
    section, comment, out, i = "", [], [], 0
    while i < len(lines):
        line = lines[i]
        sec = re.match(r"^/\* -+ (.*?) -+ \*/$", line.strip())
        if sec:
            section, comment = sec.group(1), []
            i += 1
            continue
        if line.strip().startswith("/*"):
            block, i = take_until(lines, i, lambda l: "*/" in l)
            comment = block
            i += 1
            continue
        m = re.match(r"^LKS_API .*?\b(lks_\w+)\(", line)
        cb = re.match(r"^typedef [\w\s\*]+\(\*(lks_\w+)\)\(", line)
        st = re.match(r"^typedef (struct|enum) (lks_\w+) \{", line)
        mac = re.match(r"^#define (LKS_\w+)", line)
        if m:
            decl, i = take_until(lines, i, lambda l: ";" in l)
            out.append((section, "function", m.group(1), comment, decl))
            comment = []
        elif cb:
            decl, i = take_until(lines, i, lambda l: ";" in l)
            out.append((section, "callback", cb.group(1), comment, decl))
            comment = []
        elif st:
            decl, i = take_until(lines, i, lambda l: l.startswith("}"))
            out.append((section, "type", st.group(2), comment, decl))
            comment = []
        elif mac and not line.startswith("#define LKS_API"):
            # a macro continued with backslashes is shown whole
            decl, i = take_until(lines, i, lambda l: not l.rstrip().endswith("\\"))
            out.append((section, "macro", mac.group(1), comment, decl))
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


def anchor(name):
    """Anchors are lower case: a macro (LKS_X_INIT) and a function
    (lks_x_init) of the same spelling get anchors of their own."""
    return name.lower() + ("-macro" if name.isupper() else "")


def main():
    out_path, headers = sys.argv[1], sys.argv[2:]
    doc = ["# lockstock API reference", "",
           "Generated from the public headers by `scripts/apiref.py` "
           "(`ninja -C build apiref`); the headers are the source of truth. "
           "Each entry is the declaration with the comment the header gives it: "
           "what the call does, who owns what, which thread may call it and every "
           "outcome it returns. Threads: a handle (`lks_conn`) is used by one thread "
           "at a time; the exceptions are said where they apply.", "",
           "## Index", ""]
    body = []
    for h in headers:
        name = h.split("/")[-1]
        found = entries(open(h).read())
        sections = []
        for sec, kind, sym, comment, decl in found:
            sec = sec or ("adopting a native connection" if name != "lockstock.h" else "basics")
            if not sections or sections[-1][0] != sec:
                sections.append((sec, []))
            sections[-1][1].append((kind, sym, comment, decl))
        doc += ["**%s**" % name, ""]
        body += ["## %s" % name, ""]
        seen = set()
        for sec, items in sections:
            listed = []
            for k, s, c, d in items:
                if s not in listed:
                    listed.append(s)
            doc += ["- %s: %s" % (sec, ", ".join("[`%s`](#%s)" % (s, anchor(s)) for s in listed))]
            body += ["### %s" % sec[0].upper() + sec[1:], ""]
            for kind, sym, comment, decl in items:
                if sym not in seen:  # a second spelling (C++) shares the first's anchor
                    body += ['<a id="%s"></a>' % anchor(sym), ""]
                seen.add(sym)
                body += ["#### `%s` (%s)" % (sym, kind), ""]
                text = clean(comment)
                if text:
                    body += [text, ""]
                body += ["```c"] + decl + ["```", ""]
        doc += [""]
    open(out_path, "w").write("\n".join(doc + body))


main()
