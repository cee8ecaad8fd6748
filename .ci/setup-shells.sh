#!/usr/bin/env bash
# What tests/integration/cli.rs checks holden's output with: bash, zsh and fish read its
# completion scripts, man and groff its man page. Idempotent and quick when all are there.
set -euo pipefail
need=()
for tool in zsh fish; do
    command -v "$tool" >/dev/null || need+=("$tool")
done
command -v man >/dev/null || need+=(man-db)
command -v groff >/dev/null || need+=(groff-base)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
