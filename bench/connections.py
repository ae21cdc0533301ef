#!/usr/bin/env python3
"""Connection scale check for one sessions replica: opens N loopback Seneca TCP
connections and keeps them all open, then sends one get_session_by_id on every one
and checks that each reply names the session. Prints the service's RSS before and
after, and the memory per connection. Used by bench/connections.sh.

Usage: connections.py HOST PORT SERVICE_PID N
"""

import asyncio
import json
import sys
import time

ORIGIN = "conncheck/1/1/3.38.0/-"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def request(mid, cmd, args):
    act = {"role": "sessions", "version": 1, "cmd": cmd, **args, "custom$": {}}
    msg = {
        "id": f"{mid:012d}/{mid:012d}",
        "kind": "act",
        "origin": ORIGIN,
        "track": [ORIGIN],
        "time": {"client_sent": int(time.time() * 1000)},
        "act": act,
        "sync": True,
    }
    return (json.dumps(msg, separators=(",", ":")) + "\n").encode()


async def call(reader, writer, mid, cmd, args):
    writer.write(request(mid, cmd, args))
    await writer.drain()
    line = await reader.readline()
    if not line:
        raise RuntimeError("connection closed without a reply")
    return json.loads(line)


async def main():
    host, port, pid, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

    # One session that every connection will ask for.
    r, w = await asyncio.open_connection(host, port)
    reply = await call(r, w, 1, "open_session", {"user_id": "conncheck", "address": "127.0.0.1"})
    sid = reply["res"]["id"]
    w.close()
    await asyncio.sleep(0.5)
    before = rss_kib(pid)

    conns = []
    t0 = time.monotonic()
    batch = 500  # stay under the listen backlog
    for start in range(0, n, batch):
        conns += await asyncio.gather(
            *(asyncio.open_connection(host, port) for _ in range(start, min(n, start + batch)))
        )
    t_connect = time.monotonic() - t0

    async def one(i, rw):
        reader, writer = rw
        rep = await asyncio.wait_for(
            call(reader, writer, i + 2, "get_session_by_id", {"session_id": sid}), 60
        )
        return (rep.get("res") or {}).get("id") == sid

    t0 = time.monotonic()
    results = await asyncio.gather(*(one(i, c) for i, c in enumerate(conns)), return_exceptions=True)
    t_answer = time.monotonic() - t0
    good = sum(1 for x in results if x is True)
    errors = [x for x in results if x is not True][:3]
    await asyncio.sleep(0.5)
    after = rss_kib(pid)
    with open(f"/proc/{pid}/status") as f:
        threads = next(l.split()[1] for l in f if l.startswith("Threads:"))
    for _, w in conns:
        w.close()

    out = {
        "connections": n,
        "answered_correctly": good,
        "failures_sample": [repr(e) for e in errors],
        "connect_s": round(t_connect, 2),
        "answer_all_s": round(t_answer, 2),
        "rss_before_kib": before,
        "rss_after_kib": after,
        "bytes_per_connection": round((after - before) * 1024 / n),
        "service_threads": int(threads),
    }
    print(json.dumps(out, indent=2))
    sys.exit(0 if good == n else 1)


asyncio.run(main())
