#!/usr/bin/env bash
# Install the system packages the Docker backend, the offline image build and the
# HTML report's browser test (chromium, headless) need.
#
# Idempotent: when every package is already installed it runs no apt command at
# all, so a second run takes well under a second.  It never leaves a system
# mosquitto service running: the broker is started per test worker by the
# toolkit, and a system broker on 1883 would only hide port bugs.
#
# Environment:
#   EXTRA_PACKAGES   space-separated packages to install as well (optional)
set -euo pipefail

readonly PACKAGES=(
    docker.io
    mosquitto
    mosquitto-clients
    debootstrap
    iproute2
    procps
    ca-certificates
)

log() { printf 'install-system-deps: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ ${EUID} -ne 0 ]]; then
    die "must run as root (apt-get install needs it); try: sudo $0"
fi

installed() {
    # dpkg-query prints "install ok installed" only for fully installed packages.
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

# The HTML report's browser test needs a headless Chromium. Debian packages it as
# `chromium`; Ubuntu only through a snap (`chromium-browser`), so there a Chrome
# that is already installed (GitHub's runners have one) is used instead.
BROWSERS=(chromium chromium-browser google-chrome google-chrome-stable)
browser_on_path() {
    local name
    for name in "${BROWSERS[@]}"; do
        command -v "${name}" >/dev/null 2>&1 && return 0
    done
    return 1
}
browser_package=()
if ! browser_on_path; then
    distro="$( (. /etc/os-release && echo "${ID:-debian}") 2>/dev/null || echo debian)"
    if [[ ${distro} == ubuntu ]]; then
        browser_package=(chromium-browser)
    else
        browser_package=(chromium)
    fi
fi

# EXTRA_PACKAGES is a space-separated list by contract; word splitting is wanted.
# shellcheck disable=SC2206
wanted=("${PACKAGES[@]}" "${browser_package[@]}" ${EXTRA_PACKAGES:-})
missing=()
for pkg in "${wanted[@]}"; do
    installed "${pkg}" || missing+=("${pkg}")
done

# A package's maintainer script must not start a service while we install it
# (no systemd here, and a system mosquitto would squat on 1883).  Debian's
# policy-rc.d hook does exactly that; add one for the duration if none exists.
policy=/usr/sbin/policy-rc.d
added_policy=0
remove_policy() {
    if [[ ${added_policy} -eq 1 ]]; then
        rm -f "${policy}"
    fi
}
trap remove_policy EXIT

if [[ ${#missing[@]} -eq 0 ]]; then
    log "all packages present: ${wanted[*]}"
else
    log "installing: ${missing[*]}"
    if [[ ! -e ${policy} ]]; then
        printf '#!/bin/sh\n# added by ci/install-system-deps.sh for the install only\nexit 101\n' >"${policy}"
        chmod 0755 "${policy}"
        added_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    remove_policy
    added_policy=0
fi

# Make sure no system broker runs or comes back at boot.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now mosquitto.service >/dev/null 2>&1 || true
elif [[ -x /etc/init.d/mosquitto ]]; then
    # The init script stops only the daemon it started (its own pid file).
    if /etc/init.d/mosquitto status >/dev/null 2>&1; then
        log "stopping the system mosquitto service"
        /etc/init.d/mosquitto stop >/dev/null 2>&1 || true
    fi
    if command -v update-rc.d >/dev/null 2>&1; then
        update-rc.d mosquitto disable >/dev/null 2>&1 || true
    fi
fi

# Nothing may listen on the default MQTT port afterwards.
if command -v ss >/dev/null 2>&1; then
    listeners="$(ss -Hltnp 'sport = :1883' 2>/dev/null || true)"
    if [[ -n ${listeners} ]]; then
        die "something listens on port 1883 after the install; stop it first:
${listeners}"
    fi
fi

for tool in docker dockerd debootstrap mosquitto mosquitto_pub ip ps; do
    command -v "${tool}" >/dev/null 2>&1 || die "${tool} is not on PATH after the install"
done
browser_on_path || die "no headless browser (${BROWSERS[*]}) is on PATH after the install"
log "ok"
