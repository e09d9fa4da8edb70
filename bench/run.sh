#!/usr/bin/env bash
# Holdfast against restic, borg, rustic and kopia on the same data, in one run. Usage:
#   bash bench/run.sh            (REPS=3 BENCH_DIR=/tmp/holdfast-bench by default)
# Steps per tool, each on a fresh repository: full backup, unchanged incremental,
# incremental after changing 1% of files and 2% of the page file's pages, restore of the
# newest run to tmpfs and to disk, deep verify/check. Tools run in a rotating order in every
# repetition so no tool always goes first (or last). Before every timed step: sync, drop the
# page cache, then read the step's input once (the source for a backup, the repository for a
# restore or verify), so every tool starts from the same cache state and no writeback of the
# step before is still pending. Writes bench/RESULTS.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
BENCH="${BENCH_DIR:-/tmp/holdfast-bench}"
REPS="${REPS:-3}"
PEERS="${PEERS:-$HOME/.cache/holdfast-bench}"
mkdir -p "$BENCH"

need=()
command -v restic >/dev/null || need+=(restic)
command -v borg >/dev/null || need+=(borgbackup)
command -v zstd >/dev/null || need+=(zstd)
[ -x /usr/bin/time ] || need+=(time)
[ -f /usr/src/linux-source-6.1.tar.xz ] || need+=(linux-source-6.1)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from Debian…"
  (apt-get install -y "${need[@]}" >/dev/null 2>&1) || (apt-get update >/dev/null && apt-get install -y "${need[@]}" >/dev/null)
fi
PEERS="$PEERS" bash "$here/peers.sh"

echo "building holdfast (release)…"
(cd "$root" && cargo build --release --locked --quiet -p holdfast)
HF="$root/target/release/holdfast"
RUSTIC="$PEERS/rustic/bin/rustic"
KOPIA="$PEERS/kopia/bin/kopia"

tools=(holdfast restic borg)
[ -x "$RUSTIC" ] && [ ! -f "$PEERS/rustic.unavailable" ] && tools+=(rustic)
[ -x "$KOPIA" ] && [ ! -f "$PEERS/kopia.unavailable" ] && tools+=(kopia)
notes="$BENCH/notes.txt"
: > "$notes"
for peer in rustic kopia; do
  [ -f "$PEERS/$peer.unavailable" ] && cat "$PEERS/$peer.unavailable" >> "$notes"
done

data="$BENCH/data"
mkdir -p "$data"
if [ ! -d "$data/linux-source-6.1" ]; then
  echo "extracting linux-source-6.1…"
  tar xf /usr/src/linux-source-6.1.tar.xz -C "$data"
fi
if [ ! -f "$data/db.pages" ]; then
  echo "writing the 1 GiB page file…"
  python3 "$here/dataset.py" pages "$data/db.pages" 1024
fi
SRC=("$data/linux-source-6.1" "$data/db.pages")
save="$BENCH/mutation"
# A run that died mid-way may have left the mutation applied.
if [ -f "$save/state.json" ]; then python3 "$here/dataset.py" revert "$data" "$data/db.pages" "$save"; rm -rf "$save"; fi

# Two restore targets: tmpfs measures the tools alone, the disk what users meet.
tmpfs_target="$BENCH/tmpfs-target"
disk_target="$BENCH/disk-target"
mkdir -p "$tmpfs_target" "$disk_target"
if ! mountpoint -q "$tmpfs_target"; then
  mount -t tmpfs -o size=8g tmpfs "$tmpfs_target" 2>/dev/null || echo "note: no tmpfs restore (cannot mount one)"
fi
mountpoint -q "$tmpfs_target" || tmpfs_target=""
disk_fs=$(findmnt -n -o FSTYPE -T "$disk_target")
[ "$disk_fs" = tmpfs ] && { echo "$disk_target is on tmpfs: set BENCH_DIR to a disk-backed directory" >&2; exit 2; }

can_drop=yes
(sync && echo 3 > /proc/sys/vm/drop_caches) 2>/dev/null || can_drop=no
[ "$can_drop" = yes ] || echo "note: cannot drop the page cache (not root?); steps start after sync only"

src_files=$(find "${SRC[@]}" -type f | wc -l)
src_bytes=$(find "${SRC[@]}" -type f -print0 | xargs -0 stat -c %s | awk '{s+=$1} END {printf "%.0f", s}')
results="$BENCH/results.tsv"
: > "$results"
timing="$BENCH/timing.txt"
log="$BENCH/step.log"

# prepare PATH...: flush, drop the page cache, read PATH's files once.
prepare() {
  sync
  if [ "$can_drop" = yes ]; then echo 3 > /proc/sys/vm/drop_caches; fi
  find "$@" -type f -print0 | xargs -0 cat > /dev/null
  sleep 2
}

