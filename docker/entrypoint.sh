#!/bin/sh
# Entrypoint of the compose drill's containers.
#
# TWINWALL_LINKS="inside0=172.31.1. outside0=172.31.2. sync0=172.31.3." (name=address prefix):
# Docker names a container's interfaces eth0, eth1, ... in an order compose does not promise, and a
# network connected again comes back as a new ethN. So each ethN with an address in one of those
# prefixes gets a macvlan in passthru mode on top (the same MAC, every frame) named as the config
# says, and its address moves there; now and, in the background, whenever a network is connected
# again. The ethN keeps Docker's name so that `docker network disconnect` still finds and removes
# it (and the macvlan goes with it); renaming ethN itself would leave the link behind.
#
# TWINWALL_PROC_SYS=rw (the firewalls): the daemon sets accept_local on its data interfaces, and
# Docker mounts /proc/sys read-only; with CAP_SYS_ADMIN it is remounted read-write here (the
# container's own network sysctls), then the capability is dropped for everything that follows.
#
# TWINWALL_ROUTES="default=172.31.1.1" (destination=gateway): routes the container needs (the
# client through the inside virtual address). Then it runs the command.
set -eu

if [ "${TWINWALL_PROC_SYS:-}" = rw ]; then
  mount -o remount,rw /proc/sys || {
    echo "twinwall-entrypoint: cannot remount /proc/sys read-write: give the container cap_add SYS_ADMIN (and security_opt apparmor=unconfined where AppArmor runs)" >&2
    exit 1
  }
  TWINWALL_PROC_SYS=done exec setpriv --inh-caps -sys_admin --bounding-set -sys_admin "$0" "$@"
fi

attach_links() {
  ip -o -4 addr show | while read -r _ dev _ cidr _; do
    for pair in ${TWINWALL_LINKS:-}; do
      want=${pair%%=*} prefix=${pair#*=}
      case "$cidr" in
        "$prefix"*)
          [ "$dev" = "$want" ] && continue
          # A macvlan left from before a disconnect (its ethN gone) would be in the way.
          if ip link show "$want" >/dev/null 2>&1; then ip link del "$want"; fi
          ip link add "$want" link "$dev" type macvlan mode passthru &&
            ip addr del "$cidr" dev "$dev" && ip addr add "$cidr" dev "$want" && ip link set "$want" up &&
            echo "twinwall-entrypoint: $want on $dev ($cidr)" ;;
      esac
    done
  done
}

attach_links
for pair in ${TWINWALL_LINKS:-}; do
  ip link show "${pair%%=*}" >/dev/null 2>&1 || { echo "twinwall-entrypoint: no interface with an address in ${pair#*=}* for ${pair%%=*}: is the container on that network?" >&2; exit 1; }
done
for route in ${TWINWALL_ROUTES:-}; do
  ip route replace "${route%%=*}" via "${route#*=}"
done
( set +e; while sleep 0.2; do attach_links; done ) &
exec "$@"
