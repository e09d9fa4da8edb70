#!/usr/bin/env bash
# Where users run Holdfast and the defects issue found it slow: restores from S3, and deep
# trees of small files. Holdfast (HF, and optionally a second build HF_BASE to compare
# against) and restic on the same data in one run, each step after sync, a dropped page
# cache and one read of its input. Usage (as root):
#   bash bench/focus.sh                      # REPS=3
#   HF_BASE=/path/to/older/holdfast bash bench/focus.sh
# Needs SeaweedFS's `weed` (WEED=path; built from its Go module inside the module, since it
# has replace directives: see README.md, Benchmarks) for the S3 steps; without it they are
# skipped and say so. Writes bench/RESULTS-focus.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
BENCH="${BENCH_DIR:-/tmp/holdfast-focus}"
REPS="${REPS:-3}"
WEED="${WEED:-$(command -v weed || true)}"
mkdir -p "$BENCH"

need=()
command -v restic >/dev/null || need+=(restic)
[ -x /usr/bin/time ] || need+=(time)
[ -f /usr/src/linux-source-6.1.tar.xz ] || need+=(linux-source-6.1)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from Debian…"
  (apt-get install -y "${need[@]}" >/dev/null 2>&1) || (apt-get update >/dev/null && apt-get install -y "${need[@]}" >/dev/null)
fi
if [ -z "${HF:-}" ]; then
  echo "building holdfast (release)…"
  (cd "$root" && cargo build --release --locked --quiet -p holdfast)
  HF="$root/target/release/holdfast"
fi
builds=(holdfast)
[ -n "${HF_BASE:-}" ] && builds+=(baseline)
tools=("${builds[@]}" restic)

data="$BENCH/data"
mkdir -p "$data"
[ -d "$data/linux-source-6.1" ] || tar xf /usr/src/linux-source-6.1.tar.xz -C "$data"
[ -f "$data/db.pages" ] || python3 "$here/dataset.py" pages "$data/db.pages" 1024
# The defects issue's small-file tree: 200,000 files of 0.5-8 KiB in 36,000 directories.
[ -d "$data/small" ] || python3 "$here/dataset.py" smallfiles "$data/small" 200000 36000 512 8192
BIG=("$data/linux-source-6.1" "$data/db.pages")
SMALL=("$data/small")
target="$BENCH/target"
mkdir -p "$target"
[ "$(findmnt -n -o FSTYPE -T "$target")" != tmpfs ] || { echo "$target is on tmpfs: set BENCH_DIR to a disk" >&2; exit 2; }

results="$BENCH/results.tsv"
: > "$results"
timing="$BENCH/timing.txt"
log="$BENCH/step.log"
prepare() {
  sync
  echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  find "$@" -type f -print0 | xargs -0 cat > /dev/null
  sleep 1
}
# step TOOL STEP REP CMD: time one command (wall, cpu, peak RSS), and S3 requests if any.
step() {
  local tool=$1 name=$2 rep=$3
  shift 3
  local before=0
  [ -n "${S3_METRICS:-}" ] && before=$(s3_requests)
  if ! /usr/bin/time -f "%e %U %S %M" -o "$timing" "$@" >"$log" 2>&1; then
    echo "FAILED: $tool $name: $*" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  local requests=0
  [ -n "${S3_METRICS:-}" ] && requests=$(( $(s3_requests) - before ))
  read -r wall user sys rss < <(tail -1 "$timing")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$name" "$rep" "$wall" \
    "$(python3 -c "print(round($user+$sys, 2))")" "$rss" "$requests" >> "$results"
  printf '  %-9s %-18s %7ss  rss %6d MiB  requests %s\n' "$tool" "$name" "$wall" "$((rss / 1024))" "$requests"
}
counts() { echo "$(find "$@" -type f | wc -l) $(find "$@" -type f -print0 | xargs -0 stat -c %s | awk '{s+=$1} END {printf "%.0f", s}')"; }
check_restore() { # WANT OUT
  local got
  got=$(counts "$2")
  [ "$got" = "$1" ] || { echo "FAILED: restored $got (files bytes), want $1" >&2; exit 1; }
}

export HOLDFAST_PASSPHRASE="benchmark passphrase" RESTIC_PASSWORD="benchmark passphrase"
bin_of() { if [ "$1" = baseline ]; then echo "$HF_BASE"; else echo "$HF"; fi; }

