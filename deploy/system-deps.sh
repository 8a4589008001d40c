#!/usr/bin/env bash
# Installs the Debian packages the full test run needs, when they are missing:
# a PostgreSQL server (its own test lane) and Chromium (dashboard browser tests).
set -euo pipefail
need=()
[ -x "$(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | head -1)" ] || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${need[*]} (run 'sudo bash deploy/system-deps.sh')" >&2
  exit 1
fi
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
