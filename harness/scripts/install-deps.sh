#!/usr/bin/env bash
# Installs the Debian packages faultline and its tests need, when any is missing.
# Sourced by test-all.sh and quickstart.sh; idempotent and quiet when all is there.
FAULTLINE_DEBS=(
    openssh-server openssh-client   # the local test hosts' sshd, and the controller's ssh
    iptables iproute2               # partitions, packet faults, namespaces, bridges
    libfaketime faketime            # clock faults on local hosts
    etcd-server etcd-client         # the third-party etcd, also the raft benchmark's yardstick
    protobuf-compiler libprotobuf-dev  # protoc and its well-known .proto files: etcd-client's build
    redis-tools                     # redis-cli against our redis-lock server
    zookeeper default-jre-headless  # the third-party ZooKeeper (--db zookeeper); no service of its own
    redis-server redis-sentinel     # --db redis (Debian's services are never used)
    chromium                        # headless browser tests of report.html
    procps psmisc                   # ps, for process-state checks in tests
    vagrant shellcheck              # validating vagrant/Vagrantfile and its provisioning script
)
faultline_missing=()
for pkg in "${FAULTLINE_DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || faultline_missing+=("$pkg")
done
if ((${#faultline_missing[@]})); then
    echo "installing Debian packages: ${faultline_missing[*]}" >&2
    apt-get update -qq
    # faultline starts every server itself: a policy-rc.d keeps the packages' own services
    # (etcd's, Redis's, ZooKeeper's) from starting while they are installed.
    faultline_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
        faultline_policy=/usr/sbin/policy-rc.d
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${faultline_missing[@]}" >/dev/null
    [ -n "$faultline_policy" ] && rm -f "$faultline_policy"
    # Where systemd runs, the units stay disabled too.
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl disable --now etcd.service redis-server.service redis-sentinel.service >/dev/null 2>&1 || true
    fi
    unset faultline_policy
fi
unset faultline_missing
