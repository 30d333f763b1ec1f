#!/usr/bin/env python3
"""Checks a function's stdout against its log: every line is a CloudWatch Embedded Metric Format record
that follows the specification's structure, and every request the log names has exactly one request
record, and one more per image for a request of several (its log line's `images` counts them); per-class
records, which carry a `Label`, may follow them.

    tools/check_emf.py STDOUT LOG

The structure checked: `_aws` holds exactly `Timestamp` (integer milliseconds) and `CloudWatchMetrics`;
each directive exactly `Namespace`, `Dimensions`, `Metrics`; at most 9 dimensions per set, each naming a
top-level string; 1 to 100 metrics per directive, each naming a top-level number, with a CloudWatch unit.
"""
import json
import sys

UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
    "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
    "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
    "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
}


def problems(doc):
    """What is wrong with one record, as text; empty when nothing is."""
    out = []
    aws = doc.get("_aws")
    if not isinstance(aws, dict) or set(aws) != {"Timestamp", "CloudWatchMetrics"}:
        return ["_aws must hold exactly Timestamp and CloudWatchMetrics"]
    if not isinstance(aws["Timestamp"], int) or aws["Timestamp"] < 0:
        out.append("Timestamp is not integer milliseconds")
    directives = aws["CloudWatchMetrics"]
    if not isinstance(directives, list) or not directives:
        return out + ["CloudWatchMetrics is not a non-empty array"]
    for d in directives:
        if not isinstance(d, dict) or set(d) != {"Namespace", "Dimensions", "Metrics"}:
            out.append(f"a directive must hold exactly Namespace, Dimensions, Metrics: {d}")
            continue
        if not isinstance(d["Namespace"], str) or not 1 <= len(d["Namespace"]) <= 255:
            out.append("Namespace")
        for dims in d["Dimensions"]:
            if len(dims) > 9:
                out.append(f"more than 9 dimensions: {dims}")
            for name in dims:
                if not isinstance(doc.get(name), str) or not doc[name]:
                    out.append(f"dimension {name} is not a top-level string")
        if not 1 <= len(d["Metrics"]) <= 100:
            out.append("a directive must have 1 to 100 metrics")
        for m in d["Metrics"]:
            if not set(m) <= {"Name", "Unit", "StorageResolution"}:
                out.append(f"unknown member in {m}")
            value = doc.get(m.get("Name"))
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                out.append(f"metric {m.get('Name')} is not a top-level number")
            if m.get("Unit") not in UNITS:
                out.append(f"{m.get('Unit')} is not a CloudWatch unit")
    return out


def main():
    stdout_path, log_path = sys.argv[1], sys.argv[2]
    requests = []
    for line in open(log_path):
        if '"message":"request"' not in line:
            continue
        entry = json.loads(line)
        images = entry.get("images") or {}
        requests += [entry["request_id"]] * (1 + images.get("detected", 0) + images.get("failed", 0))
    records, bad = [], []
    for n, line in enumerate(open(stdout_path), 1):
        try:
            doc = json.loads(line)
        except ValueError:
            bad.append(f"stdout line {n} is not JSON: {line[:120]!r}")
            continue
        bad += [f"stdout line {n}: {p}" for p in problems(doc)]
        records.append(doc)
    per_request = [r.get("request_id") for r in records if "Label" not in r]
    if sorted(per_request) != sorted(requests):
        bad.append(
            f"{len(per_request)} request records for {len(requests)} logged requests "
            f"(missing: {sorted(set(requests) - set(per_request))[:5]}, "
            f"extra: {sorted(set(per_request) - set(requests))[:5]})"
        )
    if bad:
        sys.exit("check_emf: " + "\ncheck_emf: ".join(bad[:20]))
    print(f"check_emf: {len(records)} valid EMF records on stdout, one per each of {len(requests)} requests and images")


if __name__ == "__main__":
    main()
