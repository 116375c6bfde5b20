#!/usr/bin/env bash
# The gateway benchmark: Switchyard against no gateway and against nginx as a plain reverse
# proxy, in front of an nginx mock upstream, on pinned cores. Installs what it needs (nginx from
# Debian's packages, oha from crates.io), builds the release proxy and the bundled policy, runs
# bench/gateway.py, and writes docs/performance-results.md.
#
#   bench/run.sh            # the full run (several minutes)
#   bench/run.sh --quick    # shorter runs, for trying the script
#   bench/run.sh --soak 10  # resident memory under 10 minutes of load (docs/performance-soak.md)
#   bench/run.sh --dist     # the profile-optimized builds of `cargo xtask dist --floor`, the
#                           # proxy and the floors alike (docs/performance-results-dist.md)
set -euo pipefail
cd "$(dirname "$0")/.."

OHA_VERSION=1.16.0

if ! command -v nginx >/dev/null; then
    sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
fi
if ! command -v oha >/dev/null || [ "$(oha --version | awk '{print $2}')" != "$OHA_VERSION" ]; then
    cargo install --locked --quiet oha --version "$OHA_VERSION"
fi

cargo xtask plugins
if [[ " $* " == *" --dist "* ]]; then
    cargo xtask dist --floor
else
    cargo build --release --package switchyard --bin switchyard --example bare_proxy
fi

python3 bench/gateway.py "$@"
