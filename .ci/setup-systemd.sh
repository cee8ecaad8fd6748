#!/usr/bin/env bash
# systemd-analyze, with which tests/integration/deploy.rs verifies contrib/systemd/holden.service
# (systemd need not be PID 1 for that). Idempotent and quick when it is there.
set -euo pipefail
if ! command -v systemd-analyze >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup-systemd: systemd-analyze is missing: run as root, or apt-get install systemd" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi
