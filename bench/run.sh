#!/usr/bin/env bash
# `make bench`: benchmarks uniso against conventional tools on a real Debian
# tree (>= 500 MB, built once by bench/make-tree.sh and cached), measuring
# every baseline in this same run, and writes bench/results.md.
#   1. build time   uniso build (all views) vs the conventional pipeline
#                   (bench/conventional.sh: unsquashfs, tar czf per format,
#                   tar cf for docker, mksquashfs); target ratio <= 0.5
#   2. size         universal ISO vs input ISO + every format file + squashfs;
#                   target ratio <= 0.35
#   3. FUSE read    cold (page cache dropped) sequential read of the proxmox
#                   tar.gz view through `uniso mount` vs the universal ISO read
#                   through bench/passthrough.js; median of BENCH_REPS (3),
#                   each rep on a freshly mounted daemon; target ratio >= 0.7
#   4. daemon RSS   VmHWM of the uniso daemon after its reads (the tar.gz view,
#                   then the lxc and docker views); target <= 250 MB
#   5. disk views   uniso build (all views) vs uniso build --formats with the
#                   container formats only (no disk views), both cold; ratio
#                   with/without, target <= 1.25
#   6. OVA copy-out `cp MNT/vm/*.ova` (fresh daemon, cold) vs `qemu-img convert
#                   -O vmdk -o subformat=streamOptimized` of a conventional raw
#                   disk of the same tree (bench/make-disk.sh: sparse file of
#                   the raw view's size, sfdisk, mke2fs -d; cached); speedup =
#                   baseline/uniso, target >= 5; both outputs qemu-img check'ed
#   7. qcow2        `cp MNT/openstack/*.qcow2` vs `qemu-img convert -O qcow2`
#                   and `qemu-img convert -c -O qcow2` (informational)
#   8. OVA size     uniso's OVA vs a tar of uniso's .ovf, a manifest and the
#                   conventional streamOptimized VMDK of 6.; target <= 1.10
#   (6./7. take the median of BENCH_REPS reps; every copy ends with sync)
#  10. single copy  the universal ISO vs the input ISO rebuilt conventionally (its
#                   squashfs replaced by the pipeline's `mksquashfs -comp gzip`
#                   with defaults, xorriso), target <= 1.05, and vs the input ISO as
#                   given (xz squashfs, as TurnKey's), target <= 1.20; the kernel
#                   reading every file of uniso's squashfs (loop mount at its offset
#                   in U.iso) vs of that gzip squashfs, cold, median of BENCH_REPS,
#                   target >= 0.9, and (informational) of `mksquashfs -b 65536
#                   -no-fragments`, the block size and layout uniso's pool needs;
#                   what the catalog is made of (SQLite dbstat)
#   9. serving      each rep, cold unless said: (a) the inflating docker tar view
#                   through a fresh daemon vs squashfuse reading the same tar from
#                   a gzip squashfs (-b 131072), target >= 2x; (b) the OVA (spliced)
#                   through FUSE vs the passthrough of 3., target >= 0.8 (the
#                   tar.gz of 3. too); (c) the warm re-read of 3. vs `cat` of a
#                   cached plain copy of that view, target >= 0.5; (d) `uniso serve`
#                   + curl of the docker tar and the tar.gz vs the FUSE reads of
#                   the same views, target >= 0.8; (e) 8 concurrent `cat`s of the 8
#                   largest views (< 4 GiB) on a fresh daemon: VmHWM <= 250 MB
#  11. remote mount nginx on 127.0.0.1 serves bench/work/www/ (U.iso, and a plain copy
#                   of the proxmox tar.gz view taken out of a local mount) behind
#                   bench/delay-proxy.js, 25 ms each way (BENCH_DELAY_MS); each rep, cold:
#                   (a) bytes the proxy passed server->client for `uniso mount URL`
#                   with a fresh empty --cache-dir, `cp` of the tar.gz, umount, vs its
#                   size, target <= 1.05; (c) that cp's time vs `curl -o` of the plain
#                   copy through the proxy, target ratio <= 1.5; (d) vs `cp` out of
#                   `uniso mount` of U.iso on `httpdirfs --cache --no-range-check`,
#                   target >= 2x; (e) a fresh daemon on the same --cache-dir vs a
#                   local `uniso mount U.iso`, target speed ratio >= 0.8; once: (b) bytes
#                   fetched for `cp --sparse=always` of the raw disk view vs the pool
#                   bytes its recipe uses (`uniso info --json`), target <= 1.05. Until
#                   `uniso mount URL` works its figures are "not measured" and the
#                   baselines still run
#  12. new disk     (a) `cp MNT/vhdx/*.vhdx`, `MNT/vdi/*.vdi`, `MNT/gce/*.tar.gz` (each a
#      formats      fresh daemon, cold, like 6.) vs `qemu-img convert -O vhdx -o
#                   subformat=dynamic,block_size=1M`, `qemu-img convert -O vdi` and
#                   `tar --format=oldgnu -Sczf` of disk.raw; their input is the raw view
#                   itself (`uniso extract`, sparse, untimed), so both sides hold the
#                   same bytes; speedup = baseline/uniso, target >= 5 for the GCE
#                   tar.gz, VHDX and VDI informational; median of BENCH_REPS; the last
#                   rep's outputs checked (qemu-img check and compare against the raw
#                   view; gzip -t, tar -t, the extracted disk.raw's sha256 against the
#                   raw view's); (b) the universal ISO's growth from the views added
#                   with the GPT disks: `uniso build --formats` with the views there
#                   were before (ovf,vmdk,raw,qcow2,vhd,openvz,opennode,proxmox,xen,
#                   lxc,docker) `--firmware bios` vs the default build of 1. (all
#                   formats, hybrid firmware), target <= 1% growth; broken down by
#                   `uniso build --firmware bios` (all formats) and the catalog
#  13. scale        synthetic trees of 100,000 and 1,000,000 entries (bench/make-scale-tree.js:
#                   dirs of 99 small text files, deterministic, cached under bench/cache/),
#                   each: `uniso build DIR` (all views, cold) vs `mksquashfs -comp gzip`: wall
#                   time and peak RSS (/usr/bin/time %M); universal ISO and catalog bytes
#                   (per entry); cold `uniso ls`; mount ready (from starting `uniso mount`
#                   until `ls MNT` answers, cold) vs `squashfuse -f` of the mksquashfs image,
#                   median of BENCH_REPS; daemon VmRSS/VmHWM after ready and after a cold
#                   `ls -lR MNT/rootfs` (vs squashfuse's walk); growth 100k -> 1M. Targets: at
#                   100k mount ready <= 1 s, daemon VmHWM <= 250 MiB, catalog <= 200 bytes per
#                   entry; at 1M build peak RSS <= 2 GiB. A failed build or mount is recorded
#                   (FAIL), not fatal. BENCH_SCALE_1M=0 skips the 1M tree (about 4 GB on disk,
#                   many minutes), BENCH_SCALE_100K=0 the 100k one
#  14. soak         BENCH_SOAK_READERS (16) worker threads (bench/soak.js) read random ranges
#                   (1 B .. 4 MiB, unaligned, across 64 KiB boundaries and end of file, in the
#                   sparse disks' data) of random views of U.iso (tar.gz, docker tar, squashfs,
#                   OVA, VMDK, qcow2, raw, VHD, VHDX, VDI, GCE tar.gz, small files) through one
#                   mount for BENCH_SOAK_SECONDS (600), each range compared with a reference
#                   copy (`uniso extract`, checked against the listed sha256; the disk images
#                   also with qemu-img compare against the raw one); page cache dropped every
#                   20 s; the daemon's VmRSS, fds and threads sampled every 5 s. Targets:
#                   VmRSS end / 30 s in <= 1.1, no fd or thread growth, 0 mismatches, 0 read
#                   errors; baseline (info): the same readers on the local references for
#                   BENCH_SOAK_BASE_SECONDS (60), throughput ratio
# Needs root (drop_caches, debootstrap, FUSE). Everything mounted or started is
# stopped on exit, also on failure. Env: BENCH_REPS=3, BENCH_KEEP=1 keeps the big
# outputs in bench/work/, BENCH_STRICT=1 exits 1 when a target fails,
# BENCH_ONLY=11, 12, 13 or 14 runs only that section (after the tree, the input ISO
# and the `uniso build` it needs, which 13 skips; no other section can run alone yet)
# and writes its results to bench/work/results.md instead of bench/results.md
# (BENCH_WORK=DIR: another work directory than bench/work/, e.g. for two BENCH_ONLY
# runs at once); ports:
# BENCH_HTTP_PORT (18380), BENCH_NGINX_PORT (18381), BENCH_PROXY_PORT (18382).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd -P)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${BENCH_WORK:-$HERE/work}
REPS=${BENCH_REPS:-3}
ISO_NAME=turnkey-benchcore-18.0-bookworm-amd64.iso
UNISO=(node "$ROOT/bin/uniso")
[ "$(id -u)" = 0 ] || { echo "bench: must run as root (drop_caches, FUSE, debootstrap)" >&2; exit 1; }

UMNT="$WORK/mnt-uniso"
PMNT="$WORK/mnt-passthrough"
SMNT="$WORK/mnt-squashfuse"
PT_PID=
HTTP_PID=
HTTP_PORT=${BENCH_HTTP_PORT:-18380}
ONLY=${BENCH_ONLY:-}
case "$ONLY" in
  ''|11|12|13|14) ;;
  *) echo "bench: BENCH_ONLY=$ONLY: only sections 11 to 14 can run alone" >&2; exit 2 ;;
esac
# section 11: nginx, the delaying proxy, httpdirfs and the remote uniso mount
RMNT="$WORK/mnt-remote"
HMNT="$WORK/mnt-httpdirfs"
WWW="$WORK/www"
NGINX_PID=
NGINX_PORT=${BENCH_NGINX_PORT:-18381}
PROXY_PID=
PROXY_PORT=${BENCH_PROXY_PORT:-18382}
DELAY_MS=${BENCH_DELAY_MS:-25}
HD_PID=
# sections 13 and 14: the scale trees' uniso and squashfuse mounts
SCM="$WORK/mnt-scale"
QMNT="$WORK/mnt-scale-squashfuse"
QPID=

is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts; }

