#!/usr/bin/env bash
# Start a Docker engine if none answers, and wait until it does.
#
# Idempotent: when `docker info` already answers it does nothing.  Otherwise it
# starts dockerd directly (no systemd needed; dockerd starts its own
# containerd), in the background with a log and a pid file, and waits for the
# API with a deadline.  On failure it prints the reason and the tail of the
# daemon's log and exits non-zero.
#
# Environment (all optional):
#   DOCKERD_LOG_DIR        where dockerd.log goes            (default /var/log)
#   DOCKERD_PIDFILE        dockerd's pid file                (default /var/run/docker.pid)
#   DOCKERD_START_TIMEOUT  seconds to wait for the API       (default 60)
#   DOCKERD_DATA_ROOT      --data-root                       (default: dockerd's)
#   DOCKERD_EXEC_ROOT      --exec-root                       (default: dockerd's)
#   DOCKERD_SOCKET         unix socket path to listen on     (default: dockerd's)
#   DOCKERD_EXTRA_ARGS     more dockerd flags, space-separated
#   DOCKERD_IPTABLES       auto|yes|no: manage iptables      (default auto)
# With DOCKERD_SOCKET set, the readiness check talks to that socket; otherwise
# it uses the docker CLI's own configuration (DOCKER_HOST or the default).
set -euo pipefail

log() { printf 'start-docker: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

log_dir="${DOCKERD_LOG_DIR:-/var/log}"
pidfile="${DOCKERD_PIDFILE:-/var/run/docker.pid}"
timeout_s="${DOCKERD_START_TIMEOUT:-60}"
iptables_mode="${DOCKERD_IPTABLES:-auto}"
log_file="${log_dir}/dockerd.log"

[[ ${timeout_s} =~ ^[0-9]+$ ]] || die "DOCKERD_START_TIMEOUT must be whole seconds, got '${timeout_s}'"
case "${iptables_mode}" in
    auto | yes | no) ;;
    *) die "DOCKERD_IPTABLES must be auto, yes or no, got '${iptables_mode}'" ;;
esac

docker_cli=(docker)
if [[ -n ${DOCKERD_SOCKET:-} ]]; then
    docker_cli=(docker --host "unix://${DOCKERD_SOCKET}")
fi

engine_answers() {
    command -v docker >/dev/null 2>&1 || return 1
    timeout 10 "${docker_cli[@]}" info >/dev/null 2>&1
}

if engine_answers; then
    log "engine already answers; nothing to do"
    exit 0
fi

command -v dockerd >/dev/null 2>&1 || die "dockerd is not installed; run ci/install-system-deps.sh first"
command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed; run ci/install-system-deps.sh first"
[[ ${EUID} -eq 0 ]] || die "dockerd must be started as root; try: sudo $0"

pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

# The daemon is alive while the pid we started, or the one in its pid file, is.
daemon_alive() {
    pid_alive "$1" && return 0
    [[ -s ${pidfile} ]] && pid_alive "$(cat "${pidfile}" 2>/dev/null || true)"
}

print_log_tail() {
    if [[ -s ${log_file} ]]; then
        log "last 40 lines of ${log_file}:"
        tail -n 40 "${log_file}" >&2
    else
        log "${log_file} is empty or missing"
    fi
}

# Two CI steps starting the engine at once must not race: serialize on a lock
# next to the pid file (released when this script exits).
mkdir -p "$(dirname "${pidfile}")"
exec 9>"${pidfile}.start-lock"
if ! flock -w "$((timeout_s + 10))" 9; then
    die "another start-docker.sh holds ${pidfile}.start-lock"
fi
if engine_answers; then
    log "engine answers (started by a concurrent start-docker.sh)"
    exit 0
fi

# A daemon may be starting already (pid file names a live dockerd): wait for it
# instead of starting a second one on the same data root.
existing_pid=""
if [[ -s ${pidfile} ]]; then
    existing_pid="$(cat "${pidfile}")"
    if pid_alive "${existing_pid}" && [[ "$(cat "/proc/${existing_pid}/comm" 2>/dev/null || true)" == dockerd ]]; then
        log "dockerd (pid ${existing_pid}) is running but not answering yet; waiting for it"
    else
        log "removing stale pid file ${pidfile} (pid ${existing_pid} is not a running dockerd)"
        rm -f "${pidfile}"
        existing_pid=""
    fi
fi

