#!/usr/bin/env python3
"""Bytes at equal quality, this worker against libvips, on real camera photos.

For each photo, both tools make a 512 px wide thumbnail as a lossless PNG (the reference)
and as JPEG, WebP and AVIF at a sweep of qualities. Each lossy file is scored with
butteraugli (Debian's `butteraugli`; lower is better) against *its own tool's* PNG, so
the score measures the encoder, not the resizer. For each target distance the bytes are
interpolated (log bytes, linear in distance) on each tool's curve; the table gives the median
over the photos of ours / libvips at that distance.

Then the CPU per output of each encoder at its default settings (the process's CPU time for
one output, less that of the same render to a 16 px PNG), and the CPU of decoding a 12 MP
HEIC.

    python3 benches/formats.py PHOTO_DIR WORK_DIR BIN
"""

import json
import math
import os
import resource
import statistics
import subprocess
import sys

WIDTH = 512
QUALITIES = {
    "jpeg": [50, 60, 70, 75, 80, 85, 90, 95],
    "webp": [40, 50, 60, 70, 80, 85, 90, 95],
    "avif": [30, 40, 50, 60, 70, 80, 90],
}
TARGETS = [3.0, 4.0, 5.0]
VIPS_SUFFIX = {"jpeg": "jpg", "webp": "webp", "avif": "avif"}


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


