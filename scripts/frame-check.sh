#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Stack frames of the module's functions: disassembles bucketfs.ko and fails naming every
# function whose frame is above the limit (2048 bytes, the kernel's CONFIG_FRAME_WARN for C on
# 64-bit). The kernel stack is 16 KiB and the mount, commit and superblock write chain runs
# deep under the VFS: a large frame there overflows it.
#
# A function's frame is read from its prologue: the `sub $N,%rsp` there plus 8 bytes for each
# register pushed before it (the return address is not counted).
#
#   scripts/frame-check.sh [MODULE.ko [LIMIT]]    (default: bucketfs.ko 2048)
#
# Prints the largest frames, then one result line: "frame-check: ok ..." or
# "frame-check: FAIL ..."; exits non-zero on failure.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
ko=${1:-$here/bucketfs.ko}
limit=${2:-2048}
if [ ! -f "$ko" ]; then
	echo "frame-check: FAIL $ko: no such module (make modules first)"
	exit 1
fi

# One line per function: "FRAME SUB NAME", largest first.
frames=$(objdump -dC --no-show-raw-insn -j .text "$ko" | awk '
	function hex(s,    i, v) {
		v = 0
		for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
		return v
	}
	function flush() {
		if (name != "") printf "%d %d %s\n", sub_bytes + 8 * pushes, sub_bytes, name
	}
	/^[0-9a-f]+ <.*>:$/ {
		flush()
		name = substr($0, index($0, "<") + 1)
		name = substr(name, 1, length(name) - 2)
		pushes = 0; sub_bytes = 0; insns = 0; prologue = 1
		next
	}
	prologue && /^ +[0-9a-f]+:\t/ {
		split($0, parts, "\t")
		insn = parts[2]
		insns++
		if (insn ~ /^push /) {
			pushes++
		} else if (insn ~ /^sub +\$0x[0-9a-f]+,%rsp$/) {
			imm = insn
			sub(/^sub +\$0x/, "", imm)
			sub(/,%rsp$/, "", imm)
			sub_bytes += hex(imm)
		} else if (insn ~ /^(call|jmp|ret)/ || insns > 40) {
			prologue = 0
		}
	}
	END { flush() }
' | sort -rn)

if [ -z "$frames" ]; then
	echo "frame-check: FAIL $ko: no functions found in the disassembly"
	exit 1
fi
echo "largest stack frames in $(basename "$ko") (bytes: frame with pushes, sub \$N,%rsp):"
head -n 15 <<<"$frames" | awk '{ f = $1; s = $2; $1 = ""; $2 = ""; printf "  %6d %6d %s\n", f, s, substr($0, 3) }'

over=$(awk -v limit="$limit" '$1 > limit' <<<"$frames")
if [ -n "$over" ]; then
	n=$(wc -l <<<"$over")
	echo "frame-check: FAIL $n function(s) with a stack frame above $limit bytes:"
	awk '{ f = $1; $1 = ""; $2 = ""; printf "  %d bytes: %s\n", f, substr($0, 3) }' <<<"$over"
	exit 1
fi
echo "frame-check: ok every stack frame in $(basename "$ko") is at most $limit bytes" \
	"(largest $(head -n 1 <<<"$frames" | cut -d' ' -f1))"
