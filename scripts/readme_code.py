#!/usr/bin/env python3
"""The README's first C block, as a file: the program a new user copies,
built (examples/basics) and run against real servers (tests/examples_test.c)."""
import sys

src, out = sys.argv[1], sys.argv[2]
lines, inside = [], False
for line in open(src, encoding="utf-8"):
    if not inside and line.rstrip() == "```c":
        inside = True
    elif inside and line.rstrip() == "```":
        break
    elif inside:
        lines.append(line)
if len(lines) < 20:
    sys.exit("README.md: no C program found")
with open(out, "w", encoding="utf-8") as f:
    f.write("/* generated from README.md by scripts/readme_code.py */\n")
    f.writelines(lines)
