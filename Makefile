# uniso — build, test, demo, benchmark, VM tests.
#   make demo    build the sample appliance's universal ISO, mount it, use it, boot a
#                disk view copied out of the mount with BIOS and with UEFI
#   make test    the whole test suite (needs root: loop devices, mknod, FUSE)
#   make bench   benchmarks against conventional tools (writes bench/results.md)
#   make fuzz    fuzz the readers of untrusted bytes with fast-check (fuzz/): ISO 9660,
#                squashfs (every compressor), tar (plain, gz, xz, bz2, zst), the image
#                opener, the HTTP server; a minute per target (FUZZ_SECONDS=N), one or
#                some with FUZZ_TARGET=iso,tar; findings in fuzz/out/. Not part of make test.
#   make vm-test boot the disk views in QEMU from the mount with BIOS (raw, vmdk, qcow2,
#                vhd, vhdx, vdi, azure) and with UEFI (raw, qcow2, vhdx), and the universal
#                ISO live from CD (one: make vm-test-raw, vm-test-vmdk, ..., vm-test-azure,
#                vm-test-live; vm-test-uefi boots the three with UEFI, or one:
#                vm-test-uefi-raw, vm-test-uefi-qcow2, vm-test-uefi-vhdx)
#   make test-large  a universal ISO over 4 GiB end to end (vm-images/large-test.sh: 4.5 GiB
#                of incompressible data in the boot-check appliance; build, verify, kernel
#                and FUSE reads, a live boot in QEMU); takes minutes. Not part of make test.

SHELL := /bin/bash
NODE ?= node
NODEDIR ?= $(shell dirname $$(dirname $$(readlink -f $$(command -v $(NODE)))))
NPM ?= npm

.PHONY: all sysdeps build deps native ts test test-large demo bench fuzz clean distclean

# The disk views make vm-test boots with BIOS and with UEFI (vm-images/vm-test.sh
# knows each view's path and QEMU format).
VM_TEST_BIOS := raw vmdk qcow2 vhd vhdx vdi azure
VM_TEST_UEFI := raw qcow2 vhdx
VM_TEST_ONE := $(addprefix vm-test-,$(VM_TEST_BIOS) live) $(addprefix vm-test-uefi-,$(VM_TEST_UEFI))
.PHONY: vm-test vm-test-uefi $(VM_TEST_ONE)

all: build

sysdeps:
	@.ci/install-deps.sh

deps: sysdeps node_modules/.package-lock.json

node_modules/.package-lock.json: package-lock.json
	$(NPM) ci --no-audit --no-fund
	@touch $@

native: deps native/build/Release/uniso_native.node

native/build/Release/uniso_native.node: native/uniso_native.c native/splice_read.c native/splice_read.h native/deflate_blocks.c native/deflate_blocks.h native/napi_util.h native/binding.gyp
	$(NPM) run build:native -- --nodedir=$(NODEDIR)

ts: deps
	$(NPM) run build

build: native ts

test: build
	test/fixture/prepare.sh >/dev/null
	$(NPM) test
	@$(MAKE) --no-print-directory vm-test

test-large: build
	vm-images/large-test.sh

demo: build
	vm-images/demo.sh

bench: build
	bench/run.sh

# seeds are made at fuzz time under fuzz/work/ (gitignored); the types are checked first
fuzz: build
	$(NODE) node_modules/.bin/tsc -p fuzz/tsconfig.json
	$(NODE) -r @isaacs/ts-node-temp-fork-for-pr-2009/register/transpile-only fuzz/run.ts

# vm-test boots them all on one mount, one QEMU per core (BOOT_JOBS), past a
# failing one, and fails if any failed.
vm-test: build
	vm-images/vm-test.sh live $(VM_TEST_BIOS) $(addprefix uefi-,$(VM_TEST_UEFI))

# one mount, every UEFI boot (a missing view fails, the others still boot)
vm-test-uefi: build
	vm-images/vm-test.sh $(addprefix uefi-,$(VM_TEST_UEFI))

$(VM_TEST_ONE): vm-test-%: build
	vm-images/vm-test.sh $*

clean:
	rm -rf dist native/build .tap

distclean: clean
	rm -rf node_modules test/.fixtures bench/cache demo fuzz/work fuzz/out
