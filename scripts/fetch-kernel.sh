#!/bin/sh
# fetch-kernel.sh: fetch Debian's cloud kernel (and its modules) for the QEMU-emulated device.
#
#   scripts/fetch-kernel.sh [CACHE_DIR]      (default .cache/qemu)
#
# Downloads linux-image-<ver>-cloud-amd64 with `apt-get download` (the version the metapackage
# linux-image-cloud-amd64 depends on), unpacks it with `dpkg-deb -x` into CACHE_DIR/kernel,
# copies the kernel to CACHE_DIR/vmlinuz and records the package name in CACHE_DIR/VERSION.
# Idempotent: when CACHE_DIR/VERSION and the kernel are there it does nothing. Delete CACHE_DIR
# (or set HILT_KERNEL_PACKAGE to another package name) to change the kernel.
# Needs apt-get and dpkg-deb (Debian/Ubuntu); runs `apt-get update` once if apt knows no kernel.
set -eu

cache=${1:-.cache/qemu}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

if [ -s "$cache/VERSION" ] && [ -s "$cache/vmlinuz" ] && [ -d "$cache/kernel/lib/modules" ]; then
	echo "fetch-kernel: cached: $(cat "$cache/VERSION") in $cache"
	exit 0
fi

for tool in apt-get apt-cache dpkg-deb; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "fetch-kernel: $tool not found: this script needs a Debian or Ubuntu host" >&2
		exit 1
	}
done

pick() {
	apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'
}

pkg=${HILT_KERNEL_PACKAGE:-}
if [ -z "$pkg" ]; then
	pkg=$(pick)
	if [ -z "$pkg" ]; then
		echo "fetch-kernel: apt knows no linux-image-cloud-amd64; running apt-get update" >&2
		apt-get update -qq
		pkg=$(pick)
	fi
fi
if [ -z "$pkg" ]; then
	echo "fetch-kernel: cannot find the kernel package linux-image-cloud-amd64 depends on" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fetch-kernel.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
# apt-get download writes into the current directory; as root it warns that the _apt user
# cannot write there: harmless.
(cd "$tmp" && apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
deb=$(ls "$tmp"/*.deb 2>/dev/null | head -n 1)
if [ -z "$deb" ]; then
	echo "fetch-kernel: apt-get download $pkg produced no .deb" >&2
	exit 1
fi

rm -rf "$cache/kernel.new"
dpkg-deb -x "$deb" "$cache/kernel.new"
vmlinuz=$(ls "$cache"/kernel.new/boot/vmlinuz-* | head -n 1)
rm -rf "$cache/kernel"
mv "$cache/kernel.new" "$cache/kernel"
cp "$cache/kernel/boot/$(basename "$vmlinuz")" "$cache/vmlinuz"
printf '%s\n' "$pkg" >"$cache/VERSION"
echo "fetch-kernel: $pkg -> $cache/vmlinuz, modules in $cache/kernel/lib/modules"
