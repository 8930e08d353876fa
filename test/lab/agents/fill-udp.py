#!/usr/bin/env python3
"""Lab agent: fill a firewall's connection table with real packets. Sends COUNT one-byte UDP
datagrams from SRC to DST through a raw socket (IP_HDRINCL, UDP checksum 0), one per 5-tuple:
tuple i (from START) has source port SPORT_LO + i % NSPORTS and destination port
DPORT_LO + i // NSPORTS, paced at RATE packets/s (the firewall's queue drops what it cannot take: a
burst must not outrun it). Runs inside a test namespace.

usage: fill-udp.py SRC DST SPORT_LO NSPORTS DPORT_LO, then lines "START COUNT RATE" on standard
input, each answered "sent COUNT in S s" once sent.
"""
import socket
import struct
import sys
import time

src, dst = sys.argv[1], sys.argv[2]
sport_lo, nsports, dport_lo = (int(x) for x in sys.argv[3:6])

sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
# IPv4 header (the kernel fills in the total length, the id and the checksum), UDP header, 1 byte.
pkt = bytearray(struct.pack('!BBHHHBBH4s4sHHHHB', 0x45, 0, 29, 0, 0x4000, 64, 17, 0,
                            socket.inet_aton(src), socket.inet_aton(dst), 0, 0, 9, 0, 0x2a))
addr = (dst, 0)
batch = 32


def send(start, count, rate):
    t0 = time.monotonic()
    sent = 0
    while sent < count:
        n = min(batch, count - sent)
        for i in range(start + sent, start + sent + n):
            struct.pack_into('!HH', pkt, 20, sport_lo + i % nsports, dport_lo + i // nsports)
            while True:
                try:
                    sock.sendto(pkt, addr)
                    break
                except OSError as e:
                    if e.errno not in (11, 105):  # EAGAIN, ENOBUFS: the link's queue is full
                        raise
                    time.sleep(0.0005)
        sent += n
        ahead = sent / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    return time.monotonic() - t0


print("ready", flush=True)
for line in sys.stdin:
    start, count, rate = (int(x) for x in line.split())
    print(f"sent {count} in {send(start, count, rate):.2f} s", flush=True)
