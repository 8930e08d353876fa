#!/usr/bin/env python3
"""Lab agent: on each input line, prints one JSON line with the namespace's kernel conntrack table
(/proc/net/nf_conntrack lines) and the packet counters of the FORWARD rules that match each
ctstate (from iptables-save -c), so the test learns the state the kernel gave each packet."""
import json
import re
import subprocess
import sys

for _ in sys.stdin:
    with open("/proc/net/nf_conntrack") as f:
        ct = [l.strip() for l in f]
    saved = subprocess.run(["iptables-save", "-c", "-t", "filter"], capture_output=True, text=True).stdout
    counters = {}
    for l in saved.splitlines():
        m = re.match(r"\[(\d+):\d+\] -A FORWARD .*--ctstate (\w+)", l)
        if m:
            counters[m.group(2)] = counters.get(m.group(2), 0) + int(m.group(1))
    print(json.dumps({"ct": ct, "counters": counters}), flush=True)
