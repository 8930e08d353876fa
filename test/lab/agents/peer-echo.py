#!/usr/bin/env python3
"""Lab agent: answers every TCP connection and every UDP datagram on ADDR:PORT with the address the
packet came from ("peer IP:PORT"), so a test learns what source the far side of a NAT sees.
Usage: peer-echo.py ADDR PORT; serves TCP and UDP on the same port until killed."""
import socket
import sys
import threading

addr, port = sys.argv[1], int(sys.argv[2])


def tcp() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(16)
    while True:
        c, peer = s.accept()
        with c:
            c.sendall(f"peer {peer[0]}:{peer[1]}\n".encode())


def udp() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    while True:
        _, peer = s.recvfrom(2048)
        s.sendto(f"peer {peer[0]}:{peer[1]}\n".encode(), peer)


threading.Thread(target=udp, daemon=True).start()
tcp()
