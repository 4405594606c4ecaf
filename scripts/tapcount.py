#!/usr/bin/env python3
"""Counts the cases of one meson test run from its JSON log (meson-logs/
NAME.json, one object per test): each TAP line "ok N" passes, "not ok N"
fails, either with "# SKIP" is skipped; a test without TAP output is one
case (its exit status). A test meson did not pass (failed, timed out, a
crash after its last case) counts at least one failure, and so does a test
that printed no case: a suite that ran nothing must never look green.
Prints "PASSED FAILED SKIPPED", then "failed TEST" for each failing test
and "case TEST: LINE" for each failing case with its diagnostics, so the
end of a long run still names what failed and why."""
import json
import re
import sys

CASE = re.compile(r"^(not )?ok \d+[^#]*(#\s*(\w+))?", re.IGNORECASE)
PLAN = re.compile(r"^1\.\.\d+")
STDERR_SAYS = re.compile(r"^(ERROR|FAILED)|SUMMARY: \w+Sanitizer|runtime error:")


def failing_cases(test, limit=8):
    """The "not ok" lines of a test and the diagnostic lines after each."""
    out = []
    lines = (test.get("stdout") or "").splitlines()
    for i, line in enumerate(lines):
        m = CASE.match(line)
        if not m or not m.group(1) or (m.group(3) or "").upper() == "SKIP":
            continue
        out.append(line.strip())
        for diag in lines[i + 1:i + 1 + limit]:
            if not diag.lstrip().startswith("#"):
                break
            out.append("  " + diag.strip())
    # cmocka prints fail_msg() and print_error() on stderr; sanitizers too
    said = [l.strip() for l in (test.get("stderr") or "").splitlines() if STDERR_SAYS.search(l)]
    return out + ["  stderr: " + l for l in said[:limit]]


def count(test):
    passed = failed = skipped = 0
    tap = False
    for line in (test.get("stdout") or "").splitlines():
        if PLAN.match(line):
            tap = True
            continue
        m = CASE.match(line)
        if not m:
            continue
        tap = True
        if m.group(3) and m.group(3).upper() == "SKIP":
            skipped += 1
        elif m.group(1):
            failed += 1
        else:
            passed += 1
    result = test.get("result", "")
    if not tap:
        return (1, 0, 0) if result == "OK" else (0, 1, 0)
    if result not in ("OK", "SKIP") and failed == 0:
        failed = 1  # meson saw a failure the cases do not show
    if passed + failed == 0:
        failed = 1  # nothing ran
    return passed, failed, skipped


def main(path):
    totals = [0, 0, 0]
    bad = []
    try:
        with open(path) as f:
            tests = [json.loads(line) for line in f if line.strip()]
    except OSError as e:
        print(0, 1, 0)
        print("failed", f"(no meson log: {e})")
        print("case", f"(no meson log: {e})")
        return
    if not tests:
        bad.append(("(no test ran)", [], "none"))
        totals[1] += 1
    for t in tests:
        p, f, k = count(t)
        totals = [totals[0] + p, totals[1] + f, totals[2] + k]
        if f:
            bad.append((t.get("name", "?"), failing_cases(t), t.get("result", "?")))
    print(*totals)
    for name, _, _ in bad:
        print("failed", name)
    for name, cases, result in bad:
        for line in cases or [f"(no failing case printed; meson: {result})"]:
            print(f"case {name}: {line}")


if __name__ == "__main__":
    main(sys.argv[1])
