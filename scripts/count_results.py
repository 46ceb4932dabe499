#!/usr/bin/env python3
"""Sum test results of the TS (TAP stream) and Python (JUnit XML) suites into one line.

Usage: count_results.py TAP_FILE JUNIT_XML  ->  prints 'N passed, N failed'.
A TAP point is counted when it is a leaf (an assertion), not a subtest's summary line;
a subtest that fails without a failing leaf (a crash, a timeout) counts as one failure.
"""
import re
import sys
import xml.etree.ElementTree as ET

POINT = re.compile(r"^(\s*)(not ok|ok) \d+")
SUBTEST = re.compile(r"^(\s*)# Subtest")


def count_tap(path):
    passed = failed = 0
    open_subtests = []  # stack of (indent, failures counted when the subtest opened)
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except FileNotFoundError:
        return 0, 1
    for line in lines:
        if m := SUBTEST.match(line):
            open_subtests.append((len(m.group(1)), failed))
            continue
        m = POINT.match(line)
        if not m or "# SKIP" in line or "# TODO" in line:
            continue
        depth, ok = len(m.group(1)), m.group(2) == "ok"
        if open_subtests and open_subtests[-1][0] == depth:  # a subtest's summary line
            _, failed_before = open_subtests.pop()
            # a failing subtest with no failing leaf (crash, timeout, bad plan) still counts once
            if not ok and failed == failed_before:
                failed += 1
        elif ok:
            passed += 1
        else:
            failed += 1
    return passed, failed


def count_junit(path):
    try:
        root = ET.parse(path).getroot()
    except (FileNotFoundError, ET.ParseError):
        return 0, 1
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    passed = failed = 0
    for s in suites:
        tests = int(s.get("tests", 0))
        bad = int(s.get("failures", 0)) + int(s.get("errors", 0))
        skipped = int(s.get("skipped", 0))
        passed += tests - bad - skipped
        failed += bad
    return passed, failed


if __name__ == "__main__":
    tp, tf = count_tap(sys.argv[1])
    pp, pf = count_junit(sys.argv[2])
    print(f"typescript: {tp} passed, {tf} failed", file=sys.stderr)
    print(f"python: {pp} passed, {pf} failed", file=sys.stderr)
    print(f"{tp + pp} passed, {tf + pf} failed")
