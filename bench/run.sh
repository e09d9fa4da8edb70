#!/usr/bin/env bash
# Holdfast vs restic vs borg on the same data, in one run. Usage:
#   bash bench/run.sh            (REPS=3 BENCH_DIR=/tmp/holdfast-bench by default)
# Steps per tool, each on a fresh repository: full backup, unchanged incremental,
# incremental after changing 1% of files and 2% of the page file's pages, restore of the
# newest run, deep verify/check. Tools run in a rotating order in every repetition so no
# tool always goes first (or last) with a warm or cold page cache. Writes bench/RESULTS.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
BENCH="${BENCH_DIR:-/tmp/holdfast-bench}"
REPS="${REPS:-3}"
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

echo "building holdfast (release)…"
(cd "$root" && cargo build --release --locked --quiet -p holdfast)
HF="$root/target/release/holdfast"

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

# Restores write into RAM when possible: this benchmark measures the tools, and on a VM
# disk creating 80,000 files costs seconds of kernel time that varies from run to run.
target="$BENCH/target"
mkdir -p "$target"
if ! mountpoint -q "$target"; then
  mount -t tmpfs -o size=8g tmpfs "$target" 2>/dev/null || echo "note: restoring to disk (cannot mount a tmpfs)"
fi
restore_where=$(mountpoint -q "$target" && echo "tmpfs" || echo "disk")

results="$BENCH/results.tsv"
: > "$results"
timing="$BENCH/timing.txt"
log="$BENCH/step.log"

# step TOOL STEP REP CMD...: time one command (wall, user+sys, peak RSS).
step() {
  local tool=$1 name=$2 rep=$3
  shift 3
  sync
  if ! /usr/bin/time -f "%e %U %S %M" -o "$timing" "$@" >"$log" 2>&1; then
    echo "FAILED: $tool $name: $*" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  read -r wall user sys rss < <(tail -1 "$timing")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$name" "$rep" "$wall" "$(python3 -c "print(round($user+$sys, 2))")" "$rss" >> "$results"
  printf '  %-8s %-10s %7ss  cpu %7ss  rss %6d MiB\n' "$tool" "$name" "$wall" "$(python3 -c "print(round($user+$sys, 2))")" "$((rss / 1024))"
}

size() { # TOOL REP REPO
  printf '%s\tsize\t%s\t%s\t0\t0\n' "$1" "$2" "$(du -sb "$3" | cut -f1)" >> "$results"
}

export HOLDFAST_PASSPHRASE="benchmark passphrase" RESTIC_PASSWORD="benchmark passphrase" BORG_PASSPHRASE="benchmark passphrase"
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

run_holdfast() { # REP DIR
  local rep=$1 d=$2 r="$2/repo"
  export HOLDFAST_REPO="$r"
  "$HF" init --quiet
  step holdfast full "$rep" "$HF" backup --quiet --no-progress "${SRC[@]}"
  step holdfast unchanged "$rep" "$HF" backup --quiet --no-progress --level incr "${SRC[@]}"
  python3 "$here/dataset.py" mutate "$data" "$data/db.pages" "$save" >/dev/null
  step holdfast changed "$rep" "$HF" backup --quiet --no-progress --level incr "${SRC[@]}"
  python3 "$here/dataset.py" revert "$data" "$data/db.pages" "$save"; rm -rf "$save"
  size holdfast "$rep" "$r"
  step holdfast restore "$rep" "$HF" restore --quiet --no-progress --target "$target/out"
  rm -rf "$target/out"
  step holdfast verify "$rep" "$HF" verify --quiet --no-progress --deep
}

run_restic() {
  local rep=$1 d=$2 r="$2/repo"
  restic init -q -r "$r"
  step restic full "$rep" restic -r "$r" backup -q "${SRC[@]}"
  step restic unchanged "$rep" restic -r "$r" backup -q "${SRC[@]}"
  python3 "$here/dataset.py" mutate "$data" "$data/db.pages" "$save" >/dev/null
  step restic changed "$rep" restic -r "$r" backup -q "${SRC[@]}"
  python3 "$here/dataset.py" revert "$data" "$data/db.pages" "$save"; rm -rf "$save"
  size restic "$rep" "$r"
  step restic restore "$rep" restic -r "$r" restore -q latest --target "$target/out"
  rm -rf "$target/out"
  step restic verify "$rep" restic -r "$r" check -q --read-data
}

run_borg() {
  local rep=$1 d=$2 r="$2/repo"
  borg init --encryption repokey "$r"
  # zstd level 3, the level Holdfast and restic use by default, so sizes compare.
  step borg full "$rep" borg create --compression zstd,3 "$r::full" "${SRC[@]}"
  step borg unchanged "$rep" borg create --compression zstd,3 "$r::unchanged" "${SRC[@]}"
  python3 "$here/dataset.py" mutate "$data" "$data/db.pages" "$save" >/dev/null
  step borg changed "$rep" borg create --compression zstd,3 "$r::changed" "${SRC[@]}"
  python3 "$here/dataset.py" revert "$data" "$data/db.pages" "$save"; rm -rf "$save"
  size borg "$rep" "$r"
  mkdir -p "$target/out"
  step borg restore "$rep" sh -c "cd '$target/out' && borg extract '$r::changed'"
  rm -rf "$target/out"
  step borg verify "$rep" borg check --verify-data "$r"
}

# Every tool starts the same way: previous repositories gone and flushed, the data read
# once into the page cache, the machine idle for a moment.
settle() {
  sync
  find "${SRC[@]}" -type f -print0 | xargs -0 cat > /dev/null
  sleep 5
}

tools=(holdfast restic borg)
for rep in $(seq 1 "$REPS"); do
  echo "repetition $rep of $REPS"
  for i in 0 1 2; do
    tool=${tools[$(( (i + rep - 1) % 3 ))]}
    d="$BENCH/$tool"
    rm -rf "$d"; mkdir -p "$d"
    settle
    "run_$tool" "$rep" "$d"
    rm -rf "$d"
  done
done

echo "physical limits…"
limits="$BENCH/limits.tsv"
: > "$limits"
limit() { # NAME CMD
  local name=$1
  shift
  sync
  /usr/bin/time -f "%e" -o "$timing" sh -c "$*" >/dev/null 2>&1
  printf '%s\t%s\n' "$name" "$(tail -1 "$timing")" >> "$limits"
}
all_files="find '$data/linux-source-6.1' '$data/db.pages' -type f -print0 | xargs -0 cat"
limit read "$all_files > /dev/null"
limit sha256 "$all_files | openssl dgst -sha256"
limit zstd1 "$all_files | zstd -1 -T1 -c > /dev/null"
# Writing the restored bytes is the floor under every restore: in a VM each fresh page of the
# target costs the kernel (and the host) far more than the copy itself.
for _ in 1 2 3; do
  rm -rf "$target/out"; mkdir -p "$target/out"
  limit write "cp -r '$data/linux-source-6.1' '$data/db.pages' '$target/out'"
done
rm -rf "$target/out"
bytes=$(find "${SRC[@]}" -type f -print0 | xargs -0 stat -c %s | awk '{s+=$1} END {printf "%d", s}')
files=$(find "${SRC[@]}" -type f | wc -l)

python3 "$here/report.py" "$results" "$limits" "$bytes" "$files" "$restore_where" \
  "$("$HF" --version)" "$(restic version | head -1)" "$(borg --version)" > "$here/RESULTS.md"
echo "wrote bench/RESULTS.md"
