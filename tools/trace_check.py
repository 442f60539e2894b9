#!/usr/bin/env python3
"""Validates a Chrome trace-event JSON file as weave writes it (and ui.perfetto.dev reads it).

Checks, per thread (pid, tid) in file order: timestamps never go backwards; B/E slices pair and
nest; X (complete) slices nest (one inside another, or after it, never overlapping); every flow
start (s) has exactly one end (f) with a later or equal timestamp, and the reverse; every async
begin (b) has one end (e) with the same category and id. Prints a summary, or the first
problems, and exits 1 when there are any.

usage: trace_check.py FILE [--min-events N]
"""
import json
import sys


def check(events):
    errors = []
    last_ts = {}
    stacks = {}   # (pid, tid) -> [end times of open X slices]
    bstacks = {}  # (pid, tid) -> [names of open B slices]
    flows_s, flows_f = {}, {}
    asyncs = {}
    for i, e in enumerate(events):
        ph = e.get("ph")
        if ph == "M":
            continue
        key = (e.get("pid"), e.get("tid"))
        ts = e.get("ts")
        if not isinstance(ts, (int, float)):
            errors.append(f"event {i}: no numeric ts")
            continue
        if ts < last_ts.get(key, float("-inf")):
            errors.append(f"event {i}: ts {ts} goes back on thread {key} (after {last_ts[key]})")
        last_ts[key] = ts
        if ph == "X":
            dur = e.get("dur", 0)
            if dur < 0:
                errors.append(f"event {i}: negative dur")
            st = stacks.setdefault(key, [])
            while st and st[-1] <= ts + 1e-6:  # µs with 3 decimals: a rounding apart is after
                st.pop()
            if st and ts + dur > st[-1] + 1e-6:
                errors.append(f"event {i}: slice [{ts}, {ts + dur}] overlaps its parent ending {st[-1]}")
            st.append(ts + dur)
        elif ph == "B":
            bstacks.setdefault(key, []).append(e.get("name"))
        elif ph == "E":
            st = bstacks.setdefault(key, [])
            if not st:
                errors.append(f"event {i}: E without B on thread {key}")
            else:
                st.pop()
        elif ph == "s":
            if e.get("id") in flows_s:
                errors.append(f"event {i}: flow {e.get('id')} starts twice")
            flows_s[e.get("id")] = ts
        elif ph == "f":
            if e.get("id") in flows_f:
                errors.append(f"event {i}: flow {e.get('id')} ends twice")
            flows_f[e.get("id")] = ts
        elif ph in ("b", "e"):
            k = (e.get("cat"), e.get("id"))
            n = asyncs.get(k, 0) + (1 if ph == "b" else -1)
            if n < 0:
                errors.append(f"event {i}: async end without begin {k}")
                n = 0
            asyncs[k] = n
        elif ph in ("C", "i", "I", "n"):
            pass
        else:
            errors.append(f"event {i}: unknown phase {ph!r}")
    for key, st in bstacks.items():
        if st:
            errors.append(f"thread {key}: {len(st)} B slice(s) never end ({st[-1]})")
    for fid, ts in flows_s.items():
        if fid not in flows_f:
            errors.append(f"flow {fid} starts but never ends")
        elif flows_f[fid] < ts:
            errors.append(f"flow {fid} ends at {flows_f[fid]} before it starts at {ts}")
    for fid in flows_f:
        if fid not in flows_s:
            errors.append(f"flow {fid} ends but never starts")
    for k, n in asyncs.items():
        if n != 0:
            errors.append(f"async {k}: {n} begin(s) without end")
    return errors, len(flows_s)


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    min_events = 0
    if "--min-events" in argv:
        min_events = int(argv[argv.index("--min-events") + 1])
    try:
        with open(argv[1]) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print(f"{argv[1]}: not a readable JSON trace: {e}")
        return 1
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    errors, flows = check(events)
    if len(events) < min_events:
        errors.append(f"{len(events)} events, fewer than {min_events}")
    if errors:
        for e in errors[:20]:
            print(f"{argv[1]}: {e}")
        if len(errors) > 20:
            print(f"... and {len(errors) - 20} more")
        return 1
    slices = sum(1 for e in events if e.get("ph") == "X")
    print(f"{argv[1]}: ok: {len(events)} events, {slices} slices, {flows} flows")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
