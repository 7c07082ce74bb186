# SPDX-License-Identifier: GPL-2.0
#
#   make              build bucketfs.ko (and bucketfs_kunit.ko) against KDIR
#   make check        every test: host tests, rustfmt, module build, KUnit and
#                     guest tests in QEMU; ends with "N passed, N failed"
#   make check-full   the same, with 1000 damaged images and 100 abort/kill/retry cycles
#   make demo         boot the test kernel and run the demo in the guest
#   make tool         build the static bucketfs tool for the guest (target/guest/)
#   make bench        benchmarks in a guest, printed as a table of ratios
#   make kernel       build (or reuse) the cached test kernel
#   make install      install the modules into KDIR's modules directory
#
# KDIR defaults to the cached test kernel (built on first use); any
# Rust-enabled 6.12 tree built with the same LLVM=1 RUSTC works.

DEFAULT_KDIR := $(shell scripts/kernel.sh --dir)
KDIR ?= $(DEFAULT_KDIR)
RUSTC ?= /usr/bin/rustc
BINDGEN ?= $(HOME)/.cargo/bin/bindgen
KMAKE = $(MAKE) -C $(KDIR) M=$(CURDIR) LLVM=1 RUSTC=$(RUSTC) BINDGEN=$(BINDGEN)

.PHONY: all modules kernel install check check-full demo bench host-test fmt-check clean tool

all: modules

kernel:
	scripts/kernel.sh

modules:
	@if [ "$(KDIR)" = "$(DEFAULT_KDIR)" ]; then scripts/kernel.sh; fi
	$(KMAKE) modules

install: modules
	$(KMAKE) modules_install

# The userspace tool, linked statically so the guest's busybox initramfs can run it.
tool:
	RUSTFLAGS="-C target-feature=+crt-static" cargo build --release -p bucketfs-tool \
		--target x86_64-unknown-linux-gnu
	mkdir -p target/guest
	cp target/x86_64-unknown-linux-gnu/release/bucketfs target/guest/bucketfs

host-test:
	cargo test --workspace

fmt-check:
	scripts/fmt.sh --check

check:
	scripts/check.sh

# make check with 1000 damaged images and 100 abort/kill/retry cycles per kernel.
check-full:
	BUCKETFS_FULL=1 scripts/check.sh

demo:
	scripts/demo.sh

# Benchmarks in a guest on the bench kernel variant (kernel/bench.config, built on first use
# with its modules by scripts/build-modules.sh bench); the table goes to out/bench/table.md.
bench:
	scripts/bench.sh

clean:
	$(KMAKE) clean
	rm -rf generated
