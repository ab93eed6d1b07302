#!/usr/bin/env bash
# Bytes at equal quality (butteraugli), this worker against libvips, on real camera photos
# from Debian's wallpaper packages (fetched with `apt-get download`, never committed), and
# the CPU of each new encoder and of a 12 MP HEIC decode. See benches/formats.py.
#
#   benches/formats.sh
#
# Installs the peers from Debian's packages when missing (needs root for apt).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-target/formats}
BIN=${BIN:-target/release/midnit-worker}

need_apt=()
command -v vips >/dev/null || need_apt+=(libvips-tools)
command -v butteraugli >/dev/null || need_apt+=(butteraugli)
command -v dwebp >/dev/null || need_apt+=(webp)
command -v avifdec >/dev/null || need_apt+=(libavif-bin)
command -v heif-enc >/dev/null || need_apt+=(libheif-examples)
if ((${#need_apt[@]})); then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}"
fi
[ "$BIN" != target/release/midnit-worker ] || cargo build --release --quiet

# The photo set: camera photographs (not renders or drawings) from two wallpaper packages.
PHOTOS=(
  plasma-workspace-wallpapers:usr/share/wallpapers/Autumn/contents/images/2560x1600.jpg
  plasma-workspace-wallpapers:usr/share/wallpapers/ColdRipple/contents/images/2560x1600.jpg
  plasma-workspace-wallpapers:usr/share/wallpapers/ColorfulCups/contents/images/2560x1600.jpg
  plasma-workspace-wallpapers:usr/share/wallpapers/EveningGlow/contents/images/2560x1600.jpg
  plasma-workspace-wallpapers:usr/share/wallpapers/FallenLeaf/contents/images/2560x1600.jpg
  plasma-workspace-wallpapers:usr/share/wallpapers/OneStandsOut/contents/images/2560x1600.jpg
  plasma-workspace-wallpapers:usr/share/wallpapers/Path/contents/images/2560x1600.jpg
  plasma-workspace-wallpapers:usr/share/wallpapers/Volna/contents/images/5120x2880.jpg
  mate-backgrounds:usr/share/backgrounds/mate/nature/TwoWings.jpg
  mate-backgrounds:usr/share/backgrounds/mate/nature/Wood.jpg
)
mkdir -p "$WORK/debs" "$WORK/photos"
for pkg in $(printf '%s\n' "${PHOTOS[@]}" | cut -d: -f1 | sort -u); do
  ls "$WORK/debs/$pkg"_*.deb >/dev/null 2>&1 || (cd "$WORK/debs" && apt-get download "$pkg" >/dev/null)
  dpkg-deb -x "$WORK/debs/$pkg"_*.deb "$WORK/debs/root"
done
rm -f "$WORK/photos"/*
for entry in "${PHOTOS[@]}"; do
  file=${entry#*:}
  name=$(echo "$file" | cut -d/ -f4)-$(basename "$file")
  cp "$WORK/debs/root/$file" "$WORK/photos/$name"
done

echo "versions: $(vips --version) | $(dpkg-query -W -f '${Package} ${Version}' butteraugli)"
python3 benches/formats.py "$WORK/photos" "$WORK/run" "$BIN"
