#!/usr/bin/env python3
"""Redis memory per session, for one shape of sessions: used by bench/memory.sh.

`shape` creates N sessions through the running service (open_session over Seneca TCP,
so the keys are laid out exactly as the service lays them out), measures the growth
of Redis' INFO used_memory, and breaks it down by key kind: MEMORY USAGE ... SAMPLES 0
of every key of the prefix (every element counted), plus the allocator's rounding of
dict entries that MEMORY USAGE leaves out, summed per kind; with the main key table's
slots, the kinds add up to the used_memory delta. With --variants it also measures
what other layouts would cost: a sample of the keys is copied, as is and rewritten
(shorter field names, binary ids, ...) or under other encoding thresholds, and the
copies are compared. Writes one JSON document.

`table` turns the JSON documents of several shapes into the Markdown tables of
docs/benchmarks.md.

Usage: memory.py shape NAME SERVICE_PORT REDIS_PORT PREFIX N OUT.json [--variants]
       memory.py table SHAPE.json...
"""

import asyncio
import hashlib
import json
import socket
import sys
import time

HOST = "127.0.0.1"
ORIGIN = "memcheck/1/1/3.38.0/-"

# The shapes: sessions per user, bytes of data per session (compact JSON), closed or not.
SHAPES = {
    "one": {"per_user": 1, "data": 0, "close": False,
            "title": "1 session per user"},
    "ten": {"per_user": 10, "data": 0, "close": False,
            "title": "10 sessions per user"},
    "data": {"per_user": 1, "data": 1024, "close": False,
             "title": "1 per user, 1 KiB data"},
    "closed": {"per_user": 1, "data": 0, "close": True,
               "title": "1 per user, closed"},
}

# Key kinds, by what follows the bucket base `P:{NN}:` (see src/store/redis/mod.rs).
KINDS = [
    ("s", "session hash `s:<id>`"),
    ("ua", "user index, active `ua:<user>`"),
    ("uc", "user index, closed `uc:<user>`"),
    ("oa", "bucket index, active `oa`"),
    ("oc", "bucket index, closed `oc`"),
    ("exp", "expiry index `exp`"),
    ("ret", "retention index `ret`"),
    ("reuse", "reuse map `reuse`"),
]
PER_SESSION_KINDS = ("s", "ua", "uc")  # one key per session or per user
SAMPLE_KEYS = 2000  # per-session / per-user keys copied per variant
SAMPLE_BUCKETS = 64  # of the 64 keys of each bucket-level kind (all of them)


# --- Redis: a minimal RESP2 client, binary-safe, pipelined -----------------------

class RedisError(Exception):
    pass


class Redis:
    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port))
        self.rd = self.sock.makefile("rb", buffering=1 << 16)

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def read(self):
        line = self.rd.readline()
        if not line:
            raise RedisError("connection closed")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest
        if t == b"-":
            return RedisError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.rd.read(n + 2)
            return data[:-2]
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RedisError(f"unexpected reply {line!r}")

    def pipeline(self, cmds, chunk=1000):
        out = []
        for i in range(0, len(cmds), chunk):
            part = cmds[i:i + chunk]
            self.sock.sendall(b"".join(self.encode(c) for c in part))
            out.extend(self.read() for _ in part)
        for r in out:
            if isinstance(r, RedisError):
                raise r
        return out

    def call(self, *args):
        return self.pipeline([args])[0]

    def info_memory(self):
        text = self.call("INFO", "memory").decode()
        return dict(l.split(":", 1) for l in text.splitlines() if ":" in l)

    def used_memory(self):
        return int(self.info_memory()["used_memory"])

    def scan(self, pattern):
        cursor, keys = b"0", []
        while True:
            cursor, batch = self.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            keys.extend(batch)
            if cursor == b"0":
                return keys


# --- The service: pipelined Seneca TCP requests ----------------------------------

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


