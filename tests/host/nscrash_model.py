#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The namespace workload of tests/host/nscrash.sh and its model.

  nscrash_model.py gen SEED NOPS SYNC_EVERY > ops.txt
      A random workload (mkdir, touch, ln, ln -s, mv, mv over a file, rm, rmdir, chmod) over a
      few hundred names, with a sync line (sync, syncfs or fsync, in turn) every SYNC_EVERY
      operations. Deterministic for a seed.
  nscrash_model.py check OPS CONSOLE
      CONSOLE is boot 1's and boot 2's consoles, concatenated: "SYNCED k end" lines (boot 1:
      operation k and every one before it had returned, then a sync returned) and the listing
      boot 2 printed after the replay ("LST ino|type|nlink|mode|size|name" lines between
      LISTING-BEGIN and LISTING-END). Passes (exit 0) when the listing is the model's state
      after some prefix of P operations with P >= the last synced k: every synced operation is
      there, and the rest is a consistent prefix (transactions in journal order). Prints
      "nscrash: ..." lines saying which P matched, or the closest one and its differences.
"""
import random
import re
import sys


class Model:
    """The namespace as paths: each path is an inode id; inodes have a type, mode, target."""

    def __init__(self):
        self.paths = {".": 0}
        self.inodes = {0: {"type": "dir", "mode": 0o755, "target": None}}
        self.next_id = 1

    def copy(self):
        m = Model()
        m.paths = dict(self.paths)
        m.inodes = {k: dict(v) for k, v in self.inodes.items()}
        m.next_id = self.next_id
        return m

    def new(self, path, typ, mode, target=None):
        self.inodes[self.next_id] = {"type": typ, "mode": mode, "target": target}
        self.paths[path] = self.next_id
        self.next_id += 1

    def children(self, d):
        pre = d + "/"
        return [p for p in self.paths if p.startswith(pre) and "/" not in p[len(pre):]]

    def subtree(self, d):
        pre = d + "/"
        return [p for p in self.paths if p == d or p.startswith(pre)]

    def drop_name(self, path):
        ino = self.paths.pop(path)
        if ino not in self.paths.values():
            del self.inodes[ino]

    def apply(self, op):
        w = op.split(" ")
        c = w[0]
        if c == "mkdir":
            self.new(w[1], "dir", 0o755)
        elif c == "touch":
            self.new(w[1], "file", 0o644)
        elif c == "sym":
            self.new(w[2], "symlink", 0o777, w[1])
        elif c == "ln":
            self.paths[w[2]] = self.paths[w[1]]
        elif c == "mv":
            src, dst = w[1], w[2]
            if dst in self.paths:
                self.drop_name(dst)
            for p in self.subtree(src):
                self.paths[dst + p[len(src):]] = self.paths.pop(p)
        elif c in ("rm", "rmdir"):
            self.drop_name(w[1])
        elif c == "chmod":
            self.inodes[self.paths[w[2]]]["mode"] = int(w[1], 8)
        else:
            raise ValueError(op)

    def listing(self):
        """path -> (type, nlink, mode, size, target, inode id); a directory's size is not
        modelled (None)."""
        out = {}
        for p, ino in self.paths.items():
            i = self.inodes[ino]
            if i["type"] == "dir":
                nlink = 2 + sum(1 for c in self.children(p) if self.inodes[self.paths[c]]["type"] == "dir")
                size = None
            else:
                nlink = sum(1 for v in self.paths.values() if v == ino)
                size = len(i["target"]) if i["type"] == "symlink" else 0
            out[p] = (i["type"], nlink, i["mode"], size, i["target"], ino)
        return out


def gen(seed, nops, sync_every):
    rnd = random.Random(seed)
    m = Model()
    counter = 0
    ops = []
    syncs = ["sync", "syncfs", "fsync"]
    nsync = 0

    def fresh(parent):
        nonlocal counter
        counter += 1
        return f"{parent}/n{counter}"

    while len(ops) < nops:
        dirs = [p for p, i in m.paths.items() if m.inodes[i]["type"] == "dir"]
        files = [p for p, i in m.paths.items() if m.inodes[i]["type"] == "file"]
        links = [p for p, i in m.paths.items() if m.inodes[i]["type"] == "symlink"]
        deep_ok = [d for d in dirs if d.count("/") < 6]
        r = rnd.random()
        op = None
        if r < 0.12 or not files:
            op = f"mkdir {fresh(rnd.choice(deep_ok))}"
        elif r < 0.40:
            op = f"touch {fresh(rnd.choice(deep_ok))}"
        elif r < 0.50:
            op = f"ln {rnd.choice(files)} {fresh(rnd.choice(deep_ok))}"
        elif r < 0.56:
            op = f"sym t/{rnd.randrange(10 ** rnd.randrange(1, 8))} {fresh(rnd.choice(deep_ok))}"
        elif r < 0.66:
            op = f"mv {rnd.choice(files + links)} {fresh(rnd.choice(deep_ok))}"
        elif r < 0.71:
            a, b = rnd.choice(files), rnd.choice(files)
            if a != b and m.paths[a] != m.paths[b]:
                op = f"mv {a} {b}"
        elif r < 0.76:
            src = rnd.choice(dirs)
            dst_parent = rnd.choice(deep_ok)
            if src != "." and dst_parent != src and not dst_parent.startswith(src + "/"):
                op = f"mv {src} {fresh(dst_parent)}"
        elif r < 0.90:
            if len(files) + len(links) > 20:
                op = f"rm {rnd.choice(files + links)}"
        elif r < 0.95:
            empty = [d for d in dirs if d != "." and not m.children(d)]
            if empty:
                op = f"rmdir {rnd.choice(empty)}"
        else:
            op = f"chmod {rnd.choice(['600', '640', '700', '755', '444'])} {rnd.choice(files)}"
        if op is None:
            continue
        m.apply(op)
        ops.append(op)
        if len(ops) % sync_every == 0:
            kind = syncs[nsync % 3]
            nsync += 1
            if kind == "fsync":
                target = rnd.choice([p for p, i in m.paths.items() if m.inodes[i]["type"] == "file"] or ["."])
                ops.append(f"fsync {target}")
            else:
                ops.append(kind)
    for op in ops:
        print(op)


def parse_listing(lines):
    out = {}
    for line in lines:
        ino, typ, nlink, mode, size, name = line.split("|", 5)
        target = None
        if typ == "symbolic link":
            mm = re.fullmatch(r"'(.*)' -> '(.*)'", name)
            if not mm:
                raise ValueError(f"bad symlink line: {line}")
            name, target = mm.group(1), mm.group(2)
        typ = {"directory": "dir", "regular empty file": "file", "regular file": "file",
               "symbolic link": "symlink"}.get(typ, typ)
        size = None if typ == "dir" else int(size)
        out[name] = (typ, int(nlink), int(mode, 8), size, target, int(ino))
    return out


def diff(model, got):
    """Differences between a model listing and the listing seen; [] when they agree,
    including which paths share an inode."""
    d = []
    for p in sorted(set(model) | set(got)):
        if p not in got:
            d.append(f"missing {p} {model[p][:5]}")
        elif p not in model:
            d.append(f"unexpected {p} {got[p][:5]}")
        elif model[p][:5] != got[p][:5]:
            d.append(f"differs {p}: expected {model[p][:5]}, got {got[p][:5]}")
    if not d:
        # The same sharing of inodes: model ids and inode numbers pair one to one.
        pair = {}
        back = {}
        for p in model:
            a, b = model[p][5], got[p][5]
            if pair.setdefault(a, b) != b or back.setdefault(b, a) != a:
                d.append(f"inode sharing differs at {p}")
                break
    return d


def check(ops_file, console_file):
    ops = [l.rstrip("\n") for l in open(ops_file) if l.strip()]
    text = open(console_file, errors="replace").read().replace("\r", "")
    synced = [int(x) for x in re.findall(r"^SYNCED (\d+) end$", text, re.M)]
    last = max(synced) if synced else 0
    if "LISTING-END" not in text:
        print("nscrash: boot 2 printed no complete listing")
        return 1
    body = text.split("LISTING-BEGIN", 1)[1].split("LISTING-END", 1)[0]
    got = parse_listing([l[4:] for l in body.split("\n") if l.startswith("LST ")])
    real = [op for op in ops if op.split(" ")[0] not in ("sync", "syncfs", "fsync")]
    m = Model()
    best = None
    for p in range(0, len(real) + 1):
        if p > 0:
            m.apply(real[p - 1])
        if p < last:
            continue
        d = diff(m.listing(), got)
        if not d:
            print(f"nscrash: the tree after replay is the state after {p} operation(s); "
                  f"{last} were synced, {len(real)} in the workload")
            return 0
        if best is None or len(d) < len(best[1]):
            best = (p, d)
    print(f"nscrash: no state after {last}..{len(real)} operations matches; closest after "
          f"{best[0]} operation(s), {len(best[1])} difference(s):")
    for line in best[1][:8]:
        print(f"nscrash:   {line}")
    return 1


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "check":
        sys.exit(check(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
