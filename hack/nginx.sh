#!/usr/bin/env bash
# Installs Debian's nginx for the end-to-end scenario behind a reverse
# proxy, once, when running as root on Debian, and prints its path (nothing
# when it is not there and cannot be installed: the scenario then says so
# and skips). The package's own service is not started.
set -euo pipefail
nginx=$(command -v nginx 2>/dev/null || ls /usr/sbin/nginx 2>/dev/null || true)
if [[ -z $nginx ]] && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
	echo "Installing nginx from Debian's packages (once)" >&2
	apt-get update -qq >&2 || true
	# policy-rc.d keeps the package from starting its service.
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >&2 ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >&2 || true
	rm -f /usr/sbin/policy-rc.d
	nginx=$(command -v nginx 2>/dev/null || ls /usr/sbin/nginx 2>/dev/null || true)
fi
echo "$nginx"
