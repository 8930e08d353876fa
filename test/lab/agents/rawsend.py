#!/usr/bin/env python3
"""Lab agent: reads hex-encoded IPv4 packets, one per line, and sends each as it is through a raw
socket (IP_HDRINCL), answering "ok" or "error <why>" per line. Runs inside a test namespace."""
import socket
import sys

sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
for line in sys.stdin:
    try:
        pkt = bytes.fromhex(line.strip())
        dst = socket.inet_ntoa(pkt[16:20])
        sock.sendto(pkt, (dst, 0))
        print("ok", flush=True)
    except Exception as e:  # report, never die: the test reads the reason
        print(f"error {e}", flush=True)