stop_passthrough() {
  if [ -n "$PT_PID" ] && kill -0 "$PT_PID" 2>/dev/null; then
    kill -TERM "$PT_PID" 2>/dev/null || true
    wait "$PT_PID" 2>/dev/null || true
  fi
  PT_PID=
  if is_mounted "$PMNT"; then fusermount3 -u "$PMNT" 2>/dev/null || fusermount3 -uz "$PMNT" || true; fi
}

stop_squashfuse() {
  if is_mounted "$SMNT"; then fusermount3 -u "$SMNT" 2>/dev/null || fusermount -u "$SMNT" 2>/dev/null || umount -l "$SMNT" || true; fi
}

stop_http() {
  if [ -n "$HTTP_PID" ] && kill -0 "$HTTP_PID" 2>/dev/null; then
    kill -TERM "$HTTP_PID" 2>/dev/null || true
    wait "$HTTP_PID" 2>/dev/null || true
  fi
  HTTP_PID=
}

stop_uniso() { # [MNT]: the uniso mount at MNT ($UMNT)
  local m=${1:-$UMNT}
  if is_mounted "$m" || [ -f "$(state_file "$m")" ]; then
    "${UNISO[@]}" umount "$m" 2>/dev/null || true
  fi
  if is_mounted "$m"; then fusermount3 -uz "$m" || true; fi
}

# stop_pid PID: TERM a process we started and wait for it (5 s, then KILL)
stop_pid() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 0
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
stop_httpdirfs() {
  if is_mounted "$HMNT"; then fusermount3 -u "$HMNT" 2>/dev/null || fusermount3 -uz "$HMNT" || true; fi
  # it exits by itself once unmounted, not always at once
  if [ -n "$HD_PID" ]; then
    for _ in $(seq 50); do kill -0 "$HD_PID" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$HD_PID"
  fi
  HD_PID=
}
stop_remote() {
  stop_uniso "$RMNT"
  stop_httpdirfs
  stop_pid "$PROXY_PID"
  PROXY_PID=
  stop_pid "$NGINX_PID"
  NGINX_PID=
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_passthrough
  stop_squashfuse
  stop_http
  stop_uniso   # before httpdirfs: it may be reading U.iso through it
  stop_remote
  stop_uniso "$SCM"
  if is_mounted "$QMNT"; then fusermount3 -u "$QMNT" 2>/dev/null || umount -l "$QMNT" || true; fi
  stop_pid "$QPID"
  if is_mounted "$WORK/mnt-kernel"; then umount "$WORK/mnt-kernel" || umount -l "$WORK/mnt-kernel" || true; fi
  if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$WORK/U.iso" "$WORK/U-nodisk.iso" "$WORK/U-oldviews.iso" "$WORK/U-bios.iso" "$WORK/conv" "$WORK/disk" "$WORK/www" "$WORK/remote" "$WORK/newdisk"; fi
  [ $rc = 0 ] || echo "bench: FAILED (exit $rc); logs in $WORK" >&2
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { echo "$EPOCHREALTIME"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
fact() { printf '%s\t%s\n' "$1" "$2" >> "$FACTS"; }
# Other work on the machine skews every timing below. To tell, compare the CPU
# time the whole machine spent (/proc/stat) with what this script and its
# processes spent (bash `times`, plus the detached uniso daemons, which are
# not our children).
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
proc_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }   # utime + stime
# `times` must run in this shell (not in a $(...) subshell): write it to a file
times_secs() { awk '{ for (i = 1; i <= NF; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } } END { printf "%.2f", t }' "$1"; }
DAEMON_TICKS=0
# mark SECTION: where a measured section starts (marks.tsv: name, time, machine busy
# ticks, our CPU seconds, daemon ticks), so the report can tell which section other
# work on the machine skewed
mark() {
  times > "$WORK/times-mark"
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$(now)" "$(busy_ticks)" "$(times_secs "$WORK/times-mark")" "$DAEMON_TICKS" >> "$WORK/marks.tsv"
}
say() { echo "bench: $*" >&2; }
# where `uniso mount` keeps its state (pid) for a mount point ($UMNT unless given), as src/fuse/control.ts names it
state_file() { echo "/run/uniso/$(printf '%s' "${1:-$UMNT}" | sha256sum | cut -c1-16).json"; }
daemon_pid() { # [MNT]
  local m=${1:-$UMNT} f
  f=$(state_file "$m")
  if [ -f "$f" ]; then
    node -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).pid))' "$f"
  else
    pgrep -f "uniso mount --foreground .* $m\$" | head -1
  fi
}
# raise_ra MNT: the kernel readahead of a FUSE mount to what `uniso mount` sets (1 MiB),
# so the baselines get the same kernel help as uniso
raise_ra() { echo 1024 > "/sys/class/bdi/$(mountpoint -d "$1")/read_ahead_kb"; }
# proc_kb PID FIELD: a /proc/PID/status field (kB, or a count for Threads)
proc_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
vmhwm_kb() { proc_kb "$1" VmHWM; }
# stamp: prefix every line read with the time it arrived (for phase breakdowns)
stamp() { while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done; }
# timed CMD...: drop the page cache, run CMD (its output to stderr), sync, print seconds
timed() {
  drop_caches
  local t0 t1
  t0=$(now)
  "$@" >&2
  sync
  t1=$(now)
  secs "$t0" "$t1"
}
# view_path REGEX: the path of the first view matching REGEX; view_size PATH: its size
view_path() { node -e 'const v = require(process.argv[1]); const x = v.find((x) => new RegExp(process.argv[2]).test(x.path)); if (!x) process.exit(1); process.stdout.write(x.path)' "$WORK/views.json" "$1"; }
view_size() { node -e 'const v = require(process.argv[1]); process.stdout.write(String(v.find((x) => x.path === process.argv[2]).size))' "$WORK/views.json" "$1"; }
view_sha() { node -e 'const v = require(process.argv[1]); process.stdout.write(v.find((x) => x.path === process.argv[2]).sha256)' "$WORK/views.json" "$1"; }
mount_uniso() {
  "${UNISO[@]}" mount "$WORK/U.iso" "$UMNT"
  pid=$(daemon_pid)
  [ -n "$pid" ] || { say "cannot find the uniso daemon's pid"; exit 1; }
}
# copy_view REC KIND REP VIEW OUT: cp VIEW out of a fresh daemon (cold, synced); its time and
# VmHWM recorded with REC (a KIND REP VALUE recorder)
copy_view() {
  local rec=$1
  shift
  rm -f "$4"
  mount_uniso
  "$rec" "$1" "$2" "$(timed cp "$UMNT/$3" "$4")"
  "$rec" "$1-vmhwm" "$2" "$(vmhwm_kb "$pid")"
  DAEMON_TICKS=$((DAEMON_TICKS + $(proc_ticks "$pid")))
  stop_uniso
}
# uniso_build TAG OUT [ARGS...]: `uniso build ISO -o OUT ARGS` from a dropped page
# cache, timed up to its sync; facts [TAG_]build_start/_end, uniso_[TAG_]build_s and
# _maxrss_kb; its progress lines, stamped as they arrive, in build-[TAG-]progress.log
uniso_build() {
  local tag=$1 out=$2 t0 t_built t1
  shift 2
  local p=${tag:+${tag}_} f=${tag:+${tag}-} timefmt=()
  drop_caches
  if [ -x /usr/bin/time ]; then timefmt=(/usr/bin/time -f '%M' -o "$WORK/build-${f}maxrss-kb"); fi
  t0=$(now)
  fact "${p}build_start" "$t0"
  { "${timefmt[@]}" "${UNISO[@]}" build "$ISO" -o "$out" "$@" 2>&1 >/dev/null; } | stamp > "$WORK/build-${f}progress.log"
  t_built=$(now)
  sync
  t1=$(now)
  fact "${p}build_end" "$t_built"
  fact "uniso_${p}build_s" "$(secs "$t0" "$t1")"
  if [ -f "$WORK/build-${f}maxrss-kb" ]; then fact "uniso_${p}build_maxrss_kb" "$(tail -1 "$WORK/build-${f}maxrss-kb")"; fi
  say "uniso build${tag:+ ($tag)}: $(secs "$t0" "$t1") s"
}
# cold_read FILE: drop the page cache, read FILE sequentially, print seconds
cold_read() {
  drop_caches
  local t0 t1
  t0=$(now)
  cat "$1" > /dev/null
  t1=$(now)
  secs "$t0" "$t1"
}

T_BEGIN=$(now)
# A previous run that was killed hard may have left mounts behind.
stop_passthrough
stop_squashfuse
stop_uniso
stop_uniso "$RMNT"
stop_httpdirfs
rm -rf "$WORK"
mkdir -p "$WORK" "$UMNT" "$PMNT" "$SMNT"
FACTS="$WORK/facts.tsv"
: > "$FACTS"
fact bench_only "$ONLY"

# ---- 1. the tree and the input ISO (cached) --------------------------------
say "preparing the appliance (cached under bench/cache/)"
CACHE=$("$HERE/make-tree.sh")
ISO="$CACHE/$ISO_NAME"
fact tree_bytes "$(cat "$CACHE/tree-bytes")"
fact tree_entries "$(find "$CACHE/tree" | wc -l)"
fact tree_packages "$(grep -c '^Status: install ok installed' "$CACHE/tree/var/lib/dpkg/status" || true)"
fact input_iso "$ISO_NAME"
fact input_iso_bytes "$(stat -c %s "$ISO")"

# ---- machine facts -----------------------------------------------------------
fact date "$(date -u '+%Y-%m-%d %H:%M UTC')"
fact cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
fact cores "$(nproc)"
fact mem "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
fact kernel "$(uname -r)"
fact os "$(. /etc/os-release && echo "$PRETTY_NAME")"
fact fs "$(df -T "$WORK" | awk 'NR == 2 { print $2 }')"
fact node "$(node --version)"
fact libfuse "$(dpkg-query -W -f '${Version}' libfuse2 2>/dev/null || echo '?')"
fact tools "$(tar --version | head -1), $(gzip --version | head -1), $(mksquashfs -version 2>&1 | head -1 | cut -d' ' -f1-3), $(xorriso -version 2>&1 | head -1 | cut -d' ' -f1-2)"
fact commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')"

