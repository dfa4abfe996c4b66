#!/usr/bin/env bash
# Installs what building and testing ferroconnect needs, when it is missing.
# Sourced by scripts/test.sh and scripts/demo.sh; safe to run on its own.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "ferroconnect's tests and demo create network namespaces and tun devices: run as root" >&2
    exit 1
fi

packages=(ocserv openconnect vpnc-scripts iperf3 libssl-dev pkg-config iproute2 iputils-ping gnutls-bin nftables
          stoken oathtool libpcsclite-dev python3-prometheus-client libsocket-wrapper
          haproxy slirp socat squid tinyproxy dante-server ocproxy python3 softhsm2
          p11-kit-modules swtpm swtpm-tools tpm2-openssl libtss2-tcti-swtpm0
          libkrb5-dev krb5-kdc krb5-admin-server krb5-user krb5-k5tls gss-ntlmssp
          libpam0g-dev libpam-wrapper libnss-wrapper libpam-oath freeradius)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "Installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # The proxies' packages would start system-wide daemons where an init system runs;
    # the tests start their own in namespaces.
    no_start=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        no_start=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ -z "$no_start" ] || rm -f /usr/sbin/policy-rc.d
fi
# The package may start a system ocserv on hosts with an init system; ours use their own
# namespaces and ports, so it does no harm, but it is not needed either.
[ -e /dev/net/tun ] || { mkdir -p /dev/net && mknod /dev/net/tun c 10 200; }
