#!/usr/bin/env python3
"""Fails when any captured log line of the test suite carries an email, a phone number or a
name used by the tests. Reads the JSON lines written by the e2e harness (target/e2e-logs.jsonl)."""
import json
import re
import sys

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
E164 = re.compile(r"\+\d{8,15}")
# The fixtures' phone numbers in any spelling (412 34 567, 41234567, 0047 41234567 ...).
# Bounded so that digits inside hex ids and UUIDs ("acc_…ea412847338…") never match.
FIXTURE_PHONE = re.compile(r"(?<![0-9A-Za-z-])(?:\+47\s?|0047\s?)?412[\s-]?\d{2}[\s-]?\d{3}(?![0-9A-Za-z-])")
NAMES = ["Ola", "Nordmann", "Kari", "Åse", "Ødegård", "Hansen", "Bea", "Nobody", "Eve"]
NAME = re.compile(r"\b(" + "|".join(map(re.escape, NAMES)) + r")\b")


def offences(text):
    return [p.pattern for p in (EMAIL, E164, FIXTURE_PHONE, NAME) if p.search(text)]


def main(path):
    canary = json.dumps({"fields": {"message": "x", "v": "Ola ola@example.no +4741234567"}})
    assert len(offences(canary)) == 4, "scanner patterns are broken"
    assert offences(json.dumps({"fields": {"m": "412 34 567"}})) == [FIXTURE_PHONE.pattern], "phone pattern is broken"
    assert offences(json.dumps({"fields": {"account_id": "acc_4538854c12ad4e6ea412847338d8e1b8"}})) == [], "ids must not match"
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except FileNotFoundError:
        print(f"scan_logs: {path} is missing: the e2e tests did not capture logs", file=sys.stderr)
        return 1
    if not lines:
        print(f"scan_logs: {path} is empty: nothing was captured", file=sys.stderr)
        return 1
    bad = 0
    for n, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = {"fields": line}
        found = offences(json.dumps(record.get("fields", record), ensure_ascii=False))
        if found:
            bad += 1
            print(f"scan_logs: line {n} leaks personal data ({', '.join(found)}): {line[:300]}", file=sys.stderr)
    print(f"scan_logs: {len(lines)} log lines scanned, {bad} with personal data")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "target/e2e-logs.jsonl"))
