#!/usr/bin/env python3
"""Lab agent: python3 -m http.server without its reverse DNS lookup. HTTPServer.server_bind calls
socket.getfqdn(address), a DNS query that from a lab namespace goes out through the firewall and
can wait seconds for an answer that never comes (dropped by the node, or its ICMP error rate
limited), so the server listens late. Usage: http-serve.py ADDR PORT DIRECTORY."""
import functools
import http.server
import socket
import socketserver
import sys

addr, port, directory = sys.argv[1], int(sys.argv[2]), sys.argv[3]


class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[0], self.server_address[1]


handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
Server((addr, port), handler).serve_forever()
