#!/usr/bin/env bash
# Builds a Vagrant box for the libvirt provider from faultline's VM image, so that `vagrant up`
# needs nothing from outside this machine:
#
#   vagrant/make-box.sh IMAGE_DIR OUT.box
#   vagrant box add --force --name faultline-local OUT.box
#   FAULTLINE_BOX=faultline-local vagrant up --provider=libvirt
#
# IMAGE_DIR is what `faultline cluster up --vm` builds (/var/cache/faultline/vm/<hash>/:
# rootfs.img, vmlinuz, initrd.img) or a user's own image of that layout. The box holds the disk
# as qcow2, the kernel and initrd (libvirt boots them directly: the disk has no boot loader),
# and a Vagrantfile with the libvirt settings such a box needs. Needs qemu-img (qemu-utils).
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 IMAGE_DIR OUT.box" >&2
    exit 2
fi
image=$1
out=$2
for f in rootfs.img vmlinuz initrd.img; do
    if [[ ! -f "$image/$f" ]]; then
        echo "$0: $image/$f is missing (an image directory holds rootfs.img, vmlinuz, initrd.img)" >&2
        exit 1
    fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
qemu-img convert -O qcow2 "$image/rootfs.img" "$work/box.img"
cp "$image/vmlinuz" "$image/initrd.img" "$work/"
bytes=$(stat -c %s "$image/rootfs.img")
gib=$(( (bytes + (1 << 30) - 1) >> 30 ))
printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %d}\n' "$gib" >"$work/metadata.json"
cat >"$work/Vagrantfile" <<'BOX'
# The box's own settings (the project's Vagrantfile adds each VM's kernel command line).
# Software emulation with a plain CPU model boots anywhere, also where /dev/kvm is missing or
# cannot run stock kernels; the image has no boot loader, so libvirt boots its kernel
# directly; no management network and no DHCP: the address comes from the kernel command
# line and vagrant-libvirt asks QEMU's guest agent for it. Root only, no sudo in the image.
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.driver = "qemu"
    lv.cpu_mode = "custom"
    lv.cpu_model = "qemu64"
    lv.kernel = File.join(__dir__, "vmlinuz")
    lv.initrd = File.join(__dir__, "initrd.img")
    lv.disk_bus = "virtio"
    lv.mgmt_attach = false
    lv.qemu_use_agent = true
  end
  config.vm.boot_timeout = 900
  config.ssh.username = "root"
  config.ssh.insert_key = false
  config.ssh.sudo_command = "%c"
end
BOX
tar -C "$work" -cf "$out" metadata.json Vagrantfile box.img vmlinuz initrd.img
echo "wrote $out from $image"
