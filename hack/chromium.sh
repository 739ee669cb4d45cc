#!/usr/bin/env bash
# Installs Debian's chromium for the console's browser tests, once, when
# running as root on Debian, and prints its path (nothing when it is not
# there and cannot be installed: the browser tests then say so and skip).
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
		echo "Installing chromium from Debian's packages (once)" >&2
		apt-get update -qq >&2 || true
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2 || true
	fi
fi
command -v chromium 2>/dev/null || true
