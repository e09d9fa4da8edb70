#!/usr/bin/env python3
"""Reproducible benchmark data: a database-like page file, and the 1% / 2% mutation applied
between the unchanged and the changed incremental (and reverted afterwards).

  dataset.py pages PATH SIZE_MIB          write the page file (half random, half compressible)
  dataset.py mutate DATA_DIR PAGEFILE SAVE_DIR   change 1% of files and 2% of pages
  dataset.py revert DATA_DIR PAGEFILE SAVE_DIR   undo exactly that
  dataset.py smallfiles DIR FILES DIRS MIN MAX   a deep tree of FILES small files (MIN..MAX
                                                 bytes, half compressible) in DIRS directories
"""
import json
import os
import random
import sys

PAGE = 8192


def page(i, generation=0):
    rng = random.Random(i * 7919 + generation * 104729)
    if i % 2 == 0:
        return rng.randbytes(PAGE)
    # Compressible: rows of text with a little variation, like a table page.
    rows = []
    size = 0
    n = 0
    while size < PAGE:
        row = f"row {i:09d}-{n:04d} customer={rng.randrange(100000):06d} status=active amount={rng.randrange(10**6)/100:.2f}\n"
        rows.append(row)
        size += len(row)
        n += 1
    return "".join(rows).encode()[:PAGE]


def write_pages(path, size_mib):
    count = size_mib * 1024 * 1024 // PAGE
    with open(path, "wb") as f:
        for i in range(count):
            f.write(page(i))


def files_of(data_dir):
    out = []
    for root, dirs, files in os.walk(data_dir):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(root, name)
            if os.path.isfile(p) and not os.path.islink(p):
                out.append(p)
    return out


def mutate(data_dir, pagefile, save_dir):
    os.makedirs(save_dir, exist_ok=True)
    files = [f for f in files_of(data_dir) if os.path.abspath(f) != os.path.abspath(pagefile)]
    chosen = files[::100]  # 1% of the files
    saved = {}
    for n, f in enumerate(chosen):
        with open(f, "rb") as fh:
            original = fh.read()
        keep = os.path.join(save_dir, f"file-{n}")
        with open(keep, "wb") as out:
            out.write(original)
        st = os.stat(f)
        saved[f] = [keep, st.st_atime_ns, st.st_mtime_ns]
        with open(f, "ab") as fh:
            fh.write(b"\n/* changed by the holdfast benchmark */\n")
    count = os.path.getsize(pagefile) // PAGE
    pages = list(range(0, count, 50))  # 2% of the pages
    with open(pagefile, "r+b") as fh:
        originals = []
        for i in pages:
            fh.seek(i * PAGE)
            originals.append(fh.read(PAGE))
            fh.seek(i * PAGE)
            fh.write(page(i, generation=1))
    with open(os.path.join(save_dir, "pages.bin"), "wb") as out:
        out.write(b"".join(originals))
    st = os.stat(pagefile)
    json.dump({"files": saved, "pages": pages, "pagefile_times": [st.st_atime_ns, st.st_mtime_ns]},
              open(os.path.join(save_dir, "state.json"), "w"))
    print(f"changed {len(chosen)} of {len(files)} files and {len(pages)} of {count} pages")


def revert(data_dir, pagefile, save_dir):
    state = json.load(open(os.path.join(save_dir, "state.json")))
    for f, (keep, atime, mtime) in state["files"].items():
        with open(keep, "rb") as src, open(f, "wb") as dst:
            dst.write(src.read())
        os.utime(f, ns=(atime, mtime))
    with open(os.path.join(save_dir, "pages.bin"), "rb") as src, open(pagefile, "r+b") as fh:
        for i in state["pages"]:
            fh.seek(i * PAGE)
            fh.write(src.read(PAGE))


def small_files(root, files, dirs, low, high):
    """A deterministic deep tree: directory i hangs under directory (i - 1) // 6, so the
    tree is about log6(DIRS) levels deep; files are dealt round-robin over the directories."""
    rng = random.Random(20261202)
    paths = [root]
    os.makedirs(root, exist_ok=True)
    for i in range(1, dirs):
        p = os.path.join(paths[(i - 1) // 6], f"d{i:05d}")
        os.mkdir(p)
        paths.append(p)
    text = b"lorem ipsum dolor sit amet, consectetur adipiscing elit; " * 200
    for n in range(files):
        size = rng.randint(low, high)
        if n % 2:
            body = rng.randbytes(size)
        else:
            start = rng.randrange(len(text) - high)
            body = text[start:start + size]
        with open(os.path.join(paths[n % dirs], f"f{n:06d}.dat"), "wb") as f:
            f.write(body)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "pages":
        write_pages(sys.argv[2], int(sys.argv[3]))
    elif cmd == "mutate":
        mutate(*sys.argv[2:5])
    elif cmd == "revert":
        revert(*sys.argv[2:5])
    elif cmd == "smallfiles":
        small_files(sys.argv[2], *map(int, sys.argv[3:7]))
    else:
        sys.exit(__doc__)