async def send_all(port, cmd, arg_list, conns=4, depth=128):
    """Sends one `cmd` per element of arg_list, `depth` in flight on each of `conns`
    connections; returns the `res` of every reply, in order. Any error stops."""
    results = [None] * len(arg_list)
    next_i = 0

    async def worker():
        nonlocal next_i
        reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 22)
        while next_i < len(arg_list):
            lo, hi = next_i, min(len(arg_list), next_i + depth)
            next_i = hi
            writer.write(b"".join(request(i + 1, cmd, arg_list[i]) for i in range(lo, hi)))
            await writer.drain()
            for _ in range(lo, hi):
                line = await reader.readline()
                if not line:
                    raise RuntimeError(f"{cmd}: the service closed the connection")
                rep = json.loads(line)
                err = rep.get("error")
                if err or not isinstance(rep.get("res"), dict):
                    raise RuntimeError(f"{cmd}: unexpected reply {line[:300]!r}")
                i = int(rep["id"].split("/")[0]) - 1
                results[i] = rep["res"]
        writer.close()

    await asyncio.gather(*(worker() for _ in range(conns)))
    return results


def data_of_size(n, i):
    """Compact JSON text of exactly n bytes (n >= 32), different for every session."""
    head = '{"cart":[%d,%d],"pad":"' % (i, i * 7 % 1000)
    return json.loads(head + "x" * (n - len(head) - 2) + '"}')


def open_args(i, per_user, data_bytes):
    user = i // per_user
    args = {
        # 24 hex characters, like the ObjectId a Seneca/MongoDB application uses.
        "user_id": hashlib.sha1(b"user%d" % user).hexdigest()[:24],
        "user_name": f"User {user:06d}",
        # Every session its own address, so reuse never merges them.
        "address": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
        "client": "shop-web",
    }
    if data_bytes:
        args["data"] = data_of_size(data_bytes, i)
    return args


# --- Measuring ----------------------------------------------------------------

def kind_of(key, prefix):
    # P:{NN}:rest
    rest = key[len(prefix) + 6:]
    for k in ("s:", "ua:", "uc:"):
        if rest.startswith(k.encode()):
            return k[:-1]
    return rest.decode()


def settle(r, quiet_bytes=65536, max_s=20):
    """used_memory once it stops moving (client buffers released, rehashing done)."""
    last = r.used_memory()
    for _ in range(max_s):
        time.sleep(1)
        now = r.used_memory()
        if abs(now - last) < quiet_bytes:
            return now
        last = now
    return last


# jemalloc has no 24-byte size class: a dict entry (24 bytes) takes 32 and a dict
# (56 bytes) takes 64, but MEMORY USAGE counts their sizeof. Added back here, so the
# kinds add up to the used_memory delta.
ENTRY_SLACK = 8
DICT_SLACK = 8


def usage(r, keys):
    """Bytes the keys take: MEMORY USAGE ... SAMPLES 0 (every element), plus the
    rounding of dict entries it leaves out (the key's entry in the main key table,
    and every element of a hashtable hash or a skiplist sorted set). Returns the total
    and the encodings seen."""
    sizes = r.pipeline([("MEMORY", "USAGE", k, "SAMPLES", 0) for k in keys])
    encs = r.pipeline([("OBJECT", "ENCODING", k) for k in keys])
    dicts = [(k, e) for k, e in zip(keys, encs) if e in (b"hashtable", b"skiplist")]
    lens = r.pipeline([("HLEN" if e == b"hashtable" else "ZCARD", k) for k, e in dicts])
    slack = ENTRY_SLACK * (len(keys) + sum(lens)) + DICT_SLACK * len(dicts)
    return sum(sizes) + slack, {e.decode() for e in encs}


def breakdown(r, prefix):
    keys = r.scan(prefix + ":{*")
    by_kind = {}
    for k in keys:
        by_kind.setdefault(kind_of(k, prefix.encode()), []).append(k)
    out = {}
    for kind, ks in sorted(by_kind.items()):
        ks.sort()
        size, encs = usage(r, ks)
        out[kind] = {"keys": len(ks), "bytes": size, "encodings": sorted(encs)}
    return out, by_kind


def main_table_bytes(r):
    """The main key table's buckets (8 bytes a slot): MEMORY STATS' overhead of the
    main hash table less what it counts per key (a dict entry and a key object)."""
    stats = r.call("MEMORY", "STATS")
    fields = dict(zip(stats[0::2], stats[1::2]))
    db = fields.get(b"db.0")
    if not db:
        return 0
    main = dict(zip(db[0::2], db[1::2]))[b"overhead.hashtable.main"]
    return main - int(fields[b"keys.count"]) * (24 + 16)


# --- Variants: the same content in another layout, on copies ----------------------