# ---- 2. build time: uniso --------------------------------------------------
BUSY0=$(busy_ticks)
times > "$WORK/times0"
OURS0=$(times_secs "$WORK/times0")
t_measure0=$(now)
: > "$WORK/marks.tsv"
# (BENCH_ONLY=13 does not need it: the scale section builds its own trees)
if [ "$ONLY" != 13 ]; then
mark "uniso build (all views)"
say "uniso build (all views)"
uniso_build "" "$WORK/U.iso"
fact universal_iso_bytes "$(stat -c %s "$WORK/U.iso")"
"${UNISO[@]}" ls --json "$WORK/U.iso" > "$WORK/views.json"
"${UNISO[@]}" info --json "$WORK/U.iso" > "$WORK/info.json"
VIEW_REL=$(view_path '^proxmox/[^/]*\.tar\.gz$')
fact view "$VIEW_REL"
fact view_bytes "$(view_size "$VIEW_REL")"
fi

# BENCH_ONLY=11 or 12: straight to that section (sections 5 to 10 below, not indented, are skipped)
if [ -z "$ONLY" ]; then

# ---- 5. build time without the disk views (same ISO, same cold start) ---------
mark "uniso build without disk views"
NODISK_FORMATS=openvz,opennode,proxmox,xen,lxc,docker
say "uniso build --formats $NODISK_FORMATS (no disk views)"
uniso_build nodisk "$WORK/U-nodisk.iso" --formats "$NODISK_FORMATS"
fact nodisk_formats "$NODISK_FORMATS"
fact universal_iso_nodisk_bytes "$(stat -c %s "$WORK/U-nodisk.iso")"
"${UNISO[@]}" ls --json "$WORK/U-nodisk.iso" > "$WORK/views-nodisk.json"
rm -f "$WORK/U-nodisk.iso"

# ---- 2. build time: conventional pipeline ------------------------------------
mark "conventional pipeline"
say "conventional pipeline (unsquashfs, tar czf x5, tar cf, mksquashfs)"
drop_caches
t0=$(now)
"$HERE/conventional.sh" "$ISO" "$WORK/conv" "$WORK/conv-times.tsv" "$WORK/conv-sizes.tsv"
t1=$(now)
fact conventional_build_s "$(secs "$t0" "$t1")"
say "conventional: $(secs "$t0" "$t1") s"

# ---- 10. single copy: sizes, and the kernel reading both squashfs images --------
mark "single copy: sizes and kernel reads"
say "the input ISO rebuilt with the conventional gzip squashfs; kernel reads of both squashfs images"
SQ_CONV="$WORK/conv/squashfs/10root.squashfs"
SQ_64NF="$WORK/conv/squashfs/64k-no-fragments.squashfs"
mksquashfs "$WORK/conv/tree" "$SQ_64NF" -comp gzip -b 65536 -no-fragments -noappend -quiet -no-progress >/dev/null
fact conv_64nf_squashfs_bytes "$(stat -c %s "$SQ_64NF")"
xorriso -indev "$ISO" -outdev "$WORK/conv-gzip.iso" -boot_image any replay -map "$SQ_CONV" /casper/10root.squashfs -commit >/dev/null 2>&1
fact conv_gzip_iso_bytes "$(stat -c %s "$WORK/conv-gzip.iso")"
fact conv_gzip_squashfs_bytes "$(stat -c %s "$SQ_CONV")"
rm -f "$WORK/conv-gzip.iso"
SQ_PATH=$(node -e 'const i = require(process.argv[1]); process.stdout.write(i.pool.squashfs.path)' "$WORK/info.json")
SQ_LBA=$(xorriso -indev "$WORK/U.iso" -find "$SQ_PATH" -exec report_lba -- 2>/dev/null | awk -F, '/File data lba/ { gsub(/ /, "", $2); print $2; exit }')
SQ_SIZE=$(node -e 'const i = require(process.argv[1]); process.stdout.write(String(i.pool.squashfs.bytes))' "$WORK/info.json")
fact uniso_squashfs_bytes "$SQ_SIZE"
fact uniso_side_pool_bytes "$(node -e 'const i = require(process.argv[1]); process.stdout.write(String(i.pool.sidePool.bytes))' "$WORK/info.json")"
KMNT="$WORK/mnt-kernel"
mkdir -p "$KMNT"
kernel_read() { # IMAGE [MOUNT OPTIONS]: every file of the squashfs read through the kernel, cold; seconds
  mount -t squashfs -o "loop,ro${2:+,$2}" "$1" "$KMNT"
  drop_caches
  local t0 t1
  t0=$(now)
  find "$KMNT" -type f -print0 | xargs -0 -r cat > /dev/null
  t1=$(now)
  umount "$KMNT"
  secs "$t0" "$t1"
}
: > "$WORK/kernel.tsv"
for rep in $(seq 1 "$REPS"); do
  printf 'uniso\t%s\t%s\n' "$rep" "$(kernel_read "$WORK/U.iso" "offset=$((SQ_LBA * 2048)),sizelimit=$SQ_SIZE")" >> "$WORK/kernel.tsv"
  printf 'mksquashfs\t%s\t%s\n' "$rep" "$(kernel_read "$SQ_CONV")" >> "$WORK/kernel.tsv"
  printf 'mksquashfs-64k-nf\t%s\t%s\n' "$rep" "$(kernel_read "$SQ_64NF")" >> "$WORK/kernel.tsv"
done
# what the catalog is made of
xorriso -osirrox on -indev "$WORK/U.iso" -extract /uniso/catalog.sqlite "$WORK/catalog.sqlite" >/dev/null 2>&1
node -e '
  const Database = require(process.argv[1]);
  const db = new Database(process.argv[2], { readonly: true });
  const rows = db.prepare("SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name ORDER BY bytes DESC").all();
  const recipes = db.prepare("SELECT r.id, length(r.data) AS bytes, group_concat(v.path, char(32)) AS views FROM recipes r LEFT JOIN views v ON v.recipe = r.id GROUP BY r.id ORDER BY bytes DESC").all();
  process.stdout.write(JSON.stringify({ tables: rows, recipes }));
' "$ROOT/node_modules/better-sqlite3" "$WORK/catalog.sqlite" > "$WORK/catalog.json"
fact catalog_bytes "$(stat -c %s "$WORK/catalog.sqlite")"
rm -f "$WORK/catalog.sqlite"
rm -rf "$WORK/conv"   # only the sizes are needed from here on; frees the page cache too

# ---- 4/5. FUSE first-read throughput and daemon RSS ---------------------------
mark "FUSE reads"
EXTRA_VIEWS=$(node -e 'const v = require(process.argv[1]); process.stdout.write(v.filter((x) => /^(lxc\/.*\.tar\.gz|docker\/.*\.tar)$/.test(x.path)).map((x) => x.path).join("\n"))' "$WORK/views.json")
: > "$WORK/reads.tsv"
for rep in $(seq 1 "$REPS"); do
  say "FUSE cold reads, rep $rep/$REPS"
  # uniso: a fresh daemon, so its own block cache starts empty too
  "${UNISO[@]}" mount "$WORK/U.iso" "$UMNT"
  pid=$(daemon_pid)
  [ -n "$pid" ] || { say "cannot find the uniso daemon's pid"; exit 1; }
  s=$(cold_read "$UMNT/$VIEW_REL")
  printf 'uniso\t%s\t%s\t%s\n' "$rep" "$VIEW_REL" "$s" >> "$WORK/reads.tsv"
  # warm re-read right away (page cache kept; the daemon mounts with kernel_cache): informational
  t0=$(now); cat "$UMNT/$VIEW_REL" > /dev/null; t1=$(now)
  printf 'uniso-warm\t%s\t%s\t%s\n' "$rep" "$VIEW_REL" "$(secs "$t0" "$t1")" >> "$WORK/reads.tsv"
  while IFS= read -r v; do
    [ -n "$v" ] || continue
    s=$(cold_read "$UMNT/$v")
    printf 'uniso-extra\t%s\t%s\t%s\n' "$rep" "$v" "$s" >> "$WORK/reads.tsv"
  done <<< "$EXTRA_VIEWS"
  printf 'uniso-vmhwm\t%s\t-\t%s\n' "$rep" "$(vmhwm_kb "$pid")" >> "$WORK/reads.tsv"
  DAEMON_TICKS=$((DAEMON_TICKS + $(proc_ticks "$pid")))
  stop_uniso

  # baseline: the universal ISO itself through a minimal passthrough
  node "$HERE/passthrough.js" "$WORK/U.iso" "$PMNT" > "$WORK/passthrough.out" 2>&1 &
  PT_PID=$!
  for _ in $(seq 100); do grep -q ready "$WORK/passthrough.out" && break; kill -0 "$PT_PID" 2>/dev/null || break; sleep 0.1; done
  grep -q ready "$WORK/passthrough.out" || { say "passthrough did not mount: $(cat "$WORK/passthrough.out")"; exit 1; }
  raise_ra "$PMNT"
  s=$(cold_read "$PMNT/U.iso")
  printf 'passthrough\t%s\tU.iso\t%s\n' "$rep" "$s" >> "$WORK/reads.tsv"
  printf 'passthrough-vmhwm\t%s\t-\t%s\n' "$rep" "$(vmhwm_kb "$PT_PID")" >> "$WORK/reads.tsv"
  stop_passthrough
done

