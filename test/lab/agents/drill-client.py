#!/usr/bin/env python3
"""Drill client (in the client namespace): FLOWS long-lived TCP connections to SERVER:PORT, each
sending a small message every 20 ms and reading its echo, and a UDP probe at 1 kHz, for SECONDS.
Prints one JSON report: per flow whether it survived (no error, echoes flowing at the end), the
server-side ports it was seen from, the longest stall (ms between echoes); for the probe the
datagrams sent and answered, the longest run of lost probes (ms at 1 kHz) and the source ports
the server saw. Prints 'ready' once every flow is connected.
Usage: drill-client.py SERVER PORT FLOWS SECONDS"""
import json, selectors, socket, struct, sys, time

server, port, nflows, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
sel = selectors.DefaultSelector()
flows = []
for i in range(nflows):
    s = socket.create_connection((server, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setblocking(False)
    f = {'sock': s, 'buf': b'', 'last': None, 'stall': 0.0, 'ports': set(), 'error': None, 'echoes': 0, 'next': 0.0, 'n': 0}
    flows.append(f)
    sel.register(s, selectors.EVENT_READ, f)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.connect((server, port))
u.setblocking(False)
sel.register(u, selectors.EVENT_READ, 'udp')
print('ready', flush=True)
start = time.monotonic()
for f in flows:
    f['last'] = start
sent = 0
got = set()
uports = set()
next_probe = start
end = start + seconds
while True:
    now = time.monotonic()
    if now >= end:
        break
    while next_probe <= now:
        try:
            u.send(struct.pack('!I', sent))
        except OSError:
            pass
        sent += 1
        next_probe += 0.001
    for f in flows:
        if f['error'] is None and f['next'] <= now:
            try:
                f['sock'].send(b'm%d\n' % f['n'])
                f['n'] += 1
            except BlockingIOError:
                pass
            except OSError as e:
                f['error'] = str(e)
            f['next'] = now + 0.02
    for key, _ in sel.select(timeout=max(0.0, min(next_probe, end) - time.monotonic())):
        if key.data == 'udp':
            while True:
                try:
                    d = u.recv(64)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                if len(d) >= 6:
                    got.add(struct.unpack('!I', d[:4])[0])
                    uports.add(struct.unpack('!H', d[4:6])[0])
            continue
        f = key.data
        try:
            d = f['sock'].recv(65536)
        except BlockingIOError:
            continue
        except OSError as e:
            f['error'] = str(e)
            sel.unregister(f['sock'])
            continue
        if not d:
            f['error'] = 'closed by the peer'
            sel.unregister(f['sock'])
            continue
        t = time.monotonic()
        f['buf'] += d
        while b'\n' in f['buf']:
            line, f['buf'] = f['buf'].split(b'\n', 1)
            f['ports'].add(int(line.split(b' ')[0]))
            f['echoes'] += 1
            f['stall'] = max(f['stall'], t - f['last'])
            f['last'] = t
now = time.monotonic()
# Probes sent in the last 100 ms may still be on their way: judge the ones before.
judged = max(0, sent - 100)
longest = run = 0
for s in range(judged):
    if s in got:
        run = 0
    else:
        run += 1
        longest = max(longest, run)
report = {
    'flows': [{'survived': f['error'] is None and now - f['last'] < 0.5, 'error': f['error'], 'ports': sorted(f['ports']),
               'stallMs': round(max(f['stall'], now - f['last']) * 1000, 1), 'echoes': f['echoes']} for f in flows],
    'probe': {'sent': judged, 'answered': len([s for s in got if s < judged]), 'longestLossMs': longest, 'ports': sorted(uports)},
}
print(json.dumps(report), flush=True)