def cpu_of(cmd, env=None):
    """CPU seconds (user + system) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run(cmd, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def to_png(path, out):
    """A decoded copy for butteraugli (which reads PNG and JPEG only)."""
    if path.endswith(".webp"):
        run(["dwebp", path, "-o", out])
    elif path.endswith(".avif"):
        run(["avifdec", path, out])
    else:
        return path
    return out


def distance(ref, path, work):
    png = to_png(path, os.path.join(work, "score.png"))
    out = run(["butteraugli", ref, png]).stdout.decode().split()
    return float(out[0])


def ours(bin_, photo, work, env):
    """Renders the lossless reference and every quality in one request (one decode)."""
    outputs = [{"name": "ref", "format": "png", "width": WIDTH}]
    for fmt, qs in QUALITIES.items():
        for q in qs:
            outputs.append({"name": f"{fmt}-{q}", "format": fmt, "width": WIDTH, "quality": q})
    req = os.path.join(work, "req.json")
    with open(req, "w") as f:
        json.dump({"v": 1, "inputs": {"photo": os.path.abspath(photo)}, "outputs": outputs}, f)
    out = os.path.join(work, "ours")
    run([bin_, "render", req, "--out", out], env=env)
    files = {o: os.path.join(out, n) for n in os.listdir(out) for o in [n.rsplit(".", 1)[0]]}
    return files


def vips(photo, work):
    files = {}
    ref = os.path.join(work, "vips-ref.png")
    run(["vips", "thumbnail", photo, ref + "[strip]", str(WIDTH), "--height", "100000"])
    files["ref"] = ref
    for fmt, qs in QUALITIES.items():
        for q in qs:
            p = os.path.join(work, f"vips-{fmt}-{q}.{VIPS_SUFFIX[fmt]}")
            opts = f"Q={q},strip"
            if fmt == "avif":
                opts += ",compression=av1"
            run(["vips", "thumbnail", photo, f"{p}[{opts}]", str(WIDTH), "--height", "100000"])
            files[f"{fmt}-{q}"] = p
    return files


def curve(files, fmt, work):
    points = []
    for q in QUALITIES[fmt]:
        p = files[f"{fmt}-{q}"]
        points.append((distance(files["ref"], p, work), os.path.getsize(p)))
    return sorted(points)


def bytes_at(points, target):
    """log(bytes) interpolated at `target` distance; None outside the measured range."""
    for (d0, b0), (d1, b1) in zip(points, points[1:]):
        if d0 <= target <= d1 and d1 > d0:
            t = (target - d0) / (d1 - d0)
            return math.exp(math.log(b0) + t * (math.log(b1) - math.log(b0)))
    return None


def main():
    photos_dir, work, bin_ = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ, MIDNIT_MAX_OUTPUTS="32", MIDNIT_LOG="warn")
    photos = sorted(os.path.join(photos_dir, p) for p in os.listdir(photos_dir))
    ratios = {(f, t): [] for f in QUALITIES for t in TARGETS}
    rows = []
    for photo in photos:
        o, v = ours(bin_, photo, work, env), vips(photo, work)
        row = [os.path.basename(photo)]
        for fmt in QUALITIES:
            co, cv = curve(o, fmt, work), curve(v, fmt, work)
            for t in TARGETS:
                bo, bv = bytes_at(co, t), bytes_at(cv, t)
                if bo and bv:
                    ratios[(fmt, t)].append(bo / bv)
                    row.append(f"{fmt}@{t}: {bo / bv:.2f}")
        rows.append(row)
        print("  ".join(row), flush=True)
    print("\nmedian bytes, ours / libvips, at equal butteraugli distance (photos measured):")
    print("| format | " + " | ".join(f"distance {t}" for t in TARGETS) + " |")
    print("|---|" + "---|" * len(TARGETS))
    for fmt in QUALITIES:
        cells = []
        for t in TARGETS:
            r = ratios[(fmt, t)]
            cells.append(f"{statistics.median(r):.2f} ({len(r)})" if r else "n/a")
        print(f"| {fmt} | " + " | ".join(cells) + " |")

    # CPU per output at the default settings: one output, less a 16 px PNG of the same photo.
    print("\nCPU per output at default settings, 512 px (median over photos, ms):")

    def render_cpu(photo, output):
        req = os.path.join(work, "cpu.json")
        with open(req, "w") as f:
            json.dump({"v": 1, "inputs": {"photo": os.path.abspath(photo)}, "outputs": [output]}, f)
        return min(cpu_of([bin_, "render", req, "--out", os.path.join(work, "cpu")], env) for _ in range(3))

    base = {p: render_cpu(p, {"name": "b", "format": "png", "width": 16}) for p in photos}
    for name, output in [
        ("jpeg (progressive, q85)", {"format": "jpeg"}),
        ("jpeg baseline", {"format": "jpeg", "progressive": False}),
        ("webp lossy (q80)", {"format": "webp"}),
        ("webp lossless", {"format": "webp", "lossless": True}),
        ("avif (q65, speed 8)", {"format": "avif"}),
        ("png palette", {"format": "png", "palette": True}),
        ("thumbhash", {"format": "thumbhash"}),
    ]:
        spec = dict(output, name="o", width=WIDTH)
        if output["format"] == "thumbhash":
            del spec["width"]
        ms = [1000 * (render_cpu(p, spec) - base[p]) for p in photos]
        print(f"| {name} | {statistics.median(ms):.1f} |")

    # HEIC decode of a 12 MP photo: CPU of rendering it to a 16 px PNG.
    big = max(photos, key=os.path.getsize)
    src = os.path.join(work, "12mp.png")
    run(["vips", "thumbnail", big, src, "4000", "--height", "3000", "--crop", "centre"])
    heic = os.path.join(work, "12mp.heic")
    run(["heif-enc", "-q", "85", "-o", heic, src])
    req = os.path.join(work, "heic.json")
    with open(req, "w") as f:
        json.dump({"v": 1, "inputs": {"photo": heic}, "outputs": [{"name": "t", "format": "png", "width": 16}]}, f)
    ours_ms = statistics.median(
        [1000 * cpu_of([bin_, "render", req, "--out", os.path.join(work, "cpu")], env) for _ in range(5)])
    ref_ms = statistics.median(
        [1000 * cpu_of(["heif-convert", heic, os.path.join(work, "heic.png")]) for _ in range(5)])
    print(f"\n12 MP HEIC (4000x3000, heif-enc q85) -> 16 px PNG: {ours_ms:.0f} ms CPU "
          f"(heif-convert to PNG: {ref_ms:.0f} ms)")


if __name__ == "__main__":
    main()