SHORT_NAMES = {b"id": b"i", b"user_id": b"u", b"user_name": b"n", b"active": b"a",
               b"open_time": b"o", b"request_time": b"r", b"close_time": b"c",
               b"address": b"d", b"client": b"l", b"user": b"p", b"data": b"j",
               b"rk": b"k"}


def bin_id(x):
    return bytes.fromhex(x.decode())


def rk_digest(x):
    return hashlib.blake2b(x, digest_size=16).digest()


def rename_key(key, prefix, opts):
    # The copy's name has the original's length: '~' instead of the first byte (or,
    # for a one-character prefix, instead of the whole prefix).
    kind = kind_of(key, prefix)
    key = b"~" + key[len(prefix) if opts.get("short_prefix") else 1:]
    if opts.get("binary_ids") and kind == "s":
        key = key[:-32] + bin_id(key[-32:])
    return key


def transform(kind, pairs, opts):
    """pairs: [(field, value)] of a hash or [(member, score)] of a zset."""
    if kind == "s":
        out = []
        for f, v in pairs:
            if opts.get("no_id_active") and f in (b"id", b"active"):
                continue
            if opts.get("binary_ids") and f == b"id":
                v = bin_id(v)
            if opts.get("rk_digest") and f == b"rk":
                v = rk_digest(v)
            if opts.get("short_names"):
                f = SHORT_NAMES.get(f, f)
            out.append((f, v))
        return out
    if kind == "reuse":
        return [(rk_digest(f) if opts.get("rk_digest") else f,
                 bin_id(v) if opts.get("binary_ids") else v) for f, v in pairs]
    # Sorted sets: members are session ids.
    if opts.get("binary_ids"):
        return [(bin_id(m), s) for m, s in pairs]
    return pairs


ALL = ("s", "ua", "uc", "oa", "oc", "exp", "ret", "reuse")
ZSETS = ("ua", "uc", "oa", "oc", "exp", "ret")
# name, title, rewrite options, config set while copying, kinds it can change (the
# other kinds cost what their plain copies cost).
VARIANTS = [
    ("copy", "the same keys copied as they are (the reference of the rows below)",
     {}, {}, ALL),
    ("short_names", "session hash: one-letter field names", {"short_names": 1}, {},
     ("s",)),
    ("no_id_active", "session hash: no `id` field (the key name has it) and no `active` "
     "field (`close_time` present means closed)", {"no_id_active": 1}, {}, ("s",)),
    ("rk_digest", "reuse key as a 16-byte digest of `[user_id,address,client]` "
     "(hash field `rk` and the reuse map's fields)", {"rk_digest": 1}, {},
     ("s", "reuse")),
    ("binary_ids", "ids as their 16 raw bytes inside Redis (key names, `id` field, index "
     "members, reuse map values); the wire keeps 32 hex characters",
     {"binary_ids": 1}, {}, ALL),
    ("layout_all", "the four layout changes above together",
     {"short_names": 1, "no_id_active": 1, "rk_digest": 1, "binary_ids": 1}, {}, ALL),
    ("drop_open", "no `oa` / `oc` bucket indexes (`exp` / `ret` hold the same sessions)",
     {"drop_open": 1}, {}, ("oa", "oc")),
    ("layout_all_drop_open", "the four layout changes and no `oa` / `oc` together",
     {"short_names": 1, "no_id_active": 1, "rk_digest": 1, "binary_ids": 1,
      "drop_open": 1}, {}, ALL),
    ("short_prefix", "config: a one-character key prefix (`SESSIONS_KEY_PREFIX`) instead "
     "of `sessions`", {"short_prefix": 1}, {}, ALL),
    ("hash_lp_value", "config `hash-max-listpack-value 2048`: hashes with values up to "
     "2 KiB stay listpacks", {}, {"hash-max-listpack-value": "2048"}, ("s", "reuse")),
    ("hash_lp_entries", "config `hash-max-listpack-entries 4096`: reuse maps of up to "
     "4,096 entries stay listpacks", {}, {"hash-max-listpack-entries": "4096"},
     ("s", "reuse")),
    ("zset_lp_entries", "config `zset-max-listpack-entries 4096`: bucket indexes of up "
     "to 4,096 sessions stay listpacks", {}, {"zset-max-listpack-entries": "4096"},
     ZSETS),
]


def sample(keys, n):
    if len(keys) <= n:
        return keys
    step = len(keys) / n
    return [keys[int(i * step)] for i in range(n)]


