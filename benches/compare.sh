#!/usr/bin/env bash
# Runs the same thumbnail workload (12 MP JPEGs -> 512 px JPEG q85, metadata stripped) through
# vipsthumbnail (libvips), ImageMagick, Pillow (JPEG draft mode) and midnit-worker's `render`,
# in one run, and prints images per CPU-second and the ratios to vipsthumbnail.
#
#   benches/compare.sh            # 8 photos, 3 rounds
#   PHOTOS=16 ROUNDS=5 benches/compare.sh
#
# Installs the peers from Debian's packages and PyPI when missing (needs root for apt).
set -euo pipefail
cd "$(dirname "$0")/.."
PHOTOS=${PHOTOS:-8}
ROUNDS=${ROUNDS:-3}
WORK=${WORK:-target/compare}

need_apt=()
command -v vipsthumbnail >/dev/null || need_apt+=(libvips-tools)
command -v mogrify >/dev/null || need_apt+=(imagemagick)
if ((${#need_apt[@]})); then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}"
fi
python3 -c 'import PIL' 2>/dev/null || python3 -m pip install -q pillow

cargo build --release --quiet
BIN=target/release/midnit-worker
rm -rf "$WORK"
mkdir -p "$WORK/in" "$WORK/out"
"$BIN" samples --photos "$PHOTOS" --out "$WORK/in" >/dev/null

echo "versions: $(vipsthumbnail --vips-version 2>/dev/null || vips --version) |" \
  "$(mogrify -version | head -1) | Pillow $(python3 -c 'import PIL; print(PIL.__version__)')"
python3 benches/compare.py "$WORK/in" "$WORK/out" "$BIN" "$ROUNDS"
