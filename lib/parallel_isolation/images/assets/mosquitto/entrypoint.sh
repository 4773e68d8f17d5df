#!/bin/sh
# Start mosquitto with the image's config unless told otherwise.
#   MOSQUITTO_CONFIG       path of the config file to use (inside the container)
#   MOSQUITTO_CONFIG_TEXT  the whole config as text (written to /tmp/mosquitto.conf)
#   arguments              a full command, run instead (e.g. mosquitto -c /x.conf -v)
# mosquitto block-buffers its stdout log when stdout is not a terminal, so a
# mosquitto command runs under `stdbuf -oL`: each log line reaches
# `docker logs` as it is written.
set -eu
conf="${MOSQUITTO_CONFIG:-/mosquitto/config/mosquitto.conf}"
if [ -n "${MOSQUITTO_CONFIG_TEXT:-}" ]; then
    conf=/tmp/mosquitto.conf
    printf '%s\n' "${MOSQUITTO_CONFIG_TEXT}" >"${conf}"
fi
if [ "$#" -eq 0 ]; then
    set -- mosquitto -c "${conf}"
fi
if [ "$1" = mosquitto ] && command -v stdbuf >/dev/null 2>&1; then
    exec stdbuf -oL "$@"
fi
exec "$@"
