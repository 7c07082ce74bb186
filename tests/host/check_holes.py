#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Checks the holes of drained disk images against what the guest reported.

Usage: check_holes.py CONSOLE_LOG DISK0 DISK1 ...

Every bucket the scenario filled and that was then discarded must be a hole, unless a live
btree node was written there after the discard; no live btree node, superblock or journal
entry may be a hole; discard commands must be at most 1/64 of the buckets discarded.
"""
import json
import os
import re
import sys

BLOCK = 4096


def has_data(fd, start, end):
    try:
        return os.lseek(fd, start, os.SEEK_DATA) < end
    except OSError:  # ENXIO: no data after start
        return False


def main():
    log, disks = sys.argv[1], sys.argv[2:]
    text = open(log, errors="replace").read().replace("\r", "")
    filled = [tuple(map(int, m)) for m in re.findall(r"scenario: filled dev (\d+) buckets (\d+)\.\.(\d+)", text)]
    nodes = {(int(m), int(b)) for m, b in re.findall(r"^node member (\d+) bucket (\d+)$", text, re.M)}
    supers = [json.loads(s) for s in re.findall(r"^SUPER (\{.*\})$", text, re.M)]
    counters = [tuple(map(int, c)) for c in re.findall(r"^COUNTERS (\d+) (\d+) (\d+)$", text, re.M)]
    results = []

    def report(name, ok, why=""):
        results.append(ok)
        print(f"HOST-TEST ok {name}" if ok else f"HOST-TEST FAIL {name}: {why}")

    if not (filled and nodes and len(supers) == len(disks) and counters):
        report("guest_reported_layout", False, "missing scenario/node/superblock/counter lines")
        return 1
    members = {s["member_index"]: s["members"][s["member_index"]] for s in supers}
    fds = [os.open(d, os.O_RDONLY) for d in disks]
    bad_holes, reused, discarded = [], 0, 0
    for dev, first, end in filled:
        bs = members[dev]["bucket_size"]
        for b in range(first, end):
            if (dev, b) in nodes:
                reused += 1
                continue
            if has_data(fds[dev], b * bs, (b + 1) * bs):
                bad_holes.append((dev, b))
            else:
                discarded += 1
    print(f"holes: {discarded} filled buckets are holes, {reused} were reused for btree nodes")
    report("discarded_buckets_are_holes", not bad_holes, f"{len(bad_holes)} filled buckets still hold data, e.g. {bad_holes[:3]}")
    report("discarded_some", discarded >= 8000, f"only {discarded} holes")
    live_holes = [(m, b) for m, b in nodes if not has_data(fds[m], b * members[m]["bucket_size"], b * members[m]["bucket_size"] + BLOCK)]
    report("live_btree_nodes_not_holes", not live_holes, f"{live_holes[:3]}")
    sb_holes = [i for i, fd in enumerate(fds) if not has_data(fd, 4096, 12288)]
    report("superblocks_not_holes", not sb_holes, f"devices {sb_holes}")
    j_holes = [i for i, fd in enumerate(fds)
               if not has_data(fd, members[i]["journal_start"] * members[i]["bucket_size"],
                               members[i]["journal_start"] * members[i]["bucket_size"] + BLOCK)]
    report("journal_not_holes", not j_holes, f"devices {j_holes}")
    for dev, buckets, commands in counters:
        print(f"dev-{dev}: {buckets} buckets discarded with {commands} commands")
        report(f"dev{dev}_commands_at_most_1_per_64_buckets", commands * 64 <= buckets, f"{commands} commands for {buckets} buckets")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
