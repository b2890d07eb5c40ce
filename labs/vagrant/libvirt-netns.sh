#!/usr/bin/env bash
# check.sh on vagrant-libvirt, on a machine without systemd and without a network given to
# VMs: a network namespace made here holds libvirtd (started by hand, with virtlogd), so its
# NAT and private networks, bridges and firewall rules are all inside it and the host's root
# namespace is never configured; Vagrant runs in it too (it reaches the VMs over those bridges).
# The box is scripts/vm-image --box (Debian 12 with everything knet needs: the VMs have no
# route to a mirror), booted under software emulation (KNET_LIBVIRT_DRIVER=qemu) unless set.
# Everything started here is stopped and the namespace deleted on exit, also on failure.
#
#   sudo labs/vagrant/libvirt-netns.sh            # as check.sh: the last line is its JSON
#
# Needs: vagrant, vagrant-libvirt, libvirt-daemon-system, qemu-system-x86, qemu-utils,
# mmdebstrap, rsync (Debian packages). Settings: check.sh's and the Vagrantfile's.
set -euo pipefail
cd "$(dirname "$0")"
[ "$(id -u)" = 0 ] || { echo "libvirt-netns.sh: run as root (namespaces, libvirtd)" >&2; exit 1; }
NS=${KNET_VAGRANT_NETNS:-knet-vagrant-$$}
export VAGRANT_HOME=${VAGRANT_HOME:-/var/cache/knet-vm/vagrant.d}  # not /root: libvirt's QEMU reads the box's kernel
export KNET_PROVIDER=libvirt
export KNET_LIBVIRT_DRIVER=${KNET_LIBVIRT_DRIVER:-qemu} KNET_CPUS=${KNET_CPUS:-1} KNET_MEMORY=${KNET_MEMORY:-1024}
RUN=$(mktemp -d /run/knet-vagrant-XXXXXX)

# The box is named after its image (knet-debian12-<recipe hash>): vagrant-libvirt keeps a box's
# disk in libvirt's pool by name, so a rebuilt image must not reuse an older box's name.
image=${KNET_VM_IMAGE:-$(../../scripts/vm-image --box | tail -1)}  # or an image directory scripts/vm-image made
export KNET_BOX=${KNET_BOX:-knet-${image##*/}}
if ! vagrant box list 2>/dev/null | grep -q "^$KNET_BOX .*libvirt"; then
  vagrant box add --name "$KNET_BOX" "$image/knet-debian12.box"
fi
chmod -R a+rX "$VAGRANT_HOME/boxes"

stop() {  # stop PIDFILE: the daemon started here, by its pid
  [ -s "$1" ] || return 0
  local pid; pid=$(cat "$1")
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  if [ -z "${KNET_KEEP:-}" ]; then
    ip netns exec "$NS" vagrant destroy -f >/dev/null 2>&1 || true
    # the networks vagrant-libvirt defined, so the next libvirtd does not find them half there
    for net in $(ip netns exec "$NS" virsh -q net-list --all --name 2>/dev/null); do
      ip netns exec "$NS" virsh -q net-destroy "$net" >/dev/null 2>&1 || true
      ip netns exec "$NS" virsh -q net-undefine "$net" >/dev/null 2>&1 || true
    done
  fi
  stop "$RUN/libvirtd.pid"
  stop "$RUN/virtlogd.pid"
  stop "$RUN/renice.pid"
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$RUN"
  exit $rc
}
trap cleanup EXIT

ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
# Low CPU priority for all of it: QEMU (libvirtd's child) shares the machine. nice alone is not
# enough where the kernel groups CPU by session (autogroup): libvirtd and virtlogd daemonise and
# libvirtd starts each QEMU in a session of its own, each then an autogroup at nice 0 that competes
# as a whole with every other session (seen here: a Vagrant VM's QEMU at 22% of a core at load 60).
# So every process in the namespace gets its autogroup's nice set to 19, seconds after it starts,
# until the namespace goes.
renice_namespace() {
  while [ -e "/run/netns/$NS" ]; do
    for pid in $(ip netns pids "$NS" 2>/dev/null); do echo 19 > "/proc/$pid/autogroup" 2>/dev/null || true; done
    sleep 5
  done
}
nice -n 19 ip netns exec "$NS" virtlogd -d -p "$RUN/virtlogd.pid"
nice -n 19 ip netns exec "$NS" libvirtd -d -p "$RUN/libvirtd.pid"
renice_namespace &
echo $! > "$RUN/renice.pid"
for _ in $(seq 1 100); do
  ip netns exec "$NS" virsh -c qemu:///system -q version >/dev/null 2>&1 && break
  sleep 0.2
done
ip netns exec "$NS" virsh -c qemu:///system -q version >/dev/null
ip netns exec "$NS" ./check.sh
