#!/usr/bin/env bash
# The thumbnail workload on real camera photos — 14 JPEGs shipped in Debian's wallpaper
# packages (4-18 MP, baseline and progressive), fetched with `apt-get download` and never
# committed — through vipsthumbnail (libvips), ImageMagick, Pillow (JPEG draft mode) and
# midnit-worker's `render`, in one run: each photo to a 512 px JPEG q85, metadata stripped.
# Prints CPU per image, images per CPU-second and the ratio to vipsthumbnail, output bytes
# and PSNR against a float reference (see benches/compare.py).
#
#   benches/compare.sh            # 3 rounds
#   ROUNDS=5 benches/compare.sh
#   SET=synthetic benches/compare.sh   # 8 generated 12 MP photos instead
#
# BEFORE=path/to/another/midnit-worker adds that binary to the same run (before/after).
# Installs the peers from Debian's packages and PyPI when missing (needs root for apt).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SET=${SET:-real}
WORK=${WORK:-target/compare}
BIN=${BIN:-target/release/midnit-worker}

need_apt=()
command -v vipsthumbnail >/dev/null || need_apt+=(libvips-tools)
command -v mogrify >/dev/null || need_apt+=(imagemagick)
if ((${#need_apt[@]})); then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}"
fi
python3 -c 'import PIL' 2>/dev/null || python3 -m pip install -q pillow

[ "$BIN" != target/release/midnit-worker ] || cargo build --release --quiet
rm -rf "$WORK/in" "$WORK/out"
mkdir -p "$WORK/in" "$WORK/out" "$WORK/debs"
if [ "$SET" = synthetic ]; then
  "$BIN" samples --photos 8 --out "$WORK/in" >/dev/null
else
  # Camera photographs (not renders or drawings), the largest size each package ships.
  PHOTOS=(
    plasma-workspace-wallpapers:usr/share/wallpapers/Autumn
    plasma-workspace-wallpapers:usr/share/wallpapers/BytheWater
    plasma-workspace-wallpapers:usr/share/wallpapers/ColdRipple
    plasma-workspace-wallpapers:usr/share/wallpapers/ColorfulCups
    plasma-workspace-wallpapers:usr/share/wallpapers/EveningGlow
    plasma-workspace-wallpapers:usr/share/wallpapers/FallenLeaf
    plasma-workspace-wallpapers:usr/share/wallpapers/OneStandsOut
    plasma-workspace-wallpapers:usr/share/wallpapers/Path
    plasma-workspace-wallpapers:usr/share/wallpapers/summer_1am
    plasma-workspace-wallpapers:usr/share/wallpapers/Volna
    mate-backgrounds:usr/share/backgrounds/mate/abstract/Elephants_5640x3172.jpg
    mate-backgrounds:usr/share/backgrounds/mate/nature/LadyBird.jpg
    mate-backgrounds:usr/share/backgrounds/mate/nature/TwoWings.jpg
    mate-backgrounds:usr/share/backgrounds/mate/nature/Wood.jpg
  )
  for pkg in $(printf '%s\n' "${PHOTOS[@]}" | cut -d: -f1 | sort -u); do
    ls "$WORK/debs/$pkg"_*.deb >/dev/null 2>&1 || (cd "$WORK/debs" && apt-get download "$pkg" >/dev/null)
    [ -d "$WORK/debs/root" ] && [ -e "$WORK/debs/$pkg.done" ] || {
      dpkg-deb -x "$WORK/debs/$pkg"_*.deb "$WORK/debs/root"
      touch "$WORK/debs/$pkg.done"
    }
  done
  for entry in "${PHOTOS[@]}"; do
    path="$WORK/debs/root/${entry#*:}"
    if [ -d "$path" ]; then
      # A Plasma wallpaper: its largest JPEG.
      file=$(ls -S "$path"/contents/images/*.jpg | head -1)
      name=$(basename "$path")
    else
      file=$path
      name=$(basename "$path" .jpg)
    fi
    cp "$file" "$WORK/in/photo-$name.jpg"
  done
fi

echo "versions: $(vipsthumbnail --vips-version 2>/dev/null || vips --version) |" \
  "$(mogrify -version | head -1) | Pillow $(python3 -c 'import PIL; print(PIL.__version__)')"
python3 benches/compare.py "$WORK/in" "$WORK/out" "$BIN" "$ROUNDS"