def copy_cost(r, prefix, kind, keys, opts):
    """Bytes (as `usage` counts them) of copies of keys, rewritten by opts."""
    if opts.get("drop_open") and kind in ("oa", "oc"):
        return 0
    is_hash = kind in ("s", "reuse")
    reads = r.pipeline([("HGETALL", k) if is_hash else ("ZRANGE", k, 0, -1, "WITHSCORES")
                        for k in keys])
    names, writes = [], []
    for k, flat in zip(keys, reads):
        pairs = transform(kind, list(zip(flat[0::2], flat[1::2])), opts)
        name = rename_key(k, prefix, opts)
        names.append(name)
        # One write per key when small (as the service writes a hash: one HSET), in
        # chunks of 500 entries when large.
        for i in range(0, len(pairs), 500):
            part = pairs[i:i + 500]
            if is_hash:
                writes.append(["HSET", name] + [x for p in part for x in p])
            else:
                writes.append(["ZADD", name] + [x for m, s in part for x in (s, m)])
    r.pipeline(writes, chunk=200)
    total, _ = usage(r, names)
    r.pipeline([("DEL", n) for n in names])
    return total


def variants(r, prefix, by_kind, n_sessions):
    if r.scan("~*"):
        raise RuntimeError("keys named ~* exist: the copies would mix with them")
    samples = {}
    for kind, ks in by_kind.items():
        want = SAMPLE_KEYS if kind in PER_SESSION_KINDS else SAMPLE_BUCKETS
        samples[kind] = (sample(ks, want), len(ks))
    out = {}
    for name, title, opts, config, kinds in VARIANTS:
        old = {k: r.call("CONFIG", "GET", k)[1] for k in config}
        for k, v in config.items():
            r.call("CONFIG", "SET", k, v)
        try:
            per_kind = {}
            for kind, (ks, total_keys) in samples.items():
                if kind not in kinds:
                    per_kind[kind] = out["copy"]["per_session"][kind]
                    continue
                cost = copy_cost(r, prefix.encode(), kind, ks, opts)
                per_kind[kind] = cost * total_keys / len(ks) / n_sessions
        finally:
            for k, v in old.items():
                r.call("CONFIG", "SET", k, v)
        out[name] = {"title": title, "per_session": per_kind}
    return out


async def shape(name, service_port, redis_port, prefix, n, out_path, with_variants):
    spec = SHAPES[name]
    r = Redis(redis_port)
    # Warm-up: the service connects and loads its scripts; nothing stays behind.
    warm = await send_all(service_port, "open_session",
                          [{"user_id": "memcheck-warmup", "address": "127.0.0.1"}], 1, 1)
    await send_all(service_port, "delete_session", [{"session_id": warm[0]["id"]}], 1, 1)
    if r.call("DBSIZE") != 0:
        raise RuntimeError("Redis is not empty after the warm-up")
    before = settle(r)

    t0 = time.monotonic()
    opened = await send_all(service_port, "open_session",
                            [open_args(i, spec["per_user"], spec["data"]) for i in range(n)])
    ids = [s["id"] for s in opened]
    if len(set(ids)) != n:
        raise RuntimeError(f"{n} opens gave {len(set(ids))} distinct sessions")
    if spec["close"]:
        closed = await send_all(service_port, "close_session",
                                [{"session_id": i} for i in ids])
        if any(c.get("active") is not False for c in closed):
            raise RuntimeError("a closed session came back active")
    load_s = time.monotonic() - t0

    after = settle(r)
    kinds, by_kind = breakdown(r, prefix)
    mem = r.info_memory()
    config = {k: r.call("CONFIG", "GET", k)[1].decode() for k in (
        "hash-max-listpack-entries", "hash-max-listpack-value",
        "zset-max-listpack-entries", "zset-max-listpack-value")}
    result = {
        "shape": name,
        "title": spec["title"],
        "sessions": n,
        "users": (n + spec["per_user"] - 1) // spec["per_user"],
        "data_bytes": spec["data"],
        "closed": spec["close"],
        "load_s": round(load_s, 1),
        "used_memory_before": before,
        "used_memory_after": after,
        "keys": int(r.call("DBSIZE")),
        "kinds": kinds,
        "main_table": main_table_bytes(r),
        "redis_version": mem.get("redis_version") or
        r.call("INFO", "server").decode().split("redis_version:")[1].split()[0],
        "allocator": mem.get("mem_allocator"),
        "config": config,
    }
    if with_variants:
        result["variants"] = variants(r, prefix, by_kind, n)
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
    per = (after - before) / n
    print(f"{name}: {n} sessions in {load_s:.1f}s, used_memory +{after - before:,} "
          f"bytes = {per:,.0f} bytes/session", file=sys.stderr)


