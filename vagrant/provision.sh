#!/usr/bin/env bash
# Provisions one faultline test host (run by Vagrant as root inside the VM).
# - root SSH with faultline's key (uploaded to /tmp/faultline.pub by the Vagrantfile);
# - the tools the nemesis uses: iptables, iproute2 (tc), libfaketime;
# - etcd-server, with its own service disabled (faultline starts etcd itself);
# - Debian's ZooKeeper and a Java runtime, for --db zookeeper;
# - redis-server and redis-sentinel, services disabled, for --db redis;
# - time synchronisation off, so a clock fault holds until faultline resets it;
# - /etc/hosts naming every test host, and /opt/faultline for binaries, data and PID files.
set -euo pipefail

# Packages only when a tool is missing: faultline's own box has them all and no network to
# fetch more.
export DEBIAN_FRONTEND=noninteractive
missing=()
for pair in iptables:iptables tc:iproute2 faketime:faketime ps:procps killall:psmisc; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
[[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ]] || missing+=(libfaketime)
# Debian's ZooKeeper for --db zookeeper (faultline starts it itself; the package has no
# service, zookeeperd would).
[[ -f /usr/share/java/zookeeper.jar ]] || missing+=(zookeeper)
[[ -x /usr/bin/java ]] || missing+=(default-jre-headless)
# --db redis: faultline starts redis-server and redis-sentinel itself, never Debian's services.
for pkg in redis-server redis-sentinel; do
    command -v "$pkg" >/dev/null || missing+=("$pkg")
done
# etcd-server for --db etcd; faultline starts etcd itself.
command -v etcd >/dev/null || missing+=(etcd-server etcd-client)
# A policy-rc.d keeps apt from starting the servers' own services, and their units are
# disabled: faultline starts every daemon itself.
if ((${#missing[@]})); then
    policy=
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy=ours
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" ca-certificates >/dev/null
    if [[ $policy == ours ]]; then rm -f /usr/sbin/policy-rc.d; fi
fi
for unit in redis-server redis-sentinel etcd; do
    systemctl disable --now "$unit" >/dev/null 2>&1 || true
done

install -d -m 700 /root/.ssh
touch /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
if [[ -f /tmp/faultline.pub ]]; then
    key=$(cat /tmp/faultline.pub)
    # Append only when root lacks the key, so provisioning twice changes nothing.
    grep -qxF -- "$key" /root/.ssh/authorized_keys || printf '%s\n' "$key" >>/root/.ssh/authorized_keys
fi
sshd_drop_in=/etc/ssh/sshd_config.d/faultline.conf
printf 'PermitRootLogin prohibit-password\nMaxSessions 100\nMaxStartups 100:30:200\n' >"$sshd_drop_in"
systemctl reload ssh 2>/dev/null || systemctl reload sshd 2>/dev/null || true

for unit in systemd-timesyncd chrony ntp ntpsec; do
    if systemctl list-unit-files "$unit.service" >/dev/null 2>&1; then
        systemctl disable --now "$unit" >/dev/null 2>&1 || true
    fi
done
timedatectl set-ntp false 2>/dev/null || true

if [[ -n "${FAULTLINE_HOSTS:-}" ]]; then
    # Replace our own block only, keeping whatever else /etc/hosts holds.
    sed -i '/# faultline-begin/,/# faultline-end/d' /etc/hosts
    printf '# faultline-begin\n%s\n# faultline-end\n' "$FAULTLINE_HOSTS" >>/etc/hosts
fi

install -d -m 755 /opt/faultline
echo "faultline host $(hostname) ready"