# ---- 6-8. disk views: copy-out through FUSE vs qemu-img convert; OVA size --------
mark "disk views: copy-out, checks, OVA"
OVA_REL=$(view_path '^vm/[^/]*\.ova$')
QCOW_REL=$(view_path '^openstack/[^/]*\.qcow2$')
RAW_REL=$(view_path '^raw/[^/]*\.img$')
DISK_SIZE=$(view_size "$RAW_REL")
OVA_NAME=$(basename "$OVA_REL" .ova)
fact ova_view "$OVA_REL"
fact ova_view_bytes "$(view_size "$OVA_REL")"
fact qcow2_view "$QCOW_REL"
fact qcow2_view_bytes "$(view_size "$QCOW_REL")"
fact disk_size "$DISK_SIZE"
say "conventional raw disk image of the tree, $DISK_SIZE bytes (cached under bench/cache/)"
CONV_RAW=$("$HERE/make-disk.sh" "$CACHE" "$DISK_SIZE")
fact conv_raw "${CONV_RAW#"$HERE/"}"
fact conv_raw_make_s "$(cat "$CONV_RAW.done")"
fact conv_raw_alloc_bytes "$(du -B1 "$CONV_RAW" | cut -f1)"
fact tools_disk "$(qemu-img --version | head -1 | cut -d' ' -f1-3), $(mke2fs -V 2>&1 | head -1 | cut -d' ' -f1-2), $(sfdisk --version)"
D="$WORK/disk"
rm -rf "$D"
mkdir -p "$D"
: > "$WORK/disk.tsv"
disk_rec() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$WORK/disk.tsv"; }
copy_out() { copy_view disk_rec "$@"; } # KIND REP VIEW OUT
for rep in $(seq 1 "$REPS"); do
  say "disk copy-out, rep $rep/$REPS: uniso OVA and qcow2 (cp from fresh daemons), qemu-img convert x3"
  # uniso: a fresh daemon for each copy, page cache dropped, sync inside the timing
  copy_out uniso-ova "$rep" "$OVA_REL" "$D/uniso.ova"
  copy_out uniso-qcow2 "$rep" "$QCOW_REL" "$D/uniso.qcow2"
  # baselines: qemu-img convert of the conventional raw disk, cold
  rm -f "$D/conv.vmdk" "$D/conv.qcow2" "$D/conv-c.qcow2"
  disk_rec conv-vmdk "$rep" "$(timed qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$CONV_RAW" "$D/conv.vmdk")"
  disk_rec conv-qcow2 "$rep" "$(timed qemu-img convert -f raw -O qcow2 "$CONV_RAW" "$D/conv.qcow2")"
  disk_rec conv-qcow2c "$rep" "$(timed qemu-img convert -c -f raw -O qcow2 "$CONV_RAW" "$D/conv-c.qcow2")"
done

# checks of the outputs of the last rep ("name<TAB>ok|FAIL<TAB>detail" in checks.tsv)
: > "$WORK/checks.tsv"
check() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$WORK/checks.tsv"; }
# img_check NAME FMT FILE: qemu-img check (exit 0 = no errors) and the virtual size
img_check() {
  local out rc=0 vsize
  out=$(qemu-img check -f "$2" "$3" 2>&1) || rc=$?
  printf '%s\n' "$out" > "$WORK/check-$1.txt"
  vsize=$(qemu-img info -f "$2" --output=json "$3" | node -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(0, "utf8"))["virtual-size"]))')
  if [ $rc = 0 ] && [ "$vsize" = "$DISK_SIZE" ]; then
    check "$1" ok "qemu-img check: $(printf '%s\n' "$out" | grep -m1 -iE 'no errors|allocated' || echo 'exit 0'); virtual size $vsize"
  else
    check "$1" FAIL "qemu-img check exit $rc: $(printf '%s\n' "$out" | grep -m1 -iE 'error|corrupt|leak' || printf '%s\n' "$out" | tail -1); virtual size $vsize (want $DISK_SIZE)"
  fi
}
X="$D/ova-x"
mkdir -p "$X"
tar -xf "$D/uniso.ova" -C "$X"
members=$(tar -tf "$D/uniso.ova" | paste -sd' ')
want="$OVA_NAME.ovf $OVA_NAME.mf $OVA_NAME-disk1.vmdk"
if [ "$(stat -c %s "$D/uniso.ova")" = "$(view_size "$OVA_REL")" ] && [ "$members" = "$want" ] &&
   sed -E 's/^SHA256\((.*)\)= ([0-9a-f]+)$/\2  \1/' "$X/$OVA_NAME.mf" | (cd "$X" && sha256sum -c --quiet --strict) > "$WORK/check-uniso-ova-mf.txt" 2>&1; then
  check uniso-ova ok "size as listed; members in order: $members; manifest (SHA256) verified"
else
  check uniso-ova FAIL "members: $members (want $want); size $(stat -c %s "$D/uniso.ova"); manifest: $(head -3 "$WORK/check-uniso-ova-mf.txt" | paste -sd' ')"
fi
img_check uniso-ova-vmdk vmdk "$X/$OVA_NAME-disk1.vmdk"
img_check conv-vmdk vmdk "$D/conv.vmdk"
img_check uniso-qcow2 qcow2 "$D/uniso.qcow2"
img_check conv-qcow2 qcow2 "$D/conv.qcow2"
img_check conv-qcow2c qcow2 "$D/conv-c.qcow2"

# the conventional OVA: uniso's own .ovf, a SHA256 manifest and the conventional
# streamOptimized VMDK, tarred (ustar, .ovf first) like ovftool does
C="$D/conv-ova"
mkdir -p "$C"
cp "$X/$OVA_NAME.ovf" "$C/"
mv "$D/conv.vmdk" "$C/$OVA_NAME-disk1.vmdk"
t0=$(now)
( cd "$C" && for f in "$OVA_NAME.ovf" "$OVA_NAME-disk1.vmdk"; do printf 'SHA256(%s)= %s\n' "$f" "$(sha256sum "$f" | cut -d' ' -f1)"; done > "$OVA_NAME.mf" )
tar --format=ustar --owner=0 --group=0 --numeric-owner -cf "$D/conv.ova" -C "$C" "$OVA_NAME.ovf" "$OVA_NAME.mf" "$OVA_NAME-disk1.vmdk"
sync
t1=$(now)
fact conv_ova_pack_s "$(secs "$t0" "$t1")"
fact uniso_ova_bytes "$(stat -c %s "$D/uniso.ova")"
fact conv_ova_bytes "$(stat -c %s "$D/conv.ova")"
fact uniso_ova_vmdk_bytes "$(stat -c %s "$X/$OVA_NAME-disk1.vmdk")"
fact conv_vmdk_bytes "$(stat -c %s "$C/$OVA_NAME-disk1.vmdk")"
fact uniso_qcow2_bytes "$(stat -c %s "$D/uniso.qcow2")"
fact conv_qcow2_bytes "$(stat -c %s "$D/conv.qcow2")"
fact conv_qcow2c_bytes "$(stat -c %s "$D/conv-c.qcow2")"
rm -rf "$X" "$C"

# ---- 9. serving: read path ceilings (inflating, spliced, warm, HTTP, 8 readers) -----
mark "serving: read path"
DOCKER_REL=$(view_path '^docker/[^/]*\.tar$')
fact docker_view "$DOCKER_REL"
fact docker_view_bytes "$(view_size "$DOCKER_REL")"
# the inflating view's bytes in a gzip squashfs (128 KiB blocks, mksquashfs defaults otherwise)
SQ="$WORK/sq"
mkdir -p "$SQ/in" "$SMNT"
"${UNISO[@]}" extract "$WORK/U.iso" "$DOCKER_REL" -o "$SQ/in/docker.tar"
mksquashfs "$SQ/in" "$SQ/docker.sqfs" -comp gzip -b 131072 -noappend -no-progress -quiet >/dev/null
rm -rf "$SQ/in"
fact sqfs_bytes "$(stat -c %s "$SQ/docker.sqfs")"
fact squashfuse "$(squashfuse --help 2>&1 | head -1 | cut -d' ' -f1-2)"
# a plain file for the warm-read baseline: the tar.gz view's bytes, extracted
"${UNISO[@]}" extract "$WORK/U.iso" "$VIEW_REL" -o "$WORK/plain.tar.gz"
# 8 concurrent readers: the 8 largest file views no bigger than 4 GiB (not the sparse raw/flat disks)
READ8=$(node -e 'const v = require(process.argv[1]); process.stdout.write(v.filter((x) => !/\.(sha256|txt)$/.test(x.path) && x.size <= 2 ** 32).sort((a, b) => b.size - a.size || (a.path < b.path ? -1 : 1)).slice(0, 8).map((x) => x.path).join("\n"))' "$WORK/views.json")
fact read8_views "$(printf '%s' "$READ8" | paste -sd' ')"
fact read8_bytes "$(while IFS= read -r v; do view_size "$v"; echo; done <<< "$READ8" | awk '{ t += $1 } END { print t }')"
: > "$WORK/serve.tsv"
serve_rec() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$WORK/serve.tsv"; }
for rep in $(seq 1 "$REPS"); do
  say "serving, rep $rep/$REPS: squashfuse, inflating/spliced views, warm re-read, HTTP, 8 readers"
  # squashfuse over the gzip squashfs, cold
  squashfuse "$SQ/docker.sqfs" "$SMNT"
  raise_ra "$SMNT"
  serve_rec squashfuse "$rep" "$(cold_read "$SMNT/docker.tar")"
  stop_squashfuse
  # uniso, a fresh daemon: the inflating view, then a spliced one (the OVA), cold
  mount_uniso
  serve_rec uniso-docker "$rep" "$(cold_read "$UMNT/$DOCKER_REL")"
  serve_rec uniso-ova "$rep" "$(cold_read "$UMNT/$OVA_REL")"
  DAEMON_TICKS=$((DAEMON_TICKS + $(proc_ticks "$pid")))
  stop_uniso
  # warm: cat of the plain file once cached, then timed
  cat "$WORK/plain.tar.gz" > /dev/null
  t0=$(now); cat "$WORK/plain.tar.gz" > /dev/null; t1=$(now)
  serve_rec plain-warm "$rep" "$(secs "$t0" "$t1")"
  # HTTP: uniso serve on loopback, curl to /dev/null, cold; the inflating view and the tar.gz
  "${UNISO[@]}" serve "$WORK/U.iso" --http "127.0.0.1:$HTTP_PORT" 2> "$WORK/serve.log" &
  HTTP_PID=$!
  for _ in $(seq 100); do grep -q 'serving' "$WORK/serve.log" && break; kill -0 "$HTTP_PID" 2>/dev/null || break; sleep 0.1; done
  grep -q 'serving' "$WORK/serve.log" || { say "uniso serve did not start: $(cat "$WORK/serve.log")"; exit 1; }
  serve_rec http-docker "$rep" "$(timed curl -sSf -o /dev/null "http://127.0.0.1:$HTTP_PORT/$DOCKER_REL")"
  serve_rec http-targz "$rep" "$(timed curl -sSf -o /dev/null "http://127.0.0.1:$HTTP_PORT/$VIEW_REL")"
  DAEMON_TICKS=$((DAEMON_TICKS + $(proc_ticks "$HTTP_PID")))
  stop_http
  # 8 concurrent readers of 8 views on a fresh daemon, cold: wall time and the daemon's VmHWM
  mount_uniso
  drop_caches
  t0=$(now)
  pids=()
  while IFS= read -r v; do cat "$UMNT/$v" > /dev/null & pids+=($!); done <<< "$READ8"
  for p in "${pids[@]}"; do wait "$p"; done
  t1=$(now)
  serve_rec read8 "$rep" "$(secs "$t0" "$t1")"
  serve_rec read8-vmhwm "$rep" "$(vmhwm_kb "$pid")"
  DAEMON_TICKS=$((DAEMON_TICKS + $(proc_ticks "$pid")))
  stop_uniso
