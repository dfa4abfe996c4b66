#!/usr/bin/env python3
"""A stand-in OpenID Connect provider for tests: serves the files of a directory over HTTPS
(its discovery document and key set, written by the test), one request per connection,
and logs each request. With --hang it accepts connections and never answers (a provider
that is down behind a load balancer).

Usage: oidc_provider.py HOST PORT CERT KEY DIR [--hang]
"""
import http.server
import os
import socket
import ssl
import sys
import time


class Files(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):
        print("provider: " + fmt % args, flush=True)


def main():
    host, port, cert, key, root = sys.argv[1:6]
    hang = "--hang" in sys.argv[6:]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if hang:
        sock = socket.create_server((host, int(port)))
        print("ready", flush=True)
        held = []
        while True:
            conn, _ = sock.accept()
            held.append(conn)
            print("provider: holding a connection", flush=True)
    os.chdir(root)
    server = http.server.HTTPServer((host, int(port)), Files)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        time.sleep(0)
