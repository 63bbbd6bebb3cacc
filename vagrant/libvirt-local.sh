#!/usr/bin/env bash
# Starts and stops libvirt by hand on a machine whose PID 1 is not systemd (containers, CI),
# for `vagrant up --provider=libvirt`; and removes what libvirt leaves on the host.
#
#   vagrant/libvirt-local.sh start   start virtlogd and libvirtd unless they run
#   vagrant/libvirt-local.sh stop    stop the ones `start` started (by PID file), remove the
#                                    box volumes faultline-local* from the default pool, and
#                                    the iptables chains libvirt added (LIBVIRT_*)
#
# Only daemons this script started are stopped: `start` records their PIDs under
# /run/faultline-libvirt/, and `stop` signals exactly those PIDs.
set -euo pipefail

state=/run/faultline-libvirt
daemons=(virtlogd libvirtd)

running() { # pid-file
    [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

start() {
    # Directories Debian's libvirt-daemon-system would make; without them the daemons exit.
    mkdir -p "$state" /var/log/libvirt /var/lib/libvirt/images /run/libvirt
    # Debian's NAT network "default" would start with libvirtd and leave a bridge, a dnsmasq
    # and NAT rules behind; faultline's VMs use an isolated network of their own.
    rm -f /etc/libvirt/qemu/networks/autostart/default.xml
    for d in "${daemons[@]}"; do
        if running "/run/$d.pid"; then
            echo "$d already runs (PID $(cat "/run/$d.pid")); leaving it alone"
            continue
        fi
        "/usr/sbin/$d" --daemon
        for _ in $(seq 100); do
            running "/run/$d.pid" && break
            sleep 0.1
        done
        running "/run/$d.pid" || { echo "$d did not start" >&2; exit 1; }
        cp "/run/$d.pid" "$state/$d.pid"
        echo "started $d (PID $(cat "$state/$d.pid"))"
    done
    for _ in $(seq 100); do
        virsh -c qemu:///system version >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "libvirtd does not answer" >&2
    exit 1
}

remove_chains() {
    local table chain rule
    for table in filter nat mangle; do
        # Jumps from the built-in chains first, then the chains themselves.
        while read -r rule; do
            # shellcheck disable=SC2086 # the rule's words are iptables' own output
            iptables -w -t "$table" ${rule/-A /-D } || true
        done < <(iptables -w -t "$table" -S | grep -E '^-A [A-Z]+ .*-j LIBVIRT_' || true)
        for chain in $(iptables -w -t "$table" -S | awk '/^-N LIBVIRT_/ {print $2}'); do
            iptables -w -t "$table" -F "$chain"
            iptables -w -t "$table" -X "$chain"
            echo "removed iptables chain $table/$chain"
        done
    done
}

stop() {
    local ours=0
    if virsh -c qemu:///system version >/dev/null 2>&1; then
        for vol in $(virsh -c qemu:///system vol-list default 2>/dev/null | awk '$1 ~ /^faultline-local/ {print $1}'); do
            virsh -c qemu:///system vol-delete --pool default "$vol" >/dev/null && echo "removed volume $vol"
        done
    fi
    for d in libvirtd virtlogd; do
        [[ -f "$state/$d.pid" ]] || continue
        ours=1
        pid=$(cat "$state/$d.pid")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
            echo "stopped $d (PID $pid)"
        fi
        rm -f "$state/$d.pid"
    done
    # The chains belong to a libvirt someone else runs unless this script started it.
    if [[ $ours == 1 ]]; then
        remove_chains
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
