#!/usr/bin/env bash
# Install the Debian packages the tests use (real servers, no mocks): MariaDB server and
# client; rclone (a backend, and the WebDAV/SFTP servers its tests talk to); Podman with
# runc, netavark, aardvark-dns, docker-compose v1 and busybox-static (real containers: the tests start their own
# Podman API service with their own containers.conf and build their images from busybox,
# so nothing on the host is configured and no registry is needed). Azurite and the S3
# server come from npm. Idempotent: does nothing when everything is there. Needs root (or sudo).
set -euo pipefail

packages=()
command -v mariadb-install-db >/dev/null 2>&1 && { [ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null 2>&1; } || packages+=(mariadb-server)
command -v mariadb-dump >/dev/null 2>&1 || packages+=(mariadb-client)
command -v rclone >/dev/null 2>&1 || packages+=(rclone)
command -v podman >/dev/null 2>&1 || packages+=(podman)
{ command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ]; } || packages+=(runc)
command -v docker-compose >/dev/null 2>&1 || packages+=(docker-compose)
dpkg -s busybox-static >/dev/null 2>&1 || packages+=(busybox-static)
# netavark and aardvark-dns: containers of a stack find each other by service name.
dpkg -s netavark >/dev/null 2>&1 || packages+=(netavark)
dpkg -s aardvark-dns >/dev/null 2>&1 || packages+=(aardvark-dns)
# netavark sets up each stack network's firewall rules with iptables; without it every
# container start fails with "netavark: No such file or directory" (seen on a fresh machine).
command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || packages+=(iptables)
command -v git >/dev/null 2>&1 || packages+=(git)
# The signal tests press Ctrl-C on a real terminal.
command -v tmux >/dev/null 2>&1 || packages+=(tmux)
# promtool (in Debian's prometheus package) checks the runner's metrics and deploy/monitoring's rules.
command -v promtool >/dev/null 2>&1 || packages+=(prometheus)
# The console's tests drive Debian's Chromium (headless) with puppeteer-core.
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
# The direct-I/O tests fill a small loop-mounted ext4 to see a full disk named as such.
{ command -v mkfs.ext4 >/dev/null 2>&1 || [ -x /usr/sbin/mkfs.ext4 ] || [ -x /sbin/mkfs.ext4 ]; } || packages+=(e2fsprogs)
# The TLS tests make a certificate authority of their own with openssl.
command -v openssl >/dev/null 2>&1 || packages+=(openssl)

if [ ${#packages[@]} -eq 0 ]; then
  echo "test dependencies are installed"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
timeout 600 $SUDO apt-get update -qq
# The package's own service is not needed: every test starts a throwaway server of its own.
timeout 900 $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}"
