#!/usr/bin/env python3
"""FTP client lab agent (test/lab/helpers-failover.test.ts): one JSON line in, one JSON line out,
so a test can stop a session between its steps (fail the firewall over after a PASV reply, before
the data connection opens). Requests:

  {"op": "open", "host": "10.50.2.10"}              login anonymous
  {"op": "announce", "mode": "pasv"|"epsv"|"port"|"eprt", "self": "10.50.1.10"}
                                                     PASV/EPSV: the reply's port; PORT/EPRT: listen, announce
  {"op": "retr", "file": "big.bin", "rate": 0}      open the announced data connection, RETR, read it
                                                     all (at most `rate` bytes/s when > 0): sha256, bytes
  {"op": "cmd", "line": "NOOP"}                      any command: its reply
  {"op": "quit"}
Every socket has a timeout: nothing here waits for ever.
"""
import ftplib
import hashlib
import json
import socket
import sys
import time

ftp = None
announced = None  # ("pasv", host, port) or ("port", listening socket)


def answer(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def announce(mode, me):
    global announced
    if mode == "pasv":
        host, port = ftplib.parse227(ftp.sendcmd("PASV"))
        announced = ("pasv", host, port)
        return {"port": port}
    if mode == "epsv":
        host, port = ftplib.parse229(ftp.sendcmd("EPSV"), ftp.sock.getpeername())
        announced = ("pasv", host, port)
        return {"port": port}
    lsock = socket.create_server((me, 0))
    lsock.settimeout(20)
    port = lsock.getsockname()[1]
    if mode == "port":
        ftp.sendport(me, port)
    else:
        ftp.sendeprt(me, port)
    announced = ("port", lsock)
    return {"port": port}


def retr(name, rate):
    global announced
    kind = announced[0]
    if kind == "pasv":
        data = socket.create_connection((announced[1], announced[2]), timeout=20)
        reply = ftp.sendcmd("RETR " + name)
    else:
        reply = ftp.sendcmd("RETR " + name)
        data, _ = announced[1].accept()
        data.settimeout(20)
        announced[1].close()
    announced = None
    h = hashlib.sha256()
    n = 0
    t0 = time.monotonic()
    while True:
        chunk = data.recv(65536)
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
        if rate > 0:
            ahead = n / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    data.close()
    done = ftp.voidresp()
    return {"sha256": h.hexdigest(), "bytes": n, "start": reply, "end": done}


for line in sys.stdin:
    req = json.loads(line)
    try:
        op = req["op"]
        if op == "open":
            ftp = ftplib.FTP(req["host"], timeout=20)
            ftp.login()
            answer(ok=True)
        elif op == "announce":
            answer(ok=True, **announce(req["mode"], req.get("self", "")))
        elif op == "retr":
            answer(ok=True, **retr(req["file"], req.get("rate", 0)))
        elif op == "cmd":
            answer(ok=True, reply=ftp.sendcmd(req["line"]))
        elif op == "quit":
            answer(ok=True, reply=ftp.quit())
            break
        else:
            answer(ok=False, error="unknown op " + op)
    except Exception as e:  # a test failure to report, not an agent crash
        answer(ok=False, error="%s: %s" % (type(e).__name__, e))
