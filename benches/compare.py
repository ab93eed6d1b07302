#!/usr/bin/env python3
"""The thumbnail workload through four tools, in one run: each JPEG in IN_DIR to a 512 px JPEG
at quality 85 with metadata stripped. Prints CPU seconds (user + system of the tool's
processes), images per CPU-second ("per core") and the ratio to vipsthumbnail, for the
baseline and the progressive photos apart and together; then each tool's output bytes and
median PSNR against a float reference (the full decode resized by Pillow's Lanczos).

Each tool runs in its natural batch form, single-threaded: vipsthumbnail and ImageMagick's
mogrify take all files in one process; Pillow runs in one Python process (draft mode, then
LANCZOS); midnit-worker runs one `render` process per file (the in-process pipeline; the worker
itself renders each job in a fresh process too). Called by benches/compare.sh.
"""

import json
import math
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time

from PIL import Image, ImageChops

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


def midnit(out, binary=None):
    binary = binary or MIDNIT
    runs = []
    for p in photos:
        request = out / f"{p.stem}.json"
        request.write_text(json.dumps({
            "v": 1,
            "inputs": {"photo": str(p.resolve())},
            "outputs": [{"name": p.stem, "format": "jpeg", "width": 512, "height": 512,
                         "fit": "contain", "quality": 85}],
        }))
        runs.append([binary, "render", str(request), "--out", str(out)])
    return runs


TOOLS = [("vipsthumbnail", vips), ("ImageMagick mogrify", magick),
         ("Pillow (draft)", pillow), ("midnit-worker render", midnit)]
# BEFORE=path/to/an/older/midnit-worker adds it to the same run, for before/after tables.
if os.environ.get("BEFORE"):
    TOOLS.append(("midnit-worker before", lambda out: midnit(out, os.environ["BEFORE"])))


def measure(commands):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    for cmd in commands:
        subprocess.run(cmd, check=True, env=single, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def progressive(path):
    with Image.open(path) as im:
        return bool(im.info.get("progressive") or im.info.get("progression"))


def psnr(out_path, src_path):
    """PSNR (RGB) of an output against the float reference: the full decode resized with
    Pillow's Lanczos to the output's size."""
    with Image.open(out_path) as out, Image.open(src_path) as src:
        ref = src.convert("RGB").resize(out.size, Image.LANCZOS, reducing_gap=None)
        diff = ImageChops.difference(out.convert("RGB"), ref)
        hist = diff.histogram()
        sq = sum(count * (i % 256) ** 2 for i, count in enumerate(hist))
        mse = sq / (3 * out.size[0] * out.size[1])
        return 99.0 if mse == 0 else 10 * math.log10(255 ** 2 / mse)


groups = {"baseline": [p for p in photos if not progressive(p)],
          "progressive": [p for p in photos if progressive(p)]}
groups = {k: v for k, v in groups.items() if v}
results = {}
for name, build in TOOLS:
    out = OUT_DIR / name.replace(" ", "-").lower()
    out.mkdir(parents=True, exist_ok=True)
    for group, members in groups.items():
        photos = members
        commands = build(out)
        cpus, walls = [], []
        for _ in range(ROUNDS):
            cpu, wall = measure(commands)
            cpus.append(cpu)
            walls.append(wall)
        results[(name, group)] = (statistics.median(cpus), statistics.median(walls), len(members))
    photos = sorted(IN_DIR.glob("photo-*.jpg"))
    sizes, scores = [], []
    for p in photos:
        o = next(f for f in out.glob(p.stem + ".*") if f.suffix != ".json")
        sizes.append(o.stat().st_size)
        scores.append(psnr(o, p))
    results[(name, "output")] = (sum(sizes), statistics.median(scores))

n = len(photos)
print(f"{n} photos ({', '.join(f'{len(v)} {k}' for k, v in groups.items())}) -> 512 px JPEG q85, "
      f"stripped; CPU medians of {ROUNDS} rounds; PSNR against Pillow Lanczos from the full decode")
print(f"{'tool':<24}{'set':<13}{'CPU s':>7}{'CPU ms/img':>11}{'img/CPU-s':>10}{'vs vips':>9}")
for group in list(groups) + ["all"]:
    def cpu_of(name):
        if group == "all":
            return sum(results[(name, g)][0] for g in groups), n
        c, _, k = results[(name, group)]
        return c, k
    base_cpu, k = cpu_of("vipsthumbnail")
    for name, _ in TOOLS:
        cpu, k = cpu_of(name)
        rate = k / cpu
        print(f"{name:<24}{group:<13}{cpu:>7.2f}{1000 * cpu / k:>11.1f}{rate:>10.2f}"
              f"{rate / (k / base_cpu):>8.2f}x")
print(f"{'tool':<24}{'output KiB':>11}{'vs vips':>9}{'median PSNR dB':>16}")
base_bytes = results[("vipsthumbnail", "output")][0]
for name, _ in TOOLS:
    size, score = results[(name, "output")]
    print(f"{name:<24}{size / 1024:>11.1f}{size / base_bytes:>8.2f}x{score:>16.2f}")
