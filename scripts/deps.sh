#!/usr/bin/env bash
# Installs the system packages hilt's tests need, where they are missing (Debian).
#   scripts/deps.sh test    xmllint (JUnit schema), mosquitto (real-broker runs), iproute2 (ip, tc)
#   scripts/deps.sh qemu    qemu-system-x86 and e2fsprogs (emulated devices; make qemu-image then
#                           fetches the kernel and builds the initramfs)
#   scripts/deps.sh bench   nmap and tshark (the peers benchmarks compare against), GNU time
#                           (a measured command's own peak memory; make test's bench tests too)
set -euo pipefail
declare -A pkg_of=(
  [xmllint]=libxml2-utils [mosquitto]=mosquitto [mosquitto_sub]=mosquitto-clients [ip]=iproute2 [tc]=iproute2
  [qemu-system-x86_64]=qemu-system-x86 [nmap]=nmap [tshark]=tshark [mkfs.ext4]=e2fsprogs
  [debugfs]=e2fsprogs [python3]=python3 [/usr/bin/time]=time
)
case "${1:-test}" in
  test)  want=(xmllint mosquitto mosquitto_sub ip tc python3 /usr/bin/time) ;;
  qemu)  want=(qemu-system-x86_64 mkfs.ext4 debugfs) ;;
  bench) want=(nmap tshark /usr/bin/time) ;;
  *) echo "usage: $0 test|qemu|bench" >&2; exit 2 ;;
esac
missing=()
for c in "${want[@]}"; do
  command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || missing+=("${pkg_of[$c]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
