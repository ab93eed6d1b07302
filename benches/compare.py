#!/usr/bin/env python3
"""The thumbnail workload through four tools, in one run: each 12 MP JPEG in IN_DIR to a 512 px
JPEG at quality 85 with metadata stripped. Prints CPU seconds (user + system of the tool's
processes), images per CPU-second ("per core") and the ratio to vipsthumbnail.

Each tool runs in its natural batch form, single-threaded: vipsthumbnail and ImageMagick's
mogrify take all files in one process; Pillow runs in one Python process (draft mode, then
LANCZOS); midnit-worker runs one `render` process per file (the in-process pipeline; the worker
itself renders each job in a fresh process too). Called by benches/compare.sh.
"""

import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time

IN_DIR, OUT_DIR, MIDNIT, ROUNDS = (
    pathlib.Path(sys.argv[1]),
    pathlib.Path(sys.argv[2]).resolve(),
    sys.argv[3],
    int(sys.argv[4]),
)
photos = sorted(IN_DIR.glob("photo-*.jpg"))
single = dict(os.environ, VIPS_CONCURRENCY="1", MAGICK_THREAD_LIMIT="1", OMP_NUM_THREADS="1")

PILLOW = """
import sys
from PIL import Image
out = sys.argv[1]
for path in sys.argv[2:]:
    im = Image.open(path)
    im.draft("RGB", (512, 512))
    im.thumbnail((512, 512), Image.LANCZOS)
    im.save(f"{out}/{path.rsplit('/', 1)[-1]}", "JPEG", quality=85)
"""


def vips(out):
    return [["vipsthumbnail", *map(str, photos), "--size", "512",
             "-o", f"{out}/%s.jpg[Q=85,strip]"]]


def magick(out):
    return [["mogrify", "-path", str(out), "-thumbnail", "512x512", "-quality", "85",
             "-strip", *map(str, photos)]]


def pillow(out):
    return [[sys.executable, "-c", PILLOW, str(out), *map(str, photos)]]


def midnit(out):
    runs = []
    for p in photos:
        request = out / f"{p.stem}.json"
        request.write_text(json.dumps({
            "v": 1,
            "inputs": {"photo": str(p.resolve())},
            "outputs": [{"name": p.stem, "format": "jpeg", "width": 512, "height": 512,
                         "fit": "contain", "quality": 85}],
        }))
        runs.append([MIDNIT, "render", str(request), "--out", str(out)])
    return runs


TOOLS = [("vipsthumbnail", vips), ("ImageMagick mogrify", magick),
         ("Pillow (draft)", pillow), ("midnit-worker render", midnit)]


def measure(commands):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    for cmd in commands:
        subprocess.run(cmd, check=True, env=single, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


results = {}
for name, build in TOOLS:
    out = OUT_DIR / name.split()[0].lower()
    out.mkdir(parents=True, exist_ok=True)
    commands = build(out)
    cpus, walls = [], []
    for _ in range(ROUNDS):
        cpu, wall = measure(commands)
        cpus.append(cpu)
        walls.append(wall)
    results[name] = (statistics.median(cpus), statistics.median(walls))

n = len(photos)
base = n / results["vipsthumbnail"][0]
print(f"{n} photos (4000x3000 JPEG q90) -> 512 px JPEG q85, stripped; medians of {ROUNDS} rounds")
print(f"{'tool':<24}{'CPU s':>8}{'CPU s/img':>11}{'img/CPU-s':>11}{'vs vips':>9}{'wall s':>9}")
for name, (cpu, wall) in results.items():
    rate = n / cpu
    print(f"{name:<24}{cpu:>8.2f}{cpu / n:>11.3f}{rate:>11.2f}{rate / base:>8.2f}x{wall:>9.2f}")