# step TOOL STEP REP CMD...: time one command (wall, user+sys, peak RSS).
step() {
  local tool=$1 name=$2 rep=$3
  shift 3
  if ! /usr/bin/time -f "%e %U %S %M" -o "$timing" "$@" >"$log" 2>&1; then
    echo "FAILED: $tool $name: $*" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  read -r wall user sys rss < <(tail -1 "$timing")
  local cpu
  cpu=$(python3 -c "print(round($user+$sys, 2))")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$name" "$rep" "$wall" "$cpu" "$rss" >> "$results"
  printf '  %-8s %-14s %7ss  cpu %7ss  rss %6d MiB\n' "$tool" "$name" "$wall" "$cpu" "$((rss / 1024))"
}

export HOLDFAST_PASSPHRASE="benchmark passphrase" RESTIC_PASSWORD="benchmark passphrase" BORG_PASSPHRASE="benchmark passphrase"
export RUSTIC_PASSWORD="benchmark passphrase" KOPIA_PASSWORD="benchmark passphrase" KOPIA_CHECK_FOR_UPDATES=false
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

# Each tool: <tool>_init DIR creates the repository; <tool>_backup DIR LEVEL (full |
# unchanged | changed), <tool>_restore DIR TARGET and <tool>_verify DIR print the shell
# command of that step. Every tool runs with its defaults except compression, set to zstd
# level 3 (Holdfast's, restic's and rustic's default) where a tool has another default, so
# repository sizes compare.
src="'${SRC[0]}' '${SRC[1]}'"
holdfast_init() { "$HF" --repo "$1/repo" init --quiet; }
holdfast_backup() {
  local level=""
  [ "$2" = full ] || level="--level incr"
  echo "'$HF' --repo '$1/repo' backup --quiet --no-progress $level $src"
}
holdfast_restore() { echo "'$HF' --repo '$1/repo' restore --quiet --no-progress --target '$2'"; }
holdfast_verify() { echo "'$HF' --repo '$1/repo' verify --quiet --no-progress --deep"; }

restic_init() { restic init -q -r "$1/repo" --cache-dir "$1/cache"; }
restic_backup() { echo "restic -r '$1/repo' --cache-dir '$1/cache' backup -q $src"; }
restic_restore() { echo "restic -r '$1/repo' --cache-dir '$1/cache' restore -q latest --target '$2'"; }
restic_verify() { echo "restic -r '$1/repo' --cache-dir '$1/cache' check -q --read-data"; }

borg_init() { borg init --encryption repokey "$1/repo"; }
borg_backup() { echo "borg create --compression zstd,3 '$1/repo::$2' $src"; }
borg_restore() { echo "cd '$2' && borg extract '$1/repo::changed'"; }
borg_verify() { echo "borg check --verify-data '$1/repo'"; }

rustic_init() { "$RUSTIC" --no-progress -r "$1/repo" --cache-dir "$1/cache" init > /dev/null 2>&1; }
rustic_cmd() { echo "'$RUSTIC' --no-progress -r '$1/repo' --cache-dir '$1/cache'"; }
rustic_backup() { echo "$(rustic_cmd "$1") backup $src"; }
rustic_restore() { echo "$(rustic_cmd "$1") restore latest '$2'"; }
rustic_verify() { echo "$(rustic_cmd "$1") check --read-data"; }

