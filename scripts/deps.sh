#!/usr/bin/env bash
# Installs the system packages mediaedge builds with on Debian/Ubuntu:
# a C compiler for libjpeg-turbo (mozjpeg-sys) and libwebp, nasm for their
# SIMD code and for rav1e (AVIF); cmake, libde265-dev and libdav1d-dev for
# libheif (HEIC/HEIF and AVIF decoding), which is built from source with
# the binary; FFmpeg's libavformat, libavcodec, libswscale and libavutil
# (Debian's 5.1) for video posters and probes, and libclang for their
# Rust bindings. Sourced by run.sh and test.sh.
set -euo pipefail

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update -qq
    local recommends="--no-install-recommends"
    [ "${APT_RECOMMENDS:-0}" = 1 ] && recommends=""
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $recommends "${missing[@]}" >/dev/null
}

apt_install build-essential nasm pkg-config ca-certificates cmake libde265-dev libdav1d-dev \
    libavformat-dev libavcodec-dev libswscale-dev libavutil-dev libclang-dev

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust 1.95 or newer (https://rustup.rs) and re-run" >&2
    exit 1
fi
