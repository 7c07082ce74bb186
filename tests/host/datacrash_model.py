#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The workload and the checker of tests/host/datacrash.sh.

  datacrash_model.py gen SEED NOPS              the workload, one operation a line, on stdout
  datacrash_model.py record SEED F B G          the 4096 bytes of a record (for a look by hand)
  datacrash_model.py check OPS CONSOLE DUMP     checks the files after the power cut

Operations (run by the guest in order; k counts every line from 0):
  w F B G D   write record (F, B, G) at block B of /mnt/fF (D=1: O_DIRECT, else buffered)
  s F         fsync /mnt/fF           d F   fdatasync /mnt/fF          S   syncfs of /mnt
The guest prints "SYNCED k end" once sync operation k has returned. Record (F, B, G) is the line
"datacrash SEED file F block B gen G" padded with spaces to 4095 bytes and a newline: its
content follows from its place and the seed, so a block read from anywhere else cannot pass.

The check, per block of each file: let k be the last sync that returned and covers the file
(its fsync, its fdatasync, or a syncfs). The block must hold the last record written there
before k, or (written after k, maybe on the disk) any record written there later; a block with
no record written before k may also read zeros. The file is at least as long as its last block
written before k, and no longer than the last block the workload ever writes. DUMP is the files
one after another, FILE_BYTES each (zero-padded), with the console's "SIZE F BYTES" lines
giving the sizes.
"""
import random
import re
import sys

BLOCK = 4096
FILES = 4
FILE_BLOCKS = 512  # 2 MiB a file at most
FILE_BYTES = FILE_BLOCKS * BLOCK


def record(seed, f, b, g):
    line = f"datacrash {seed} file {f} block {b} gen {g}"
    return line.ljust(BLOCK - 1).encode() + b"\n"


def gen(seed, nops):
    rng = random.Random(seed)
    ends = [0] * FILES  # blocks written so far, per file: where an append goes
    gens = {}
    out = []
    for _ in range(nops):
        r = rng.random()
        if r < 0.12:
            kind = rng.choice(["s", "s", "d", "S"])
            # A file sync names a file that exists (written at least once); syncfs otherwise.
            written = [i for i in range(FILES) if ends[i] > 0]
            if kind == "S" or not written:
                out.append("S")
            else:
                out.append(f"{kind} {rng.choice(written)}")
            continue
        f = rng.randrange(FILES)
        where = rng.random()
        if where < 0.4 or ends[f] == 0:  # append (extends the file)
            b = min(ends[f], FILE_BLOCKS - 1)
        elif where < 0.85:  # overwrite inside what was written
            b = rng.randrange(ends[f])
        else:  # past the end: a hole between
            b = rng.randrange(min(ends[f] + 1, FILE_BLOCKS - 1), FILE_BLOCKS)
        ends[f] = max(ends[f], b + 1)
        g = gens.get((f, b), 0) + 1
        gens[(f, b)] = g
        out.append(f"w {f} {b} {g} {1 if rng.random() < 0.25 else 0}")
    return out


def check(ops_path, console_path, dump_path):
    ops = [line.split() for line in open(ops_path).read().splitlines()]
    text = open(console_path, errors="replace").read().replace("\r", "")
    seed = int(re.search(r"^DATACRASH-SEED (\S+)$", text, re.M).group(1))
    synced = {int(k) for k in re.findall(r"^SYNCED (\d+) end$", text, re.M)}
    sizes = {int(f): int(s) for f, s in re.findall(r"^SIZE (\d+) (\d+)$", text, re.M)}
    dump = open(dump_path, "rb").read()
    problems = []
    # The last sync that returned covering each file.
    ksync = [-1] * FILES
    for k in sorted(synced):
        op = ops[k]
        if op[0] == "S":
            ksync = [max(x, k) for x in ksync]
        elif op[0] in ("s", "d"):
            f = int(op[1])
            ksync[f] = max(ksync[f], k)
    checked = 0
    for f in range(FILES):
        writes = {}  # block -> [(k, gen)]
        for k, op in enumerate(ops):
            if op[0] == "w" and int(op[1]) == f:
                writes.setdefault(int(op[2]), []).append((k, int(op[3])))
        synced_end = max([b + 1 for b, ws in writes.items() if ws[0][0] < ksync[f]], default=0)
        max_end = max([b + 1 for b in writes], default=0)
        size = sizes.get(f)
        if size is None:
            if synced_end:
                problems.append(f"file {f}: missing, but {synced_end} block(s) of it were synced")
            continue
        if size < synced_end * BLOCK or size > max_end * BLOCK:
            problems.append(f"file {f}: {size} bytes, expected {synced_end * BLOCK}..{max_end * BLOCK}")
        data = dump[f * FILE_BYTES:f * FILE_BYTES + min(size, FILE_BYTES)]
        for b in range((len(data) + BLOCK - 1) // BLOCK):
            got = data[b * BLOCK:(b + 1) * BLOCK]
            ws = writes.get(b, [])
            before = [g for k, g in ws if k < ksync[f]]
            after = [g for k, g in ws if k > ksync[f]]
            allowed = [record(seed, f, b, g)[:len(got)] for g in before[-1:] + after]
            if not before:
                allowed.append(bytes(len(got)))
            checked += 1
            if got not in allowed:
                shown = got[:60].rstrip(b" \0").decode(errors="replace") or "zeros"
                want = f"gen {before[-1]}" if before else "zeros"
                problems.append(
                    f"file {f} block {b}: holds '{shown}', expected {want}"
                    + (f" or a later gen {after}" if after else "")
                    + f" (last sync covering it: op {ksync[f]})")
    last = max(synced, default=None)
    print(f"datacrash: {checked} blocks checked in {len(sizes)} file(s); last sync returned: op {last}; "
          f"syncs covering each file: {ksync}")
    for p in problems[:10]:
        print(f"datacrash: {p}")
    return 1 if problems else 0


def main():
    cmd = sys.argv[1]
    if cmd == "gen":
        print("\n".join(gen(int(sys.argv[2]), int(sys.argv[3]))))
        return 0
    if cmd == "record":
        sys.stdout.buffer.write(record(*map(int, sys.argv[2:6])))
        return 0
    if cmd == "check":
        return check(*sys.argv[2:5])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
