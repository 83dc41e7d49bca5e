#!/usr/bin/env bash
# make bench: installs the peers the benchmarks compare against (nmap, tshark) and QEMU
# where they are missing, builds hilt, the emulated device's image and
# bench/cmd/hiltbench, runs every benchmark and writes BENCHMARKS.md. Takes about 10
# minutes on 2 cores, about 4 of them the whole baseline on one emulated unit; needs root
# for the faithful figures (network namespaces for the simulated devices, nmap's SYN
# scan, the emulated unit's tap). Extra arguments go to hiltbench (go run
# ./bench/cmd/hiltbench -h lists them), e.g.
#   scripts/bench.sh -only scan,capture
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

if [ "$(id -u)" -eq 0 ] && ! command -v tshark >/dev/null 2>&1 && command -v debconf-set-selections >/dev/null 2>&1; then
  # wireshark-common asks whether to install dumpcap setuid: answer before apt-get does.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
fi
scripts/deps.sh bench

# The emulated section (unless -only leaves it out) needs QEMU and the image; without them
# it reports what failed rather than stopping the other benchmarks.
wants_emulated=1
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    -only | --only) v="${args[i + 1]:-}" ;;
    -only=* | --only=*) v="${args[i]#*=}" ;;
    *) continue ;;
  esac
  [[ ",$v," == *,emulated,* ]] || wants_emulated=0
done
if [ "$wants_emulated" = 1 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench: not root: the emulated section will say it was not measured" >&2
  elif ! { scripts/deps.sh qemu && ${MAKE:-make} --no-print-directory qemu-image GO="$GO"; }; then
    echo "bench: QEMU or the emulated device's image is missing (above): the emulated section will show the failed run" >&2
  fi
fi

# What make build makes: bin/hilt and bin/hilt-refdev, paired by a new build stamp (so both
# are linked again at every run; compiling stays cached).
${MAKE:-make} --no-print-directory build GO="$GO"
$GO build -o bin/hiltbench ./bench/cmd/hiltbench
echo "load average before: $(cat /proc/loadavg)"
bin/hiltbench -hilt bin/hilt -go "$GO" -o BENCHMARKS.md "$@"
