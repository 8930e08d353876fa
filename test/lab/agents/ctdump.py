#!/usr/bin/env python3
"""Lab agent: on each input line, prints one JSON line with the namespace's kernel conntrack table
(/proc/net/nf_conntrack lines) and the packet counter of the FORWARD rule that drops ctstate
INVALID (from iptables-save -c)."""
import json
import re
import subprocess
import sys

for _ in sys.stdin:
    with open("/proc/net/nf_conntrack") as f:
        ct = [l.strip() for l in f]
    saved = subprocess.run(["iptables-save", "-c", "-t", "filter"], capture_output=True, text=True).stdout
    invalid = 0
    for l in saved.splitlines():
        if "INVALID" in l and l.startswith("["):
            invalid += int(re.match(r"\[(\d+):", l).group(1))
    print(json.dumps({"ct": ct, "invalid": invalid}), flush=True)
