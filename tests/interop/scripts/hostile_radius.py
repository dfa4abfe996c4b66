#!/usr/bin/env python3
"""A hostile RADIUS server for tests: to every Access-Request it first sends junk (a short
datagram, an answer signed with the wrong secret, an oversized datagram, a reply with a
truncated attribute), then a correctly signed Access-Reject. A client must drop the junk,
say so in its log, and take the reject.

Usage: hostile_radius.py PORT SECRET
"""
import hashlib
import socket
import sys


def signed(code, request, attributes, secret):
    length = 20 + len(attributes)
    head = bytes([code, request[1]]) + length.to_bytes(2, "big")
    digest = hashlib.md5(head + request[4:20] + attributes + secret).digest()
    return head + digest + attributes


def main():
    port, secret = int(sys.argv[1]), sys.argv[2].encode()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    print("ready", flush=True)
    while True:
        request, peer = sock.recvfrom(4096)
        if len(request) < 20:
            continue
        reject = bytes([18, 9]) + b"go away"
        junk = [
            b"\x03\x00\x00",
            signed(2, request, b"", b"not-the-secret"),
            signed(3, request, b"\x12\xff" + b"x" * 5000, secret)[:5100],
            signed(3, request, b"\x12\x40short", secret),
        ]
        for datagram in junk:
            sock.sendto(datagram, peer)
        sock.sendto(signed(3, request, reject, secret), peer)
        print("answered", flush=True)


main()
