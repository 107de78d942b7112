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
# Needs root (drop_caches, debootstrap, FUSE). Everything mounted is unmounted
# on exit, also on failure. Env: BENCH_REPS=3, BENCH_KEEP=1 keeps the big
# outputs in bench/work/, BENCH_STRICT=1 exits 1 when a target fails.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd -P)
ROOT=$(cd "$HERE/.." && pwd)
WORK="$HERE/work"
REPS=${BENCH_REPS:-3}
ISO_NAME=turnkey-benchcore-18.0-bookworm-amd64.iso
UNISO=(node "$ROOT/bin/uniso")
[ "$(id -u)" = 0 ] || { echo "bench: must run as root (drop_caches, FUSE, debootstrap)" >&2; exit 1; }

UMNT="$WORK/mnt-uniso"
PMNT="$WORK/mnt-passthrough"
PT_PID=

is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts; }

stop_passthrough() {
  if [ -n "$PT_PID" ] && kill -0 "$PT_PID" 2>/dev/null; then
    kill -TERM "$PT_PID" 2>/dev/null || true
    wait "$PT_PID" 2>/dev/null || true
  fi
  PT_PID=
  if is_mounted "$PMNT"; then fusermount3 -u "$PMNT" 2>/dev/null || fusermount3 -uz "$PMNT" || true; fi
}

stop_uniso() {
  if is_mounted "$UMNT" || [ -f "$(state_file)" ]; then
    "${UNISO[@]}" umount "$UMNT" 2>/dev/null || true
  fi
  if is_mounted "$UMNT"; then fusermount3 -uz "$UMNT" || true; fi
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_passthrough
  stop_uniso
  if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$WORK/U.iso" "$WORK/conv"; fi
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
say() { echo "bench: $*" >&2; }
# where `uniso mount` keeps its state (pid) for a mount point, as src/fuse/control.ts names it
state_file() { echo "/run/uniso/$(printf '%s' "$UMNT" | sha256sum | cut -c1-16).json"; }
daemon_pid() {
  local f; f=$(state_file)
  if [ -f "$f" ]; then
    node -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).pid))' "$f"
  else
    pgrep -f "uniso mount --foreground .* $UMNT\$" | head -1
  fi
}
vmhwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
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
stop_uniso
rm -rf "$WORK"
mkdir -p "$WORK" "$UMNT" "$PMNT"
FACTS="$WORK/facts.tsv"
: > "$FACTS"

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
say "uniso build (all views)"
drop_caches
TIMEFMT=()
if [ -x /usr/bin/time ]; then TIMEFMT=(/usr/bin/time -f '%M' -o "$WORK/build-maxrss-kb"); fi
t0=$(now)
fact build_start "$t0"
# progress lines (stderr) are stamped with the time they arrive, for the phase breakdown
{ "${TIMEFMT[@]}" "${UNISO[@]}" build "$ISO" -o "$WORK/U.iso" 2>&1 >/dev/null; } |
  while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done > "$WORK/build-progress.log"
t_built=$(now)
sync
t1=$(now)
fact build_end "$t_built"
fact uniso_build_s "$(secs "$t0" "$t1")"
[ -f "$WORK/build-maxrss-kb" ] && fact uniso_build_maxrss_kb "$(tail -1 "$WORK/build-maxrss-kb")"
fact universal_iso_bytes "$(stat -c %s "$WORK/U.iso")"
"${UNISO[@]}" ls --json "$WORK/U.iso" > "$WORK/views.json"
"${UNISO[@]}" info --json "$WORK/U.iso" > "$WORK/info.json"
say "uniso build: $(secs "$t0" "$t1") s"

# ---- 2. build time: conventional pipeline ------------------------------------
say "conventional pipeline (unsquashfs, tar czf x5, tar cf, mksquashfs)"
drop_caches
t0=$(now)
"$HERE/conventional.sh" "$ISO" "$WORK/conv" "$WORK/conv-times.tsv" "$WORK/conv-sizes.tsv"
t1=$(now)
fact conventional_build_s "$(secs "$t0" "$t1")"
say "conventional: $(secs "$t0" "$t1") s"
rm -rf "$WORK/conv"   # only the sizes are needed from here on; frees the page cache too

# ---- 4/5. FUSE first-read throughput and daemon RSS ---------------------------
VIEW_REL=$(node -e 'const v = require(process.argv[1]); process.stdout.write(v.find((x) => /^proxmox\/.*\.tar\.gz$/.test(x.path)).path)' "$WORK/views.json")
EXTRA_VIEWS=$(node -e 'const v = require(process.argv[1]); process.stdout.write(v.filter((x) => /^(lxc\/.*\.tar\.gz|docker\/.*\.tar)$/.test(x.path)).map((x) => x.path).join("\n"))' "$WORK/views.json")
fact view "$VIEW_REL"
fact view_bytes "$(node -e 'const v = require(process.argv[1]); process.stdout.write(String(v.find((x) => x.path === process.argv[2]).size))' "$WORK/views.json" "$VIEW_REL")"
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
  s=$(cold_read "$PMNT/U.iso")
  printf 'passthrough\t%s\tU.iso\t%s\n' "$rep" "$s" >> "$WORK/reads.tsv"
  printf 'passthrough-vmhwm\t%s\t-\t%s\n' "$rep" "$(vmhwm_kb "$PT_PID")" >> "$WORK/reads.tsv"
  stop_passthrough
done

T_END=$(now)
BUSY1=$(busy_ticks)
times > "$WORK/times1"
OURS1=$(times_secs "$WORK/times1")
HZ=$(getconf CLK_TCK)
fact machine_cpu_s "$(awk -v a="$BUSY0" -v b="$BUSY1" -v hz="$HZ" 'BEGIN { printf "%.1f", (b - a) / hz }')"
fact own_cpu_s "$(awk -v a="$OURS0" -v b="$OURS1" -v d="$DAEMON_TICKS" -v hz="$HZ" 'BEGIN { printf "%.1f", b - a + d / hz }')"
fact measured_s "$(secs "$t_measure0" "$T_END")"
fact bench_s "$(secs "$T_BEGIN" "$T_END")"
fact reps "$REPS"

# ---- report -----------------------------------------------------------------
node "$HERE/report.js" "$WORK" "$HERE/results.md"
