#!/bin/sh
# Run by twinwall on each failover transition: NEW_ROLE OLD_ROLE REASON (roles: init, backup,
# master, fault), as keepalived's notify scripts. Keep it quick; it never delays the takeover.
logger -t twinwall-notify "failover: $2 -> $1 ($3)"
