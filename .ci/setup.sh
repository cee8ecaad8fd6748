#!/usr/bin/env bash
# The one place that installs or configures the system for the tests (README's test command,
# ./test.sh, runs it first; a plain `cargo test` never does): util-linux here, then each
# .ci/setup-*.sh: podman (runc, catatonit, busybox-static, containers.conf), the shells and man
# for the completion and man page tests, systemd-analyze, supervisor (pip, for its sample config)
# and the VM's qemu and kernel.
# Idempotent and quick when everything is there; needs root (and a Debian mirror) the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v unshare >/dev/null || need+=(util-linux)
command -v setpriv >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
for extra in .ci/setup-*.sh; do
    bash "$extra"
done
