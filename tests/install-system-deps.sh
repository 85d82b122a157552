#!/usr/bin/env bash
# Installs the real peers the tests use (redis-server, redis-sentinel, swaks, curl, dnsmasq, Postfix
# for smtp-source, Perl's Mail::DKIM as an independent DKIM verifier, ss, a C
# compiler for the fsync fault library, promtool from Debian's prometheus package for
# the alert rules and the Prometheus config of ugem/deploy, chromium and its
# chromedriver for the web console's browser tests) when
# they are missing, and Haraka 3 from the npm registry into the repository's var/haraka
# (or $UGEM_HARAKA_PREFIX; loadtest.haraka.ensure_installed: never a global install;
# it needs Node.js 20+ and npm, which this script does not install). Needs root;
# without it, prints what is missing and the tests that need it skip with that reason.
set -u
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="$repo/.venv/bin/python"
[ -x "$python" ] || python=python3
haraka_py() { (cd "$repo" && "$python" -c "from loadtest import haraka; $1"); }
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-sentinel >/dev/null || need+=(redis-sentinel)
command -v swaks >/dev/null || need+=(swaks)
command -v curl >/dev/null || need+=(curl)
[ -x /usr/sbin/dnsmasq ] || command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
[ -x /usr/sbin/smtp-source ] || command -v smtp-source >/dev/null || need+=(postfix)
perl -MMail::DKIM -e1 2>/dev/null || need+=(libmail-dkim-perl)
command -v ss >/dev/null || need+=(iproute2)
command -v cc >/dev/null || need+=(gcc libc6-dev)
command -v promtool >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
haraka_py 'raise SystemExit(not haraka.is_installed())' 2>/dev/null || need_haraka=1
[ ${#need[@]} -eq 0 ] && [ -z "${need_haraka:-}" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing (not root, not installing): ${need[*]} ${need_haraka:+Haraka (npm)}" >&2
  exit 0
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ -n "${need_haraka:-}" ]; then
  if command -v node >/dev/null && command -v npm >/dev/null; then
    echo "installing Haraka with npm"
    haraka_py 'print(haraka.ensure_installed())' || echo "Haraka was not installed" >&2
  else
    echo "missing Node.js 20+ and npm (not installing): Haraka cannot be installed" >&2
  fi
fi