# --- The tables ---------------------------------------------------------------

def table(paths):
    runs = [json.load(open(p)) for p in paths]
    cols = " | ".join(r["title"] for r in runs)
    lines = [f"| bytes per session | {cols} |", "|---" + "|---:" * len(runs) + "|"]

    def row(label, values):
        lines.append(f"| {label} | " + " | ".join(values) + " |")

    for kind, label in KINDS:
        if not any(kind in r["kinds"] for r in runs):
            continue
        cells = []
        for r in runs:
            k = r["kinds"].get(kind)
            if not k:
                cells.append("–")
                continue
            enc = "/".join(k["encodings"])
            cells.append(f"{k['bytes'] / r['sessions']:,.0f} ({k['keys']:,} {enc})")
        row(label, cells)
    sums = [sum(k["bytes"] for k in r["kinds"].values()) for r in runs]
    deltas = [r["used_memory_after"] - r["used_memory_before"] for r in runs]
    row("main key table (8 bytes a slot)",
        [f"{r['main_table'] / r['sessions']:,.0f}" for r in runs])
    row("rest (not in any key)", [f"{(d - s - r['main_table']) / r['sessions']:,.0f}"
                                  for d, s, r in zip(deltas, sums, runs)])
    row("**used_memory delta**",
        [f"**{d / r['sessions']:,.0f}**" for d, r in zip(deltas, runs)])
    row("used_memory delta, total",
        [f"{d / 1048576:,.1f} MiB" for d in deltas])
    lines.append("")
    lines.append("Cells: bytes per session (keys, encoding); a key kind's bytes are "
                 "MEMORY USAGE SAMPLES 0 summed over all its keys, plus 8 bytes per dict "
                 "entry (jemalloc gives the 24-byte entries 32). " + "; ".join(
        f"{r['title']}: {r['sessions']:,} sessions of {r['users']:,} users, "
        f"{r['keys']:,} keys" for r in runs) + ".")
    cfg = runs[0]["config"]
    lines.append(f"Redis {runs[0]['redis_version']} ({runs[0]['allocator']}), "
                 + ", ".join(f"`{k} {v}`" for k, v in cfg.items()) + ".")

    with_v = [r for r in runs if "variants" in r]
    if with_v:
        lines += ["", "| saving per session (bytes) | " +
                  " | ".join(r["title"] for r in with_v) + " |",
                  "|---" + "|---:" * len(with_v) + "|"]
        for name, *_ in VARIANTS:
            if name == "copy":
                continue
            title = with_v[0]["variants"][name]["title"]
            cells = []
            for r in with_v:
                base = r["variants"]["copy"]["per_session"]
                var = r["variants"][name]["per_session"]
                save = sum(base.values()) - sum(var.values())
                total = r["used_memory_after"] - r["used_memory_before"]
                cells.append(f"{save:,.0f} ({save * r['sessions'] / total:.0%})")
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
        checks = []
        for r in with_v:
            copy = sum(r["variants"]["copy"]["per_session"].values())
            orig = sum(k["bytes"] for k in r["kinds"].values()) / r["sessions"]
            checks.append(f"{r['title']}: copies {copy:,.0f}, originals {orig:,.0f}")
        lines.append("")
        lines.append("Saving: bytes (counted as above) of rewritten copies of a sample of the keys "
                     f"({SAMPLE_KEYS:,} session hashes and user indexes, {SAMPLE_BUCKETS} "
                     "keys of each bucket-level kind), scaled to all keys, against "
                     "plain copies of the same sample; in parentheses, the share of the "
                     "used_memory delta. Plain copies against the originals, bytes per "
                     "session: " + "; ".join(checks) + ".")
    print("\n".join(lines))


def main():
    if len(sys.argv) >= 8 and sys.argv[1] == "shape":
        _, _, name, sport, rport, prefix, n, out = sys.argv[:8]
        asyncio.run(shape(name, int(sport), int(rport), prefix, int(n), out,
                          "--variants" in sys.argv[8:]))
    elif len(sys.argv) >= 3 and sys.argv[1] == "table":
        table(sys.argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
