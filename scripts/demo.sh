#!/usr/bin/env bash
# The main job on the embedded default: back up a sample directory to a local filesystem
# repository, list the runs, restore, verify deeply, and prove the restore is exact.
# No cluster, no cloud. Usage: bash scripts/demo.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-$(mktemp -d /tmp/holdfast-demo.XXXXXX)}"
mkdir -p "$work"
echo "== building holdfast (release; a first build takes several minutes on 2 cores)"
cargo build --release --locked -p holdfast
hf="$(bash scripts/target-dir.sh)/release/holdfast"

export HOLDFAST_REPO="file://$work/repo"
export HOLDFAST_PASSPHRASE="demo passphrase - use a key file in real life"

echo "== sample data in $work/data"
rm -rf "$work/data" "$work/restored" "$work/repo"
mkdir -p "$work/data/docs" "$work/data/empty"
cp -r "$PWD/engine/src" "$work/data/docs/engine-src"
head -c 20000000 /dev/urandom > "$work/data/random.bin"
printf 'hello\n' > "$work/data/hello.txt"
ln -s hello.txt "$work/data/link-to-hello"
ln "$work/data/hello.txt" "$work/data/docs/hard-link"
truncate -s 1G "$work/data/sparse.img" && printf 'tail' >> "$work/data/sparse.img"

echo "== holdfast init"
"$hf" init
echo "== holdfast backup (full)"
"$hf" backup "$work/data"
echo "change" >> "$work/data/hello.txt"
echo "== holdfast backup --level incr"
"$hf" backup --level incr "$work/data"
echo "== holdfast runs"
"$hf" runs
echo "== holdfast restore --target $work/restored"
"$hf" restore --target "$work/restored"
echo "== holdfast verify --deep"
"$hf" verify --deep
echo "== compare"
diff -r --no-dereference "$work/data" "$work/restored"
echo "restored tree is identical to the source ($(du -sh --apparent-size "$work/restored" | cut -f1) logical, $(du -sh "$work/repo" | cut -f1) in the repository)"