kopia_cmd() { echo "KOPIA_CONFIG_PATH='$1/kopia.config' KOPIA_LOG_DIR='$1/logs' '$KOPIA'"; }
kopia_init() {
  bash -c "$(kopia_cmd "$1") repository create filesystem --path '$1/repo' --cache-directory '$1/cache'" > /dev/null 2>&1
  bash -c "$(kopia_cmd "$1") policy set --global --compression zstd" > /dev/null 2>&1
}
kopia_backup() { echo "$(kopia_cmd "$1") snapshot create --no-progress $src"; }
kopia_restore() {
  # Kopia keeps one snapshot per source: restore both, as the other tools do in one command.
  local cmd="true" s id
  for s in "${SRC[@]}"; do
    id=$(bash -c "$(kopia_cmd "$1") snapshot list '$s' --json" | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
    cmd="$cmd && $(kopia_cmd "$1") snapshot restore --no-progress $id '$2/$(basename "$s")'"
  done
  echo "$cmd"
}
kopia_verify() { echo "$(kopia_cmd "$1") snapshot verify --verify-files-percent=100"; }

# counts PATH...: "<files> <bytes>" of the regular files under PATH.
counts() {
  echo "$(find "$@" -type f | wc -l) $(find "$@" -type f -print0 | xargs -0 stat -c %s | awk '{s+=$1} END {printf "%.0f", s}')"
}

run_tool() { # TOOL REP DIR
  local t=$1 rep=$2 d=$3 want=""
  "${t}_init" "$d"
  for level in full unchanged changed; do
    if [ "$level" = changed ]; then
      python3 "$here/dataset.py" mutate "$data" "$data/db.pages" "$save" >/dev/null
      # What every restore of the newest run must bring back.
      want=$(counts "${SRC[@]}")
    fi
    prepare "${SRC[@]}"
    step "$t" "$level" "$rep" bash -c "$("${t}_backup" "$d" "$level")"
    if [ "$level" = changed ]; then python3 "$here/dataset.py" revert "$data" "$data/db.pages" "$save"; rm -rf "$save"; fi
  done
  printf '%s\tsize\t%s\t%s\t0\t0\n' "$t" "$rep" "$(du -sb "$d/repo" | cut -f1)" >> "$results"
  for where in tmpfs disk; do
    local out
    if [ "$where" = tmpfs ]; then [ -n "$tmpfs_target" ] || continue; out="$tmpfs_target/out"; else out="$disk_target/out"; fi
    rm -rf "$out"; mkdir -p "$out"
    prepare "$d/repo"
    step "$t" "restore-$where" "$rep" bash -c "$("${t}_restore" "$d" "$out")"
    # A restore that wrote less than the source is a failed run, however fast.
    local got
    got=$(counts "$out")
    if [ "$got" != "$want" ]; then
      echo "FAILED: $t restored $got (files bytes), the newest run holds $want" >&2
      exit 1
    fi
    rm -rf "$out"
  done
  prepare "$d/repo"
  step "$t" verify "$rep" bash -c "$("${t}_verify" "$d")"
}

n=${#tools[@]}
for rep in $(seq 1 "$REPS"); do
  echo "repetition $rep of $REPS (${tools[*]})"
  for i in $(seq 0 $((n - 1))); do
    tool=${tools[$(( (i + rep - 1) % n ))]}
    d="$BENCH/$tool"
    rm -rf "$d"; mkdir -p "$d"
    run_tool "$tool" "$rep" "$d"
    rm -rf "$d"
  done
done

echo "physical limits…"
limits="$BENCH/limits.tsv"
: > "$limits"
limit() { # NAME CMD
  local name=$1
  shift
  /usr/bin/time -f "%e" -o "$timing" sh -c "$*" >/dev/null 2>&1
  printf '%s\t%s\n' "$name" "$(tail -1 "$timing")" >> "$limits"
}
all_files="find '$data/linux-source-6.1' '$data/db.pages' -type f -print0 | xargs -0 cat"
prepare "${SRC[@]}"; limit read "$all_files > /dev/null"
prepare "${SRC[@]}"; limit sha256 "$all_files | openssl dgst -sha256"
prepare "${SRC[@]}"; limit zstd1 "$all_files | zstd -1 -T1 -c > /dev/null"
# Writing the restored files is the floor under every restore: `cp -a` of the source tree
# onto the same filesystem, with the same preparation as a restore step.
for _ in 1 2 3; do
  for where in tmpfs disk; do
    if [ "$where" = tmpfs ]; then [ -n "$tmpfs_target" ] || continue; out="$tmpfs_target/out"; else out="$disk_target/out"; fi
    rm -rf "$out"; mkdir -p "$out"
    prepare "${SRC[@]}"
    limit "write-$where" "cp -a '$data/linux-source-6.1' '$data/db.pages' '$out'"
    rm -rf "$out"
  done
done

versions="$BENCH/versions.tsv"
{
  printf 'holdfast\t%s\n' "$("$HF" --version)"
  printf 'restic\t%s\n' "$(restic version | head -1)"
  printf 'borg\t%s\n' "$(borg --version)"
  [[ " ${tools[*]} " == *" rustic "* ]] && printf 'rustic\t%s\n' "$("$RUSTIC" --version)"
  [[ " ${tools[*]} " == *" kopia "* ]] && printf 'kopia\t%s\n' "kopia $("$KOPIA" --version | awk '{print $1; exit}')"
} > "$versions"
python3 "$here/report.py" --results "$results" --limits "$limits" --versions "$versions" \
  --notes "$notes" --bytes "$src_bytes" --files "$src_files" --disk-fs "$disk_fs" \
  --dropped-caches "$can_drop" --controller-scale "${CONTROLLER_SCALE:-$here/controller-scale.json}" \
  > "${RESULTS:-$here/RESULTS.md}"
echo "wrote ${RESULTS:-bench/RESULTS.md}"