done
rm -rf "$SQ" "$WORK/plain.tar.gz"

fi # BENCH_ONLY: sections 5 to 10

# ---- 11. remote mount: `uniso mount URL` through a delaying proxy vs curl, httpdirfs, local ----
# (not indented: the whole section, up to its stop_remote)
if [ -z "$ONLY" ] || [ "$ONLY" = 11 ]; then
mark "remote mount"
say "remote mount: nginx on 127.0.0.1:$NGINX_PORT behind bench/delay-proxy.js ($DELAY_MS ms each way) on :$PROXY_PORT"
if ! command -v nginx >/dev/null || ! command -v httpdirfs >/dev/null; then
  say "installing nginx and httpdirfs (.ci/install-deps.sh)"
  "$ROOT/.ci/install-deps.sh"
fi
for p in "$NGINX_PORT" "$PROXY_PORT"; do
  if command -v ss >/dev/null && ss -Hltn "sport = :$p" | grep -q .; then say "port $p is in use (set BENCH_NGINX_PORT / BENCH_PROXY_PORT)"; exit 1; fi
done
RW="$WORK/remote"   # caches and copies (removed on exit); logs go to $WORK/remote-*
rm -rf "$RW" "$WWW"
mkdir -p "$RW/nginx/tmp" "$RW/out" "$WWW" "$RMNT" "$HMNT"
TEMPLATE=$(basename "$VIEW_REL")
fact remote_delay_ms "$DELAY_MS"
fact remote_template "$TEMPLATE"
fact tools_remote "$(nginx -v 2>&1 | sed 's/^nginx version: //'), $(httpdirfs -V 2>&1 | head -1 | sed 's/ version / /'), $(curl --version | head -1 | cut -d' ' -f1-2)"
: > "$WORK/remote.tsv"
: > "$WORK/remote-checks.tsv"
rrec() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$WORK/remote.tsv"; }
rcheck() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$WORK/remote-checks.tsv"; }
VIEW_SHA=$(node -e 'const v = require(process.argv[1]); process.stdout.write(v.find((x) => x.path === process.argv[2]).sha256)' "$WORK/views.json" "$VIEW_REL")
# copy_check NAME FILE REP: FILE is the tar.gz view (its size every rep; its sha256 on the last rep)
copy_check() {
  local size sum
  size=$(stat -c %s "$2")
  if [ "$size" != "$(view_size "$VIEW_REL")" ]; then rcheck "$1" FAIL "rep $3: $size bytes, want $(view_size "$VIEW_REL")"; return; fi
  [ "$3" = "$REPS" ] || return 0
  sum=$(sha256sum "$2" | cut -d' ' -f1)
  if [ "$sum" = "$VIEW_SHA" ]; then rcheck "$1" ok "size as listed each rep; sha256 of rep $3 as listed"
  else rcheck "$1" FAIL "rep $3: sha256 $sum, want $VIEW_SHA"; fi
}

# what nginx serves: U.iso (a hard link) and the baseline's plain file, the tar.gz view copied
# out of a local mount (a directory of their own: httpdirfs lists only them, and nginx never
# stats the FUSE mount points in $WORK)
ln "$WORK/U.iso" "$WWW/U.iso"
mount_uniso
cp "$UMNT/$VIEW_REL" "$WWW/$TEMPLATE"
stop_uniso
copy_check plain-copy "$WWW/$TEMPLATE" "$REPS"
cat > "$RW/nginx/nginx.conf" <<NGINX
user root;
worker_processes 1;
daemon off;
pid $RW/nginx/nginx.pid;
error_log $WORK/remote-nginx.log warn;
events { worker_connections 512; }
http {
  access_log off;
  sendfile on;
  default_type application/octet-stream;
  client_body_temp_path $RW/nginx/tmp/body;
  proxy_temp_path $RW/nginx/tmp/proxy;
  fastcgi_temp_path $RW/nginx/tmp/fastcgi;
  uwsgi_temp_path $RW/nginx/tmp/uwsgi;
  scgi_temp_path $RW/nginx/tmp/scgi;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $WWW;
    autoindex on;
  }
}
NGINX
nginx -c "$RW/nginx/nginx.conf" -p "$RW/nginx" -e "$WORK/remote-nginx.log" >> "$WORK/remote-nginx.log" 2>&1 &
NGINX_PID=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$NGINX_PORT/" && break; kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
curl -sf -o /dev/null "http://127.0.0.1:$NGINX_PORT/" || { say "nginx did not start: $(tail -3 "$WORK/remote-nginx.log")"; exit 1; }
PROXY_STATS="$WORK/remote-proxy-stats.json"
node "$HERE/delay-proxy.js" "$PROXY_PORT" "127.0.0.1:$NGINX_PORT" "$DELAY_MS" "$PROXY_STATS" > "$WORK/remote-proxy.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 100); do grep -q ready "$WORK/remote-proxy.log" && break; kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
grep -q ready "$WORK/remote-proxy.log" || { say "delay-proxy did not start: $(cat "$WORK/remote-proxy.log")"; exit 1; }
BASE="http://127.0.0.1:$PROXY_PORT"
URL="$BASE/U.iso"
fact remote_url "$URL"
proxy_stat() { node -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))[process.argv[2]]))' "$PROXY_STATS" "$1"; }
fact remote_proxy_queue_bytes "$(proxy_stat queueBytes)"
# the latency the proxy adds, as curl sees it: time to the first byte of the index, direct and through it (median of 5)
ttfb() { for _ in 1 2 3 4 5; do curl -sSf -o /dev/null -w '%{time_starttransfer}\n' "$1"; done | sort -n | sed -n 3p; }
fact remote_ttfb_direct_s "$(ttfb "http://127.0.0.1:$NGINX_PORT/")"
fact remote_ttfb_proxy_s "$(ttfb "$BASE/")"
# fetched_now: bytes the proxy has passed server -> client so far (its totals, written on SIGUSR1)
fetched_now() { kill -USR1 "$PROXY_PID"; sleep 0.1; proxy_stat down; }
# fetched: the same once every connection has closed (5 s at most: the clients are done by then)
fetched() {
  for _ in $(seq 50); do
    kill -USR1 "$PROXY_PID"
    sleep 0.1
    [ "$(proxy_stat open)" != 0 ] || break
  done
  proxy_stat down
}

# rmount CACHE_DIR: `uniso mount URL` at $RMNT with CACHE_DIR, its pid in rpid; on failure
# (`uniso mount` without a remote source) REMOTE_OK=0, fact remote_error, return 1
REMOTE_OK=1
rpid=
rmount() {
  if ! "${UNISO[@]}" mount "$URL" "$RMNT" --cache-dir "$1" --cache-size 2G 2> "$WORK/remote-mount.err"; then
    REMOTE_OK=0
    fact remote_error "$(head -1 "$WORK/remote-mount.err" | cut -c1-300)"
    say "uniso mount $URL failed, its figures are not measured: $(head -1 "$WORK/remote-mount.err")"
    stop_uniso "$RMNT"
    return 1
  fi
  rpid=$(daemon_pid "$RMNT")
  [ -n "$rpid" ] || { say "cannot find the remote uniso daemon's pid"; exit 1; }
}
rumount() {
  rrec "$1-vmhwm" "$2" "$(vmhwm_kb "$rpid")"
  DAEMON_TICKS=$((DAEMON_TICKS + $(proc_ticks "$rpid")))
  stop_uniso "$RMNT"
}

for rep in $(seq 1 "$REPS"); do
  say "remote mount, rep $rep/$REPS: curl; uniso mount URL (fresh cache, then cached); uniso on httpdirfs; local"
  OUT="$RW/out/template.tar.gz"
  # (c) baseline: curl -o of the plain copy through the proxy
  b0=$(fetched)
  rrec curl "$rep" "$(timed curl -sSf -o "$OUT" "$BASE/$TEMPLATE")"
  rrec curl-bytes "$rep" "$(($(fetched) - b0))"
  copy_check curl "$OUT" "$rep"
  rm -f "$OUT"

  # (a), (c): uniso mount URL on a fresh empty cache dir; mount (untimed, its bytes counted), cp, umount
  C="$RW/cache-$rep"
  if [ "$REMOTE_OK" = 1 ]; then
    rm -rf "$C"
    mkdir -p "$C"
    b0=$(fetched)
    drop_caches
    t0=$(now)
    if rmount "$C"; then
      t1=$(now)
      rrec uniso-mount "$rep" "$(secs "$t0" "$t1")"
      rrec uniso-mount-bytes "$rep" "$(($(fetched_now) - b0))"
      rrec uniso "$rep" "$(timed cp "$RMNT/$VIEW_REL" "$OUT")"
      rumount uniso "$rep"
      rrec uniso-bytes "$rep" "$(($(fetched) - b0))"
      rrec uniso-cache-bytes "$rep" "$(du -sb "$C" | cut -f1)"
      copy_check uniso-remote "$OUT" "$rep"
      rm -f "$OUT"
    fi
  fi
  # (e): a fresh daemon on the same cache dir, page cache dropped
  if [ "$REMOTE_OK" = 1 ]; then
    b0=$(fetched)
    if rmount "$C"; then
      rrec uniso-cached "$rep" "$(timed cp "$RMNT/$VIEW_REL" "$OUT")"
      rumount uniso-cached "$rep"
      rrec uniso-cached-bytes "$rep" "$(($(fetched) - b0))"
      copy_check uniso-remote-cached "$OUT" "$rep"
      rm -f "$OUT"
    fi
  fi
  rm -rf "$C"

  # (d) baseline: `uniso mount` of U.iso as seen on httpdirfs (--cache: fresh cache location)
  HC="$RW/httpdirfs-cache-$rep"
  mkdir -p "$HC"
  b0=$(fetched)
  drop_caches
  t0=$(now)
  httpdirfs -f --cache --cache-location "$HC" --no-range-check "$BASE/" "$HMNT" >> "$WORK/remote-httpdirfs.log" 2>&1 &
  HD_PID=$!
  for _ in $(seq 100); do [ -e "$HMNT/U.iso" ] && break; kill -0 "$HD_PID" 2>/dev/null || break; sleep 0.1; done
  [ -e "$HMNT/U.iso" ] || { say "httpdirfs did not mount: $(tail -3 "$WORK/remote-httpdirfs.log")"; exit 1; }
  "${UNISO[@]}" mount "$HMNT/U.iso" "$UMNT"
  pid=$(daemon_pid)
  t1=$(now)
  rrec httpdirfs-mount "$rep" "$(secs "$t0" "$t1")"
  rrec httpdirfs "$rep" "$(timed cp "$UMNT/$VIEW_REL" "$OUT")"
  rrec httpdirfs-vmhwm "$rep" "$(vmhwm_kb "$pid")"
  DAEMON_TICKS=$((DAEMON_TICKS + $(proc_ticks "$pid")))
  stop_uniso
  stop_httpdirfs
  rrec httpdirfs-bytes "$rep" "$(($(fetched) - b0))"
  rrec httpdirfs-cache-bytes "$rep" "$(du -sb "$HC" | cut -f1)"
  copy_check httpdirfs "$OUT" "$rep"
  rm -rf "$OUT" "$HC"

  # (e) baseline: a local `uniso mount` of U.iso
  mount_uniso
  rrec local "$rep" "$(timed cp "$UMNT/$VIEW_REL" "$OUT")"
  DAEMON_TICKS=$((DAEMON_TICKS + $(proc_ticks "$pid")))
  stop_uniso
  copy_check local "$OUT" "$rep"
  rm -f "$OUT"
