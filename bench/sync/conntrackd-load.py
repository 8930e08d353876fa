#!/usr/bin/env python3
"""Load generator for bench/sync/conntrackd.ts: sends one small UDP datagram per 5-tuple from the
client namespace to the server through fw1, so that every datagram makes one new kernel conntrack
entry on fw1. Raw socket (IP_HDRINCL) with a prebuilt header: only the two port fields change.

Tuple i (0 <= i < 64000 * 40000) has source port 1024 + i % 64000 and destination port
10000 + i // 64000, so a run of N consecutive indices is N distinct entries and runs with disjoint
index ranges never share an entry.

Usage: conntrackd-load.py --src A --dst B --first I --count N [--rate R] [--workers W]
  --rate: datagrams per second over all workers (0: as fast as possible).
  --workers: processes (each sends an interleaved share of the indices).
Prints one JSON line: {"sent": N, "seconds": S, "start": T0, "end": T1} (wall clock, seconds).
Runs only inside a lab namespace (the harness starts it with ip netns exec)."""
import argparse
import ctypes
import json
import os
import signal
import socket
import struct
import sys
import time

PORTS = 64000


def header(src: str, dst: str) -> bytearray:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + 4, 0, 0x4000, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    udp = struct.pack("!HHHH", 0, 0, 8 + 4, 0)
    return bytearray(ip + udp + b"twcd")


def worker(args: argparse.Namespace, k: int, out) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    pkt = header(args.src, args.dst)
    addr = (args.dst, 0)
    pack = struct.pack_into
    send = sock.sendto
    w = args.workers
    idx = range(args.first + k, args.first + args.count, w)
    n = len(idx)
    rate = args.rate / w if args.rate > 0 else 0.0
    sent = 0
    t0 = time.time()
    if rate <= 0:
        for i in idx:
            pack("!HH", pkt, 20, 1024 + i % PORTS, 10000 + i // PORTS)
            while True:
                try:
                    send(pkt, addr)
                    break
                except (BlockingIOError, OSError) as e:  # ENOBUFS: queue full, retry this tuple
                    if getattr(e, "errno", None) not in (105, 11):
                        raise
                    time.sleep(0.0002)
            sent += 1
    else:
        # Paced: every 1 ms send what the schedule owes (catching up after a late wake-up).
        step = 0.001
        while sent < n:
            due = min(n, int((time.time() - t0) * rate) + 1)
            while sent < due:
                i = idx[sent]
                pack("!HH", pkt, 20, 1024 + i % PORTS, 10000 + i // PORTS)
                try:
                    send(pkt, addr)
                except OSError as e:
                    if e.errno not in (105, 11):
                        raise
                    time.sleep(0.0002)
                    continue
                sent += 1
            time.sleep(step)
    t1 = time.time()
    out.write(json.dumps({"sent": sent, "start": t0, "end": t1}) + "\n")
    out.flush()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--dst", required=True)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--rate", type=float, default=0)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    if args.first < 0 or args.count <= 0 or args.first + args.count > PORTS * 40000:
        sys.exit("conntrackd-load: --first/--count out of range")
    r, w = os.pipe()
    pids = []
    parent = os.getpid()
    for k in range(args.workers):
        pid = os.fork()
        if pid == 0:
            # Die with the parent (the harness kills it on timeout or cleanup).
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
            if os.getppid() != parent:
                os._exit(1)
            os.close(r)
            with os.fdopen(w, "w") as out:
                worker(args, k, out)
            os._exit(0)
        pids.append(pid)
    os.close(w)
    with os.fdopen(r) as inp:
        rows = [json.loads(l) for l in inp]
    failed = 0
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        failed += status != 0
    if failed or len(rows) != args.workers:
        sys.exit(f"conntrackd-load: {failed} worker(s) failed, {len(rows)} of {args.workers} reported")
    start = min(r["start"] for r in rows)
    end = max(r["end"] for r in rows)
    print(json.dumps({"sent": sum(r["sent"] for r in rows), "seconds": end - start, "start": start, "end": end}), flush=True)


if __name__ == "__main__":
    main()