# S3: SeaweedFS on loopback, its data on disk; requests counted from its metrics.
s3_requests() {
  curl -s "$S3_METRICS" | awk '/^SeaweedFS_s3_request_total/ {s+=$NF} END {printf "%.0f", s}'
}
weed_pid=""
stop_weed() { [ -n "$weed_pid" ] && kill "$weed_pid" 2>/dev/null && wait "$weed_pid" 2>/dev/null; true; }
trap stop_weed EXIT
if [ -n "$WEED" ]; then
  wdir="$BENCH/seaweedfs"
  rm -rf "$wdir"; mkdir -p "$wdir"
  cat > "$wdir/s3.json" <<'JSON'
{"identities": [{"name": "bench", "credentials": [{"accessKey": "bench", "secretKey": "bench-secret"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
  "$WEED" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$wdir" -s3 -s3.port=18333 \
    -s3.config="$wdir/s3.json" -master.port=19333 -volume.port=18080 -filer.port=18888 \
    -metricsPort=19324 -volume.max=0 -master.volumeSizeLimitMB=1024 > "$wdir/weed.log" 2>&1 &
  weed_pid=$!
  for _ in $(seq 1 120); do curl -s -o /dev/null http://127.0.0.1:18333 && break; sleep 0.5; done
  curl -s -o /dev/null http://127.0.0.1:18333 || {
    echo "SeaweedFS did not start (a port in use?): $wdir/weed.log says" >&2
    grep -m3 '^F' "$wdir/weed.log" >&2
    exit 1
  }
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret
  S3_METRICS=http://127.0.0.1:19324/metrics
  s3_requests >/dev/null || { echo "no SeaweedFS metrics" >&2; S3_METRICS=""; }
else
  echo "note: no SeaweedFS (set WEED): the S3 steps are skipped"
fi
s3="http://127.0.0.1:18333"
bucket_n=0
bucket=""
new_bucket() { # sets $bucket to a new, empty bucket
  bucket_n=$((bucket_n + 1))
  bucket="bench-$bucket_n"
  echo "s3.bucket.create -name $bucket" | "$WEED" shell -master=127.0.0.1:19333 >/dev/null 2>&1
}

# tool_cmd TOOL WHAT REPO CACHE [ARG...]: sets cmd to TOOL's command line for WHAT (init,
# full, unchanged: a backup of the ARG paths, restore: into the ARG directory) on REPO (a
# directory, or the tool's URL of an S3 repository); CACHE is restic's cache directory.
tool_cmd() {
  local t=$1 what=$2 repo=$3 cache=$4
  shift 4
  if [ "$t" = restic ]; then
    local r=(restic -r "$repo" --cache-dir "$cache")
    case $what in
      init) cmd=("${r[@]}" init -q);;
      full|unchanged) cmd=("${r[@]}" backup -q "$@");;
      restore) cmd=("${r[@]}" restore -q latest --target "$1");;
    esac
  else
    local h=("$(bin_of "$t")" --repo "$repo")
    case $what in
      init) cmd=("${h[@]}" init --quiet);;
      full) cmd=("${h[@]}" backup --quiet --no-progress "$@");;
      unchanged) cmd=("${h[@]}" backup --quiet --no-progress --level incr "$@");;
      restore) cmd=("${h[@]}" restore --quiet --no-progress --target "$1");;
    esac
  fi
}

# measure TOOL REP NAME REPO CACHE LEVELS STORED INPUT...: a new repository at REPO, a
# backup of INPUT at each of LEVELS (space-separated), then a restore checked against INPUT,
# each step timed as NAME-<level> and NAME-restore; STORED is where the repository's bytes
# lie on disk (read once before the restore, as the input is before a backup).
measure() {
  local t=$1 rep=$2 name=$3 repo=$4 cache=$5 levels=$6 stored=$7 want level
  shift 7
  want=$(counts "$@")
  tool_cmd "$t" init "$repo" "$cache"
  "${cmd[@]}"
  for level in $levels; do
    prepare "$@"
    tool_cmd "$t" "$level" "$repo" "$cache" "$@"
    step "$t" "$name-$level" "$rep" "${cmd[@]}"
  done
  rm -rf "$target/out"; mkdir -p "$target/out"
  prepare "$stored"
  tool_cmd "$t" restore "$repo" "$cache" "$target/out"
  step "$t" "$name-restore" "$rep" "${cmd[@]}"
  check_restore "$want" "$target/out"
  rm -rf "$target/out"
}

run_small() { # TOOL REP
  local d="$BENCH/small-$1"
  rm -rf "$d"; mkdir -p "$d"
  measure "$1" "$2" small "$d/repo" "$d/cache" "full unchanged" "$d/repo" "${SMALL[@]}"
  rm -rf "$d"
}

run_s3() { # TOOL REP
  local d="$BENCH/s3-$1" repo
  new_bucket
  rm -rf "$d"; mkdir -p "$d"
  if [ "$1" = restic ]; then
    repo="s3:$s3/$bucket/repo"
  else
    repo="s3://$bucket/repo?endpoint=$s3&path_style=true&region=us-east-1"
  fi
  # The repository is on the server's disk: the server reads it after a dropped cache too.
  measure "$1" "$2" s3 "$repo" "$d/cache" full "$BENCH/seaweedfs" "${BIG[@]}"
  rm -rf "$d"
  # Each bucket holds volumes of its own on the server: free them for the next one.
  echo "s3.bucket.delete -name $bucket" | "$WEED" shell -master=127.0.0.1:19333 >/dev/null 2>&1
}

for rep in $(seq 1 "$REPS"); do
  echo "repetition $rep of $REPS (${tools[*]})"
  n=${#tools[@]}
  for i in $(seq 0 $((n - 1))); do
    t=${tools[$(( (i + rep - 1) % n ))]}
    run_small "$t" "$rep"
    if [ -n "$WEED" ]; then run_s3 "$t" "$rep"; fi
  done
done

python3 "$here/focus_report.py" "$results" "$here/RESULTS-focus.md" "${tools[@]}"
