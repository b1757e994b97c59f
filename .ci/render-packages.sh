#!/usr/bin/env bash
# Debian packages for offscreen rendering (es-mpi eval --video with MuJoCo): EGL through Mesa
# (or a GPU driver) and OSMesa as the software fallback. Installs only what is missing; does
# nothing (exit 0, a note on stderr) when not root or without apt-get.
set -euo pipefail
PACKAGES="libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6"
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "render-packages.sh: not installing$missing (needs root and apt-get); MuJoCo videos may not work" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "render-packages.sh: installed$missing" >&2
