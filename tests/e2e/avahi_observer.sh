#!/bin/sh
# Runs avahi-daemon (with a private system D-Bus it needs for avahi-browse) in the current
# network namespace, in a private mount namespace so nothing of the host's /run is touched:
#   unshare -m sh avahi_observer.sh WORKDIR HOSTNAME SECONDS
# Writes WORKDIR/first (avahi-browse -rtp _streamhub._tcp after a few seconds), then
# WORKDIR/second (the same SECONDS later) and WORKDIR/avahi.log (the daemon's log).
set -eu
W=$1; HOST=$2; SECS=$3
mount --make-rprivate /
mkdir -p /run/dbus /run/avahi-daemon
mount -t tmpfs tmpfs /run/dbus
mount -t tmpfs tmpfs /run/avahi-daemon
cat >"$W/bus.conf" <<'XML'
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/>
  </policy>
</busconfig>
XML
cat >"$W/avahi.conf" <<CONF
[server]
host-name=$HOST
use-ipv4=yes
use-ipv6=no
allow-interfaces=eth0
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
[reflector]
[rlimits]
CONF
dbus-daemon --config-file="$W/bus.conf" --fork --print-pid >"$W/dbus.pid"
avahi-daemon -f "$W/avahi.conf" --no-drop-root --no-chroot --no-rlimits --no-proc-title \
  >"$W/avahi.log" 2>&1 &
AVAHI=$!
trap 'kill $AVAHI 2>/dev/null; kill $(cat "$W/dbus.pid") 2>/dev/null' EXIT
sleep 4
timeout 20 avahi-browse -rtp _streamhub._tcp >"$W/first" 2>>"$W/avahi.log" || true
sleep "$SECS"
timeout 20 avahi-browse -rtp _streamhub._tcp >"$W/second" 2>>"$W/avahi.log" || true