# --- cgroups -----------------------------------------------------------------
# Without systemd nobody may have mounted the cgroup hierarchy.
mount_cgroups() {
    if [[ -e /sys/fs/cgroup/cgroup.controllers ]]; then
        return 0 # cgroup v2 mounted
    fi
    if ! mountpoint -q /sys/fs/cgroup 2>/dev/null; then
        mkdir -p /sys/fs/cgroup
        if grep -qw cgroup2 /proc/filesystems \
            && mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null; then
            log "mounted cgroup2 on /sys/fs/cgroup"
            return 0
        fi
        log "mounting a cgroup v1 hierarchy on /sys/fs/cgroup"
        mount -t tmpfs -o uid=0,gid=0,mode=0755 cgroup /sys/fs/cgroup
    fi
    # cgroup v1: mount each enabled controller that is not mounted yet.
    local name _hier _num enabled
    while read -r name _hier _num enabled; do
        [[ ${name} == \#* || ${enabled} != 1 ]] && continue
        if ! grep -qE "[[:space:]]cgroup[[:space:]].*[,[:space:]]${name}([,[:space:]]|$)" /proc/self/mounts; then
            mkdir -p "/sys/fs/cgroup/${name}"
            mount -t cgroup -o "${name}" cgroup "/sys/fs/cgroup/${name}" 2>/dev/null \
                || log "warning: could not mount the ${name} cgroup controller"
        fi
    done </proc/cgroups
}

# cgroup v2 in a container whose processes sit in the root cgroup: controllers
# can only be delegated once no process lives there ("no internal processes"),
# so move everything into a leaf first and enable the controllers for children.
delegate_cgroup2() {
    local root=/sys/fs/cgroup
    [[ -e ${root}/cgroup.controllers && -w ${root}/cgroup.subtree_control ]] || return 0
    [[ "$(cat /proc/self/cgroup)" == "0::/" ]] || return 0
    [[ -n "$(cat "${root}/cgroup.subtree_control")" ]] && return 0
    log "cgroup v2 root with no delegated controllers: moving processes to ${root}/init"
    mkdir -p "${root}/init"
    local pid
    while read -r pid; do
        echo "${pid}" >"${root}/init/cgroup.procs" 2>/dev/null || true
    done <"${root}/cgroup.procs"
    local controller controllers
    read -r -a controllers <"${root}/cgroup.controllers"
    for controller in "${controllers[@]}"; do
        echo "+${controller}" >"${root}/cgroup.subtree_control" 2>/dev/null \
            || log "warning: could not enable the ${controller} controller"
    done
}

# --- iptables ----------------------------------------------------------------
# Debian defaults to iptables-nft; some kernels (and nested containers) only
# offer the legacy backend, some neither.  Pick one that works, or run dockerd
# without iptables (published 127.0.0.1 ports still work via docker-proxy).
iptables_works() { "$1" -w -t nat -S >/dev/null 2>&1; }

choose_iptables() {
    if [[ ${iptables_mode} == no ]]; then
        echo "--iptables=false"
        return 0
    fi
    if command -v iptables >/dev/null 2>&1 && iptables_works iptables; then
        return 0
    fi
    if command -v iptables-legacy >/dev/null 2>&1 && iptables_works iptables-legacy \
        && command -v update-alternatives >/dev/null 2>&1; then
        log "iptables (nft) does not work here; switching to iptables-legacy"
        update-alternatives --set iptables /usr/sbin/iptables-legacy >/dev/null
        if [[ -e /usr/sbin/ip6tables-legacy ]]; then
            update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >/dev/null || true
        fi
        return 0
    fi
    if [[ ${iptables_mode} == yes ]]; then
        die "no working iptables backend (tried iptables, iptables-legacy) and DOCKERD_IPTABLES=yes"
    fi
    log "warning: no working iptables backend; starting dockerd with --iptables=false"
    echo "--iptables=false"
}

if [[ -z ${existing_pid} ]]; then
    mount_cgroups
    delegate_cgroup2

    args=(--pidfile "${pidfile}")
    [[ -n ${DOCKERD_DATA_ROOT:-} ]] && args+=(--data-root "${DOCKERD_DATA_ROOT}")
    [[ -n ${DOCKERD_EXEC_ROOT:-} ]] && args+=(--exec-root "${DOCKERD_EXEC_ROOT}")
    [[ -n ${DOCKERD_SOCKET:-} ]] && args+=(--host "unix://${DOCKERD_SOCKET}")
    iptables_flag="$(choose_iptables)" || exit 1
    [[ -n ${iptables_flag} ]] && args+=("${iptables_flag}")
    # DOCKERD_EXTRA_ARGS is a space-separated flag list by contract.
    # shellcheck disable=SC2206
    args+=(${DOCKERD_EXTRA_ARGS:-})

    mkdir -p "${log_dir}" "$(dirname "${pidfile}")"
    log "starting dockerd ${args[*]} (log: ${log_file})"
    # setsid: the daemon must outlive this script and the CI step's process group.
    # Keep one previous log so the tail printed on failure is this start's.
    if [[ -f ${log_file} ]]; then
        mv -f "${log_file}" "${log_file}.1"
    fi
    printf '=== %s start-docker.sh: dockerd %s\n' "$(date -u +%FT%TZ)" "${args[*]}" >"${log_file}"
    setsid dockerd "${args[@]}" </dev/null >>"${log_file}" 2>&1 9>&- &
    started_pid=$!
else
    started_pid="${existing_pid}"
fi

deadline=$((SECONDS + timeout_s))
while ! engine_answers; do
    if ! daemon_alive "${started_pid}"; then
        print_log_tail
        die "dockerd (pid ${started_pid}) exited before its API answered"
    fi
    if ((SECONDS >= deadline)); then
        print_log_tail
        die "dockerd (pid ${started_pid}) did not answer 'docker info' within ${timeout_s}s; it is left running"
    fi
    sleep 0.5
done

log "engine answers (dockerd pid ${started_pid}, log ${log_file})"
"${docker_cli[@]}" version --format 'start-docker: server {{.Server.Version}}, client {{.Client.Version}}' >&2 || true
