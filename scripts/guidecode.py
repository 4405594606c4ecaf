#!/usr/bin/env python3
"""Turns the C fragments of a Markdown guide into one C file that must
compile against the installed headers (tests/packaging/check.sh): each
```c block becomes a function of its own, its function definitions go
before it, its #include lines to the top. The fragments assume a handle c,
a lease l (also called lease), a status rc and the few application names
declared below; everything else they use must be lockstock's, as written.
Usage: guidecode.py GUIDE.md OUT.c"""
import re
import sys

ASSUMED = """\
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lockstock.h>
/* what the guide's fragments take from the application around them */
struct order { const char *receipt; };
int write_charge(lks_conn *c, struct order *o, int64_t fence);
static const unsigned char body_sha256[32];
static const char *idempotency_key = "key";
static struct order order;
"""


def blocks(text):
    out, cur = [], None
    for line in text.split("\n"):
        if cur is None and line.strip() == "```c":
            cur = []
        elif cur is not None and line.strip() == "```":
            out.append(cur)
            cur = None
        elif cur is not None:
            cur.append(line)
    return out


def main(md, dst):
    includes, defs, bodies = [], [], []
    for n, block in enumerate(blocks(open(md).read()), 1):
        body, i = [], 0
        while i < len(block):
            line = block[i]
            if line.startswith("#include"):
                includes.append(line)
            elif re.match(r"^(static\s+)?[a-z_][a-z_0-9 *]*\([^;]*$", line) and not line.startswith(("if", "switch", "for", "while", "return")):
                # a function definition: up to its closing brace at column 0
                j = i
                while block[j] != "}":
                    j += 1
                defs.append("\n".join(block[i:j + 1]))
                i = j
            else:
                body.append(line)
            i += 1
        bodies.append(f"void guide_block_{n}(lks_conn *c, lks_lease *l, lks_lease *lease, int rc);\n"
                      f"void guide_block_{n}(lks_conn *c, lks_lease *l, lks_lease *lease, int rc)\n"
                      "{\n\t(void)c, (void)l, (void)lease, (void)rc;\n\t{\n"
                      + "\n".join("\t" + b for b in body) + "\n\t}\n}\n")
    with open(dst, "w") as f:
        f.write(ASSUMED + "\n".join(dict.fromkeys(includes)) + "\n\n")
        f.write("\n\n".join(defs) + "\n\n" + "\n".join(bodies))
    print(f"{len(bodies)} blocks")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
