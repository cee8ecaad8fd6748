#!/usr/bin/env bash
# Install what the test suite needs on a fresh Debian machine (root): the VM's packages and
# podman for the container tests. Idempotent and quick when everything is there.
set -euo pipefail
need=()
command -v unshare >/dev/null || need+=(util-linux)
command -v setpriv >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
for extra in .ci/setup-*.sh; do
    [ -f "$extra" ] && bash "$extra"
done
exit 0
