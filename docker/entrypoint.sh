#!/bin/sh
# Entrypoint of the compose drill's containers. Docker names the interfaces eth0, eth1, ... in an
# order compose does not promise, and a network connected again comes back as a new ethN: the
# interfaces are named by their address instead, now and (in the background) whenever one appears,
# as TWINWALL_LINKS says: "inside0=172.31.1. outside0=172.31.2. sync0=172.31.3." (name=address
# prefix). Then it runs the command (twinwall node --config ..., or a shell for the agents).
#
# TWINWALL_PROC_SYS=rw (the firewalls): the daemon sets accept_local on its data interfaces, and
# Docker mounts /proc/sys read-only; with CAP_SYS_ADMIN it is remounted read-write here (the
# container's own network sysctls), then the capability is dropped for everything that follows.
set -eu

if [ "${TWINWALL_PROC_SYS:-}" = rw ]; then
  mount -o remount,rw /proc/sys || {
    echo "twinwall-entrypoint: cannot remount /proc/sys read-write: give the container cap_add SYS_ADMIN (and security_opt apparmor=unconfined where AppArmor runs)" >&2
    exit 1
  }
  TWINWALL_PROC_SYS=done exec setpriv --inh-caps -sys_admin --bounding-set -sys_admin "$0" "$@"
fi

name_links() {
  ip -o -4 addr show | while read -r _ dev _ cidr _; do
    for pair in ${TWINWALL_LINKS:-}; do
      want=${pair%%=*} prefix=${pair#*=}
      case "$cidr" in
        "$prefix"*)
          if [ "$dev" != "$want" ]; then
            ip link set "$dev" down && ip link set "$dev" name "$want" && ip link set "$want" up &&
              echo "twinwall-entrypoint: $dev ($cidr) is now $want"
          fi ;;
      esac
    done
  done
}

name_links
for pair in ${TWINWALL_LINKS:-}; do
  ip link show "${pair%%=*}" >/dev/null 2>&1 || { echo "twinwall-entrypoint: no interface with an address in ${pair#*=}* for ${pair%%=*}: is the container on that network?" >&2; exit 1; }
done
# A default route the container needs (the client via the inside virtual address), if given.
for route in ${TWINWALL_ROUTES:-}; do
  ip route replace "${route%%=*}" via "${route#*=}"
done
( set +e; while sleep 0.2; do name_links; done ) &
exec "$@"