done

# (b): the raw disk view, once, fresh cache dir: bytes fetched vs the pool bytes its recipe uses
RAW_REL=$(view_path '^raw/[^/]*\.img$')
fact remote_raw_view "$RAW_REL"
fact remote_raw_view_bytes "$(view_size "$RAW_REL")"
# `uniso info --json` gives views[].poolBytes (stored bytes of the distinct pool blocks a view's
# recipe and the recipes it includes read) once it has it; empty until then
fact remote_raw_pool_bytes "$(node -e 'const i = require(process.argv[1]); const v = (i.views || []).find((x) => x.path === process.argv[2]); process.stdout.write(v && Number.isFinite(v.poolBytes) ? String(v.poolBytes) : "")' "$WORK/info.json" "$RAW_REL")"
if [ "$REMOTE_OK" = 1 ]; then
  say "remote mount: cp --sparse=always of $RAW_REL (fresh cache)"
  C="$RW/cache-raw"
  mkdir -p "$C"
  b0=$(fetched)
  if rmount "$C"; then
    rrec raw "1" "$(timed cp --sparse=always "$RMNT/$RAW_REL" "$RW/out/raw.img")"
    rumount raw 1
    rrec raw-bytes 1 "$(($(fetched) - b0))"
    if [ "$(stat -c %s "$RW/out/raw.img")" = "$(view_size "$RAW_REL")" ]; then rcheck uniso-remote-raw ok "size as listed"
    else rcheck uniso-remote-raw FAIL "$(stat -c %s "$RW/out/raw.img") bytes, want $(view_size "$RAW_REL")"; fi
  fi
  rm -rf "$C" "$RW/out/raw.img"
fi
stop_remote
rm -rf "$RW" "$WWW"
fi # BENCH_ONLY: section 11

# ---- 12. new disk formats: VHDX, VDI, GCE copy-out vs qemu-img convert / tar -Sczf; ISO growth ----
if [ -z "$ONLY" ] || [ "$ONLY" = 12 ]; then
mark "new disk formats: copy-out"
VHDX_REL=$(view_path '^vhdx/[^/]*\.vhdx$')
VDI_REL=$(view_path '^vdi/[^/]*\.vdi$')
GCE_REL=$(view_path '^gce/[^/]*\.tar\.gz$')
NRAW_REL=$(view_path '^raw/[^/]*\.img$')
NDISK_SIZE=$(view_size "$NRAW_REL")
NRAW_SHA=$(view_sha "$NRAW_REL")
for k in vhdx vdi gce raw; do
  case $k in vhdx) r=$VHDX_REL ;; vdi) r=$VDI_REL ;; gce) r=$GCE_REL ;; raw) r=$NRAW_REL ;; esac
  fact "nd_${k}_view" "$r"
  fact "nd_${k}_view_bytes" "$(view_size "$r")"
done
fact nd_tools "$(qemu-img --version | head -1 | cut -d' ' -f1-3), $(tar --version | head -1), $(gzip --version | head -1)"
fact nd_load "$(cut -d' ' -f1-3 /proc/loadavg)"
N="$WORK/newdisk"
rm -rf "$N"
mkdir -p "$N/src" "$N/x"
# the baselines' input: the raw view's own bytes, extracted sparse (64 KiB holes) and named
# disk.raw as GCE wants the member; untimed, like the cached raw disk of 6.
say "new disk formats: the raw view extracted to newdisk/src/disk.raw (sparse; the baselines' input)"
RAWF="$N/src/disk.raw"
t0=$(now)
"${UNISO[@]}" extract "$WORK/U.iso" "$NRAW_REL" -o "$RAWF"
sync
fact nd_raw_extract_s "$(secs "$t0" "$(now)")"
fact nd_raw_alloc_bytes "$(du -B1 "$RAWF" | cut -f1)"
: > "$WORK/newdisk.tsv"
nd_rec() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$WORK/newdisk.tsv"; }
nd_copy() { copy_view nd_rec "$@"; } # KIND REP VIEW OUT
for rep in $(seq 1 "$REPS"); do
  say "new disk formats, rep $rep/$REPS: cp of the VHDX, VDI and GCE views (fresh daemons); qemu-img convert -O vhdx, -O vdi; tar -Sczf"
  nd_copy uniso-vhdx "$rep" "$VHDX_REL" "$N/uniso.vhdx"
  nd_copy uniso-vdi "$rep" "$VDI_REL" "$N/uniso.vdi"
  nd_copy uniso-gce "$rep" "$GCE_REL" "$N/uniso-gce.tar.gz"
  rm -f "$N/conv.vhdx" "$N/conv.vdi" "$N/conv-gce.tar.gz"
  nd_rec conv-vhdx "$rep" "$(timed qemu-img convert -f raw -O vhdx -o subformat=dynamic,block_size=1M "$RAWF" "$N/conv.vhdx")"
  nd_rec conv-vdi "$rep" "$(timed qemu-img convert -f raw -O vdi "$RAWF" "$N/conv.vdi")"
  nd_rec conv-gce "$rep" "$(timed tar -C "$N/src" --format=oldgnu -Sczf "$N/conv-gce.tar.gz" disk.raw)"
done
for k in uniso.vhdx conv.vhdx uniso.vdi conv.vdi uniso-gce.tar.gz conv-gce.tar.gz; do
  fact "nd_bytes_$k" "$(stat -c %s "$N/$k")"
done

# checks of the last rep's outputs, outside the timings ("name<TAB>ok|FAIL<TAB>detail")
say "new disk formats: checking the outputs (qemu-img check/compare, gzip -t, sha256 of disk.raw)"
: > "$WORK/newdisk-checks.tsv"
nd_check() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$WORK/newdisk-checks.tsv"; }
# the baselines' input is the raw view: its sha256 as `uniso ls --json` lists it
sum=$(sha256sum "$RAWF" | cut -d' ' -f1)
if [ "$sum" = "$NRAW_SHA" ] && [ "$(stat -c %s "$RAWF")" = "$NDISK_SIZE" ]; then nd_check raw-extract ok "uniso extract of $NRAW_REL: size and sha256 as listed"
else nd_check raw-extract FAIL "sha256 $sum (want $NRAW_SHA), size $(stat -c %s "$RAWF") (want $NDISK_SIZE)"; fi
# nd_img NAME FMT FILE [VIEW]: qemu-img check, the virtual size, qemu-img compare against the raw
# view's bytes; with VIEW, the size as listed too
nd_img() {
  local out rc=0 crc=0 cout vsize note=''
  out=$(qemu-img check -f "$2" "$3" 2>&1) || rc=$?
  vsize=$(qemu-img info -f "$2" --output=json "$3" | node -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(0, "utf8"))["virtual-size"]))') || true
  cout=$(qemu-img compare -f raw -F "$2" "$RAWF" "$3" 2>&1) || crc=$?
  if [ -n "${4:-}" ] && [ "$(stat -c %s "$3")" != "$(view_size "$4")" ]; then note="size $(stat -c %s "$3"), listed $(view_size "$4"); "; fi
  if [ $rc = 0 ] && [ $crc = 0 ] && [ "$vsize" = "$NDISK_SIZE" ] && [ -z "$note" ]; then
    nd_check "$1" ok "${4:+size as listed; }qemu-img check: $(printf '%s\n' "$out" | grep -m1 -iE 'no errors|allocated' || echo 'exit 0'); virtual size $vsize; qemu-img compare with the raw view: $cout"
  else
    nd_check "$1" FAIL "${note}qemu-img check exit $rc: $(printf '%s\n' "$out" | grep -m1 -iE 'error|corrupt|leak' || printf '%s\n' "$out" | tail -1); virtual size $vsize (want $NDISK_SIZE); compare exit $crc: $(printf '%s\n' "$cout" | head -1)"
  fi
}
nd_img uniso-vhdx vhdx "$N/uniso.vhdx" "$VHDX_REL"
nd_img conv-vhdx vhdx "$N/conv.vhdx"
nd_img uniso-vdi vdi "$N/uniso.vdi" "$VDI_REL"
nd_img conv-vdi vdi "$N/conv.vdi"
# nd_gce NAME FILE [VIEW]: gzip -t, one member disk.raw, extracted: size and sha256 of the raw view
nd_gce() {
  local grc=0 members size sum note=''
  gzip -t "$2" 2> "$WORK/newdisk-gzip.err" || grc=$?
  members=$(tar -tzf "$2" | paste -sd' ') || true
  rm -rf "$N/x" && mkdir -p "$N/x"
  tar -xzf "$2" -C "$N/x" || true
  size=$(stat -c %s "$N/x/disk.raw" 2>/dev/null || echo 0)
  sum=$(sha256sum "$N/x/disk.raw" 2>/dev/null | cut -d' ' -f1) || true
  if [ -n "${3:-}" ] && [ "$(stat -c %s "$2")" != "$(view_size "$3")" ]; then note="size $(stat -c %s "$2"), listed $(view_size "$3"); "; fi
  if [ $grc = 0 ] && [ "$members" = disk.raw ] && [ "$size" = "$NDISK_SIZE" ] && [ "$sum" = "$NRAW_SHA" ] && [ -z "$note" ]; then
    nd_check "$1" ok "${3:+size as listed; }gzip -t ok; members: $members; disk.raw extracted: $size bytes ($(du -B1 "$N/x/disk.raw" | cut -f1) allocated), sha256 = the raw view's"
  else
    nd_check "$1" FAIL "${note}gzip -t exit $grc $(head -1 "$WORK/newdisk-gzip.err"); members: $members; disk.raw $size bytes (want $NDISK_SIZE), sha256 $sum (want $NRAW_SHA)"
  fi
  rm -rf "$N/x"
}
nd_gce uniso-gce "$N/uniso-gce.tar.gz" "$GCE_REL"
nd_gce conv-gce "$N/conv-gce.tar.gz"
rm -rf "$N"

