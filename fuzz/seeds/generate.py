#!/usr/bin/env python3
"""Writes the seed corpus: request lines exactly as a v8 (seneca 3.38 +
seneca-transport 8.3) and a v2 (seneca 3.6 + seneca-transport 2.4) client write them,
for every command. Run from fuzz/: python3 seeds/generate.py"""
import json
import os

V8_ORIGIN = "q4vv8v2egusy/1795771379897/9928/3.38.0/-"
V2_ORIGIN = "294xxh0vot2a/1795771390829/10188/3.6.0/-"

# "$S" stands for the last opened session's id (see fuzz_targets/commands.rs).
ACTS = {
    "get_sessions": {"filter": {"user_id": "u-42", "active": True,
                                "from_time": "2026-11-27T08:17:50.123Z",
                                "to_time": 1795771380098},
                     "paging": {"skip": 0, "take": 20, "total": True}},
    "get_session_by_id": {"session_id": "$S"},
    "open_session": {"user_id": "u-42", "user_name": "Ann", "address": "10.0.0.7",
                     "client": "web", "user": {"roles": ["admin"]},
                     "data": {"cart": [1, 2.5, "\u00e9\U0001F600", None]}},
    "store_session_data": {"session_id": "$S", "data": {"cart": [1, 2]}},
    "update_session_user": {"session_id": "$S", "user": {"name": "Ann"}},
    "close_session": {"session_id": "$S"},
    "close_expired_sessions": {},
    "delete_session": {"session_id": "$S"},
    "delete_session_by_id": {"session_id": "$S"},
}


def line(client, n, cmd, args):
    origin = V8_ORIGIN if client == "v8" else V2_ORIGIN
    mid, cid = f"{client}act{n:05d}x", f"{client}tx{n:06d}y"
    act = {"role": "sessions", "version": 1, "cmd": cmd, **args}
    if client == "v8":
        act["custom$"] = {}
    msg = {
        "id": f"{mid}/{cid}", "kind": "act", "origin": origin, "track": [origin],
        "time": {"client_sent": 1795771380098 + n}, "act": act, "sync": True,
        "msg$": {"vin": 1, "sid": origin, "out": True, "mid": mid, "cid": cid,
                 "snc": True, "pat": ""},
    }
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def write(target, name, data):
    os.makedirs(f"seeds/{target}", exist_ok=True)
    with open(f"seeds/{target}/{name}", "wb") as f:
        f.write(data)


# The captured lines of PROTOCOL.md section 2, verbatim.
VERBATIM = {
    "v8": '{"id":"7xsaki84amv6/01s4jt5vfv2c","kind":"act","origin":"q4vv8v2egusy/1795771379897/9928/3.38.0/-","track":["q4vv8v2egusy/1795771379897/9928/3.38.0/-"],"time":{"client_sent":1795771380098},"act":{"role":"sessions","version":1,"cmd":"get_session","id":"abc","custom$":{}},"sync":true,"msg$":{"vin":1,"sid":"q4vv8v2egusy/1795771379897/9928/3.38.0/-","out":true,"mid":"7xsaki84amv6","cid":"01s4jt5vfv2c","snc":true,"pat":""}}',
    "v2": '{"id":"sdz8mh6p4dul/t55paazvpqa5","kind":"act","origin":"294xxh0vot2a/1795771390829/10188/3.6.0/-","track":["294xxh0vot2a/1795771390829/10188/3.6.0/-"],"time":{"client_sent":1795771390911},"act":{"role":"sessions","version":1,"cmd":"get_session","id":"abc"},"sync":true,"msg$":{"vin":1,"sid":"294xxh0vot2a/1795771390829/10188/3.6.0/-","out":true,"mid":"sdz8mh6p4dul","cid":"t55paazvpqa5","snc":true,"pat":""}}',
}

for client in ("v8", "v2"):
    write("protocol", f"{client}_captured", VERBATIM[client].encode())
    opener = line(client, 0, "open_session", ACTS["open_session"])
    for n, (cmd, args) in enumerate(ACTS.items(), 1):
        one = line(client, n, cmd, args)
        write("protocol", f"{client}_{cmd}", one.rstrip(b"\n"))
        # Commands run after an open, so "$S" names a real session.
        write("commands", f"{client}_{cmd}", opener + one)
        # Splitter: two parameter bytes (line limit, read size), then the stream.
        write("line_splitter", f"{client}_{cmd}", bytes([0x40, 0x13]) + opener + one)
    crlf = line(client, 99, "get_sessions", {}).replace(b"\n", b"\r\n")
    write("line_splitter", f"{client}_crlf_blank", bytes([0x02, 0x31]) + b"\n\r\n" + crlf + crlf)
