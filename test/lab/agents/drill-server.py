#!/usr/bin/env python3
"""Drill server (in the server namespace): TCP echo on PORT that prefixes each echoed line with
the client port it sees, and UDP echo on PORT that answers each probe with its 4-byte seq and the
source port it came from. Usage: drill-server.py ADDRESS PORT"""
import selectors, socket, struct, sys

addr, port = sys.argv[1], int(sys.argv[2])
sel = selectors.DefaultSelector()
lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind((addr, port))
lsock.listen(512)
lsock.setblocking(False)
sel.register(lsock, selectors.EVENT_READ, 'accept')
usock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
usock.bind((addr, port))
usock.setblocking(False)
sel.register(usock, selectors.EVENT_READ, 'udp')
bufs = {}
print('ready', flush=True)
while True:
    for key, _ in sel.select():
        if key.data == 'accept':
            c, peer = lsock.accept()
            c.setblocking(False)
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            bufs[c] = (b'', peer[1])
            sel.register(c, selectors.EVENT_READ, 'tcp')
        elif key.data == 'udp':
            while True:
                try:
                    d, peer = usock.recvfrom(64)
                except BlockingIOError:
                    break
                usock.sendto(d[:4] + struct.pack('!H', peer[1]), peer)
        else:
            c = key.fileobj
            try:
                d = c.recv(65536)
            except (ConnectionError, OSError):
                d = b''
            if not d:
                sel.unregister(c)
                c.close()
                bufs.pop(c, None)
                continue
            buf, p = bufs[c]
            buf += d
            out = b''
            while b'\n' in buf:
                line, buf = buf.split(b'\n', 1)
                out += b'%d %s\n' % (p, line)
            bufs[c] = (buf, p)
            try:
                c.sendall(out)
            except (BlockingIOError, ConnectionError, OSError):
                pass