# (b) the universal ISO's growth from the new views: the views there were before, BIOS disks only
# (the MBR layout), vs the default build of 1.; all formats with BIOS disks in between
mark "new disk formats: ISO growth"
OLD_FORMATS=ovf,vmdk,raw,qcow2,vhd,openvz,opennode,proxmox,xen,lxc,docker
fact nd_old_formats "$OLD_FORMATS"
say "uniso build --formats $OLD_FORMATS --firmware bios (the views before the GPT disks)"
uniso_build oldviews "$WORK/U-oldviews.iso" --formats "$OLD_FORMATS" --firmware bios
say "uniso build --firmware bios (all formats)"
uniso_build bios "$WORK/U-bios.iso" --firmware bios
# iso_parts TAG ISO: its bytes, live squashfs, side pool, catalog, view count
iso_parts() {
  local info
  info=$("${UNISO[@]}" info --json "$2")
  fact "nd_iso_${1}_bytes" "$(stat -c %s "$2")"
  fact "nd_iso_${1}_squashfs_bytes" "$(node -e 'process.stdout.write(String(JSON.parse(process.argv[1]).pool.squashfs.bytes))' "$info")"
  fact "nd_iso_${1}_side_pool_bytes" "$(node -e 'process.stdout.write(String(JSON.parse(process.argv[1]).pool.sidePool.bytes))' "$info")"
  rm -f "$WORK/catalog-$1.sqlite"
  xorriso -osirrox on -indev "$2" -extract /uniso/catalog.sqlite "$WORK/catalog-$1.sqlite" >/dev/null 2>&1
  fact "nd_iso_${1}_catalog_bytes" "$(stat -c %s "$WORK/catalog-$1.sqlite")"
  fact "nd_iso_${1}_views" "$("${UNISO[@]}" ls --json "$2" | node -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(0, "utf8")).filter((v) => !v.path.endsWith(".sha256") && v.path !== "README.txt").length))')"
}
iso_parts oldviews "$WORK/U-oldviews.iso"
iso_parts bios "$WORK/U-bios.iso"
iso_parts default "$WORK/U.iso"
# the stored recipes of the default ISO's views (what the new views add to its catalog)
node -e '
  const Database = require(process.argv[1]);
  const db = new Database(process.argv[2], { readonly: true });
  const recipes = db.prepare("SELECT r.id, length(r.data) AS bytes, group_concat(v.path, char(32)) AS views FROM recipes r LEFT JOIN views v ON v.recipe = r.id GROUP BY r.id ORDER BY bytes DESC").all();
  process.stdout.write(JSON.stringify(recipes));
' "$ROOT/node_modules/better-sqlite3" "$WORK/catalog-default.sqlite" > "$WORK/newdisk-recipes.json"
rm -f "$WORK/U-oldviews.iso" "$WORK/U-bios.iso" "$WORK"/catalog-*.sqlite
fi # BENCH_ONLY: section 12

# ---- 13. scale: synthetic trees of 100,000 and 1,000,000 entries ----------------------------
# (not indented: the whole section; a failing build or mount is recorded, not fatal)
if [ -z "$ONLY" ] || [ "$ONLY" = 13 ]; then
SC="$WORK/scale"
rm -rf "$SC"
mkdir -p "$SC" "$SCM" "$QMNT"
: > "$WORK/scale.tsv"
scale_rec() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$WORK/scale.tsv"; } # ENTRIES KIND REP VALUE
fact scale_tools "$(mksquashfs -version 2>&1 | head -1 | cut -d' ' -f1-3), $(squashfuse --help 2>&1 | head -1 | cut -d' ' -f1-2)"
# wait_ls DIR: until `ls DIR` lists something (60 s at most); 1 when it never did
wait_ls() {
  local i
  for i in $(seq 6000); do
    if [ -n "$(ls -A "$1" 2>/dev/null | head -1)" ]; then return 0; fi
    sleep 0.01
  done
  return 1
}
# walk_count MNT: `ls -lR MNT` (every entry lstat'ed), the entries it listed on stdout
walk_count() { { ls -lR "$1" || true; } | { grep -c '^[-dlbcps]' || true; }; }
SCALE_SIZES=()
[ "${BENCH_SCALE_100K:-1}" = 0 ] || SCALE_SIZES+=(100000)
[ "${BENCH_SCALE_1M:-1}" = 0 ] || SCALE_SIZES+=(1000000)
fact scale_sizes "${SCALE_SIZES[*]}"
for n in "${SCALE_SIZES[@]}"; do
  say "scale, $n entries: the tree (cached under bench/cache/scale-$n-*)"
  SDIR=$(node "$HERE/make-scale-tree.js" "$n")
  ST="$SDIR/tree"
  scale_rec "$n" entries 0 "$(cat "$SDIR/entries")"
  scale_rec "$n" file-bytes 0 "$(cat "$SDIR/bytes")"
  scale_rec "$n" tree-make-s 0 "$(cat "$SDIR/done")"
  scale_rec "$n" load 0 "$(cut -d' ' -f1 /proc/loadavg)"
  SISO="$SC/S.iso"
  SSQ="$SC/S.sqfs"
  rm -f "$SISO" "$SSQ"

  # build: mksquashfs (the baseline), then uniso build; both cold, timed up to their sync
  mark "scale $n: builds"
  say "scale, $n entries: mksquashfs -comp gzip (baseline)"
  drop_caches
  t0=$(now)
  /usr/bin/time -f '%M' -o "$SC/sq-maxrss" mksquashfs "$ST" "$SSQ" -comp gzip -noappend -quiet -no-progress >/dev/null
  sync
  scale_rec "$n" sq-build-s 1 "$(secs "$t0" "$(now)")"
  scale_rec "$n" sq-build-maxrss-kb 1 "$(tail -1 "$SC/sq-maxrss")"
  scale_rec "$n" sq-bytes 1 "$(stat -c %s "$SSQ")"
  say "scale, $n entries: uniso build (all views)"
  drop_caches
  t0=$(now)
  fact "scale_${n}_build_start" "$t0"
  rc=0
  { /usr/bin/time -f '%M' -o "$SC/u-maxrss" "${UNISO[@]}" build "$ST" -o "$SISO" --name "scale-$n" 2>&1 >/dev/null; } | stamp > "$WORK/scale-$n-build-progress.log" || rc=$?
  fact "scale_${n}_build_end" "$(now)"
  sync
  scale_rec "$n" build-s 1 "$(secs "$t0" "$(now)")"
  scale_rec "$n" build-rc 1 "$rc"
  [ ! -s "$SC/u-maxrss" ] || scale_rec "$n" build-maxrss-kb 1 "$(grep -E '^[0-9]+$' "$SC/u-maxrss" | tail -1)"
  if [ $rc != 0 ] || [ ! -s "$SISO" ]; then
    say "scale, $n entries: uniso build failed (exit $rc): $(grep -v '^[0-9.]* uniso: ' "$WORK/scale-$n-build-progress.log" | tail -2 | cut -c1-300)"
    rm -f "$SISO" "$SSQ"
    continue
  fi
  say "scale, $n entries: uniso build $(secs "$t0" "$(now)") s"
  scale_rec "$n" iso-bytes 1 "$(stat -c %s "$SISO")"
  rm -f "$SC/catalog.sqlite"
  xorriso -osirrox on -indev "$SISO" -extract /uniso/catalog.sqlite "$SC/catalog.sqlite" >/dev/null 2>&1
  scale_rec "$n" catalog-bytes 1 "$(stat -c %s "$SC/catalog.sqlite")"
  rm -f "$SC/catalog.sqlite"
  "${UNISO[@]}" info --json "$SISO" > "$SC/info.json"
  scale_rec "$n" base-tree-entries 1 "$(node -e 'const i = require(process.argv[1]); process.stdout.write(String(i.trees.find((t) => t.name === "base").entries))' "$SC/info.json")"

  # mount ready: from starting `uniso mount` (cold) until `ls MNT` answers; vs squashfuse -f of the baseline's image
  mark "scale $n: mounts and walks"
  for rep in $(seq 1 "$REPS"); do
    say "scale, $n entries, rep $rep/$REPS: uniso ls, mount ready, squashfuse ready"
    drop_caches
    t0=$(now)
    "${UNISO[@]}" ls "$SISO" > /dev/null
    scale_rec "$n" ls-s "$rep" "$(secs "$t0" "$(now)")"
    drop_caches
    t0=$(now)
    if ! "${UNISO[@]}" mount "$SISO" "$SCM" 2> "$SC/mount.err"; then
      say "scale, $n entries: uniso mount failed: $(head -1 "$SC/mount.err")"
      scale_rec "$n" mount-failed "$rep" 1
      stop_uniso "$SCM"
      break
    fi
    t1=$(now)
    if ! wait_ls "$SCM"; then say "scale, $n entries: the mount never answered ls"; scale_rec "$n" mount-failed "$rep" 1; stop_uniso "$SCM"; break; fi
    t2=$(now)
    scale_rec "$n" mount-cmd-s "$rep" "$(secs "$t0" "$t1")"
    scale_rec "$n" mount-ready-s "$rep" "$(secs "$t0" "$t2")"
    spid=$(daemon_pid "$SCM")
    if [ "$rep" = "$REPS" ] && [ -n "$spid" ]; then
      sleep 1   # let start-up work settle before sampling RSS
      scale_rec "$n" rss-ready-kb "$rep" "$(proc_kb "$spid" VmRSS)"
      scale_rec "$n" hwm-ready-kb "$rep" "$(proc_kb "$spid" VmHWM)"
      say "scale, $n entries: ls -lR of the mounted rootfs/ (cold)"
      drop_caches
      t0=$(now)
      cnt=$(walk_count "$SCM/rootfs")
      scale_rec "$n" walk-s "$rep" "$(secs "$t0" "$(now)")"
      scale_rec "$n" walk-entries "$rep" "$cnt"
      scale_rec "$n" rss-walk-kb "$rep" "$(proc_kb "$spid" VmRSS)"
      scale_rec "$n" hwm-walk-kb "$rep" "$(proc_kb "$spid" VmHWM)"
      scale_rec "$n" fds-walk "$rep" "$(ls "/proc/$spid/fd" | wc -l)"
      scale_rec "$n" threads-walk "$rep" "$(proc_kb "$spid" Threads)"
    fi
    [ -z "$spid" ] || DAEMON_TICKS=$((DAEMON_TICKS + $(proc_ticks "$spid")))
    stop_uniso "$SCM"

    drop_caches
    t0=$(now)
    squashfuse -f "$SSQ" "$QMNT" 2> "$SC/squashfuse.err" &
    QPID=$!
    if wait_ls "$QMNT"; then
      scale_rec "$n" sq-ready-s "$rep" "$(secs "$t0" "$(now)")"
      if [ "$rep" = "$REPS" ]; then
        drop_caches
        t0=$(now)
        cnt=$(walk_count "$QMNT")
        scale_rec "$n" sq-walk-s "$rep" "$(secs "$t0" "$(now)")"
        scale_rec "$n" sq-walk-entries "$rep" "$cnt"
        scale_rec "$n" sq-hwm-walk-kb "$rep" "$(proc_kb "$QPID" VmHWM)"
      fi
    else
      say "squashfuse did not mount: $(head -1 "$SC/squashfuse.err")"
    fi
    if is_mounted "$QMNT"; then fusermount3 -u "$QMNT" 2>/dev/null || fusermount -u "$QMNT" 2>/dev/null || umount -l "$QMNT" || true; fi
    stop_pid "$QPID"
    QPID=
  done
  rm -f "$SISO" "$SSQ"
