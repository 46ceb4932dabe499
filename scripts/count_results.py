#!/usr/bin/env python3
"""Sum test results of the TS (TAP stream) and Python (JUnit XML) suites into one line.

Usage: count_results.py TAP_FILE JUNIT_XML  ->  one line per skipped test ('skipped: WHERE: REASON'),
then 'N passed, N failed, N skipped' as the last line.

A TAP point is counted when it is a leaf (an assertion), not a subtest's summary line; a subtest
that fails without a failing leaf (a crash, a timeout) counts as one failure. Skips are counted,
never dropped: a `# SKIP` leaf, a skipped subtest, and a subtest or whole file that planned zero
tests (`t.plan(0, reason)`: TAP `1..0 # reason`, its summary line `# SKIP reason`) each count once.
`# TODO` points count as skipped too (reason 'todo'). A missing or unreadable result file is a failure.
"""
from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

POINT = re.compile(r"^(\s*)(not ok|ok) \d+(?: - (.*?))?(?: # (SKIP|TODO)\b ?(.*))?$")
SUBTEST = re.compile(r"^(\s*)# Subtest: (.*)$")
TIME = re.compile(r" # time=[\d.]+m?s$")


@dataclass
class Counts:
    passed: int = 0
    failed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (where, reason)


def count_tap(path: str) -> Counts:
    c = Counts()
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except FileNotFoundError:
        c.failed = 1
        return c
    open_subtests: list[tuple[int, str, int]] = []  # (indent, name, failures counted when it opened)
    for line in lines:
        if m := SUBTEST.match(line):
            open_subtests.append((len(m.group(1)), m.group(2), c.failed))
            continue
        m = POINT.match(TIME.sub("", line))
        if not m:
            continue
        depth, ok, name, directive, reason = len(m.group(1)), m.group(2) == "ok", m.group(3) or "", m.group(4), m.group(5) or ""
        summary = bool(open_subtests) and open_subtests[-1][0] == depth
        parents = [n for _, n, _ in (open_subtests[:-1] if summary else open_subtests)]
        if summary:
            _, _, failed_before = open_subtests.pop()
        if directive is not None:
            c.skipped.append((" > ".join([*parents, name]), reason.strip() or ("todo" if directive == "TODO" else "no reason given")))
        elif summary:
            # a failing subtest with no failing leaf (crash, timeout, bad plan) still counts once
            if not ok and c.failed == failed_before:
                c.failed += 1
        elif ok:
            c.passed += 1
        else:
            c.failed += 1
    return c


def count_junit(path: str) -> Counts:
    c = Counts()
    try:
        root = ET.parse(path).getroot()
    except (FileNotFoundError, ET.ParseError):
        c.failed = 1
        return c
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            c.failed += 1
        elif (skip := case.find("skipped")) is not None:
            module = (case.get("classname") or "").replace(".", "/")
            reason = (skip.get("message") or skip.text or "no reason given").strip()
            c.skipped.append((f"{module}.py::{case.get('name')}", reason))
        else:
            c.passed += 1
    return c


def main(tap_path: str, junit_path: str) -> None:
    ts, py = count_tap(tap_path), count_junit(junit_path)
    for where, reason in ts.skipped + py.skipped:
        print(f"skipped: {where}: {reason}")
    for lang, c in (("typescript", ts), ("python", py)):
        print(f"{lang}: {c.passed} passed, {c.failed} failed, {len(c.skipped)} skipped")
    print(f"{ts.passed + py.passed} passed, {ts.failed + py.failed} failed, {len(ts.skipped) + len(py.skipped)} skipped")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
