#!/usr/bin/env bash
# Debian packages Qt's offscreen and xcb platforms load at run time. Installed only when something is
# missing and we are root; otherwise we say what to install and go on (tests will say what failed).
set -uo pipefail
PKGS="libegl1 libgl1 libfontconfig1 libxkbcommon0 libxkbcommon-x11-0 libdbus-1-3 libglib2.0-0 fonts-dejavu-core \
libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xinerama0 libxcb-randr0 \
libxcb-shape0 libxcb-xkb1"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "installing system packages:$missing"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
else
    echo "note: missing system packages (install with apt-get):$missing" >&2
fi
exit 0