done
rm -rf "$SC"
fi # BENCH_ONLY: section 13

# ---- 14. soak: 16 readers of random ranges of random views through one mount, checked ----------
# (not indented: the whole section)
if [ -z "$ONLY" ] || [ "$ONLY" = 14 ]; then
mark "soak: reference copies"
SOAK_S=${BENCH_SOAK_SECONDS:-600}
SOAK_BASE_S=${BENCH_SOAK_BASE_SECONDS:-60}
SOAK_W=${BENCH_SOAK_READERS:-16}
K="$WORK/soak"
rm -rf "$K"
mkdir -p "$K/ref"
fact soak_seconds "$SOAK_S"
fact soak_base_seconds "$SOAK_BASE_S"
fact soak_readers "$SOAK_W"
fact soak_load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
# one view of each kind: spliced tar.gz, inflating tar, squashfs, OVA, streamOptimized VMDK,
# qcow2, the sparse raw disk, dynamic VHD, VHDX, VDI, the GCE tar.gz, and small files
SOAK_VIEWS=$(node -e '
  const v = require(process.argv[1]);
  const res = [/^proxmox\/[^/]*\.tar\.gz$/, /^docker\/[^/]*\.tar$/, /^lxc\/.*rootfs\.squashfs$/, /^vm\/[^/]*\.ova$/, /^vm\/[^/]*-disk1\.vmdk$/,
    /^openstack\/[^/]*\.qcow2$/, /^raw\/[^/]*\.img$/, /^vhd\/[^/]*\.vhd$/, /^vhdx\/[^/]*\.vhdx$/, /^vdi\/[^/]*\.vdi$/, /^gce\/[^/]*\.tar\.gz$/,
    /^vm\/[^/]*\.ovf$/, /^vm\/[^/]*\.mf$/, /^vmdk\/[^/]*[^t]\.vmdk$/, /^raw\/[^/]*\.img\.sha256$/, /^README\.txt$/];
  const out = [];
  for (const re of res) { const x = v.find((y) => re.test(y.path)); if (x) out.push(x.path); }
  process.stdout.write(out.join("\n"));
' "$WORK/views.json")
fact soak_views "$(printf '%s' "$SOAK_VIEWS" | paste -sd' ')"
: > "$WORK/soak-checks.tsv"
soak_check() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$WORK/soak-checks.tsv"; }
# the references: `uniso extract` (sparse where the recipe has zero runs), each checked against
# the sha256 `uniso ls --json` lists; the disk images also against the raw one with qemu-img compare
say "soak: reference copies of $(printf '%s\n' "$SOAK_VIEWS" | wc -l) views (uniso extract, sha256, qemu-img compare)"
t0=$(now)
while IFS= read -r v; do
  r="$K/ref/$(printf '%s' "$v" | tr / _)"
  "${UNISO[@]}" extract "$WORK/U.iso" "$v" -o "$r"
  sum=$(sha256sum "$r" | cut -d' ' -f1)
  if [ "$sum" = "$(view_sha "$v")" ] && [ "$(stat -c %s "$r")" = "$(view_size "$v")" ]; then soak_check "ref $v" ok "size and sha256 as listed"
  else soak_check "ref $v" FAIL "sha256 $sum, size $(stat -c %s "$r")"; fi
done <<< "$SOAK_VIEWS"
RAW_REF="$K/ref/$(view_path '^raw/[^/]*\.img$' | tr / _)"
for kf in 'openstack/[^/]*\.qcow2$:qcow2' 'vhd/[^/]*\.vhd$:vpc' 'vhdx/[^/]*\.vhdx$:vhdx' 'vdi/[^/]*\.vdi$:vdi' 'vm/[^/]*-disk1\.vmdk$:vmdk'; do
  v=$(view_path "^${kf%:*}") || continue
  cout=$(qemu-img compare -f raw -F "${kf##*:}" "$RAW_REF" "$K/ref/$(printf '%s' "$v" | tr / _)" 2>&1) && soak_check "compare $v" ok "qemu-img compare with the raw view: $cout" || soak_check "compare $v" FAIL "qemu-img compare: $(printf '%s\n' "$cout" | head -1)"
done
fact soak_refs_s "$(secs "$t0" "$(now)")"
fact soak_refs_alloc_bytes "$(du -sB1 "$K/ref" | cut -f1)"
# the files list, with the data extents of the sparse references (SEEK_DATA/SEEK_HOLE)
# shellcheck disable=SC2086 # one argument per view (no spaces in view paths)
python3 - "$K/files.json" "$K/ref" $SOAK_VIEWS <<'PY'
import json, os, sys
out, refdir, views = sys.argv[1], sys.argv[2], sys.argv[3:]
files = []
for v in views:
    ref = os.path.join(refdir, v.replace('/', '_'))
    st = os.stat(ref)
    f = {'path': v, 'ref': ref, 'size': st.st_size}
    if st.st_blocks * 512 < st.st_size * 0.9:
        fd = os.open(ref, os.O_RDONLY)
        ext, off = [], 0
        while off < st.st_size:
            try:
                d = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break
            h = os.lseek(fd, d, os.SEEK_HOLE)
            ext.append([d, h])
            off = h
        os.close(fd)
        f['extents'] = ext
    files.append(f)
json.dump(files, open(out, 'w'))
PY

mark "soak: FUSE readers"
say "soak: $SOAK_W readers through one uniso mount for $SOAK_S s (RSS, fds, threads sampled every 5 s)"
mount_uniso
fact soak_pid "$pid"
node "$HERE/soak.js" --files "$K/files.json" --target "$UMNT" --seconds "$SOAK_S" --workers "$SOAK_W" --pid "$pid" \
  --samples "$WORK/soak-samples.tsv" --out "$WORK/soak.json" 2> "$WORK/soak.log" || say "soak: the readers failed: $(tail -3 "$WORK/soak.log")"
DAEMON_TICKS=$((DAEMON_TICKS + $(proc_ticks "$pid")))
stop_uniso
fact soak_load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
mark "soak: local baseline"
say "soak: the same readers on the reference copies (local disk) for $SOAK_BASE_S s"
node -e '
  const f = require(process.argv[1]);
  require("fs").writeFileSync(process.argv[2], JSON.stringify(f.map((x) => ({ ...x, path: require("path").basename(x.ref) }))));
' "$K/files.json" "$K/files-local.json"
node "$HERE/soak.js" --files "$K/files-local.json" --target "$K/ref" --seconds "$SOAK_BASE_S" --workers "$SOAK_W" --drop 20 \
  --samples "$WORK/soak-base-samples.tsv" --out "$WORK/soak-base.json" 2> "$WORK/soak-base.log" || say "soak: the baseline readers failed: $(tail -3 "$WORK/soak-base.log")"
rm -rf "$K"
fi # BENCH_ONLY: section 14

mark end
T_END=$(now)
BUSY1=$(busy_ticks)
times > "$WORK/times1"
OURS1=$(times_secs "$WORK/times1")
HZ=$(getconf CLK_TCK)
fact clk_tck "$HZ"
fact machine_cpu_s "$(awk -v a="$BUSY0" -v b="$BUSY1" -v hz="$HZ" 'BEGIN { printf "%.1f", (b - a) / hz }')"
fact own_cpu_s "$(awk -v a="$OURS0" -v b="$OURS1" -v d="$DAEMON_TICKS" -v hz="$HZ" 'BEGIN { printf "%.1f", b - a + d / hz }')"
fact measured_s "$(secs "$t_measure0" "$T_END")"
fact bench_s "$(secs "$T_BEGIN" "$T_END")"
fact reps "$REPS"

# ---- report -----------------------------------------------------------------
# a BENCH_ONLY run writes its own results.md, not over the whole bench's
if [ -n "$ONLY" ]; then RESULTS="$WORK/results.md"; else RESULTS="$HERE/results.md"; fi
node "$HERE/report.js" "$WORK" "$RESULTS"
