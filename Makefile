# uniso — build, test, demo, benchmark, VM tests.
#   make demo    build the sample appliance's universal ISO, mount it, use it
#   make test    the whole test suite (needs root: loop devices, mknod, FUSE)
#   make bench   benchmarks against conventional tools (writes bench/results.md)
#   make vm-test boot the disk views (raw, vmdk, qcow2, vhd) in QEMU from the mount, and
#                the universal ISO live from CD (one: make vm-test-raw, vm-test-vmdk,
#                vm-test-qcow2, vm-test-vhd, vm-test-live)

SHELL := /bin/bash
NODE ?= node
NODEDIR ?= $(shell dirname $$(dirname $$(readlink -f $$(command -v $(NODE)))))
NPM ?= npm

.PHONY: all sysdeps build deps native ts test demo bench clean distclean
.PHONY: vm-test vm-test-raw vm-test-vmdk vm-test-qcow2 vm-test-vhd vm-test-live

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

demo: build
	vm-images/demo.sh

bench: build
	bench/run.sh

# vm-test runs all five (-k: past a failing one) and fails if any failed.
vm-test: build
	@$(MAKE) --no-print-directory -k vm-test-raw vm-test-vmdk vm-test-qcow2 vm-test-vhd vm-test-live

vm-test-raw vm-test-vmdk vm-test-qcow2 vm-test-vhd vm-test-live: vm-test-%: build
	vm-images/vm-test.sh $*

clean:
	rm -rf dist native/build .tap

distclean: clean
	rm -rf node_modules test/.fixtures bench/cache demo
