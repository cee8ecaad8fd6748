#!/usr/bin/env bash
# podman for the container tests (tests/integration/agent.rs and deploy.rs, `podman_*`),
# rootful and offline: images are built FROM scratch with a static holden
# (contrib/container/build.sh). Measured on our machines (TESTING.md): podman needs runc (crun
# refuses the hybrid cgroup layout) and ulimits that root may set here; `podman kube play`
# needs catatonit for its pause image; the programs in the test containers are a static
# busybox (busybox-static). Idempotent; quick when everything is in place. Needs root and a
# reachable Debian mirror the first time.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
    echo "setup-podman: not root; skipping (the podman tests will skip too)" >&2
    exit 0
fi
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v catatonit >/dev/null || need+=(catatonit)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
conf=/etc/containers/containers.conf
if ! grep -q 'holden: setup-podman' "$conf" 2>/dev/null; then
    mkdir -p /etc/containers
    if [ -s "$conf" ]; then
        cp "$conf" "$conf.before-holden"
    fi
    cat > "$conf" <<'CONF'
# holden: setup-podman (.ci/setup-podman.sh)
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
CONF
fi
