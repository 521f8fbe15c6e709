#!/usr/bin/env python3
"""Load client of bench/faults.sh: every outcome is counted, and the id of every simulation the
service answered 201 for is kept, so the script can check each one against the database.

  client.py --bases http://127.0.0.1:8001[,http://...] --keys FILE --mode sim|me|mix
            --seconds S --threads N --out FILE [--close] [--paths P]

Outcomes: HTTP status counts; "refused" (could not connect: nothing was sent); "dropped" (the
request was sent and no complete answer came back: the failure graceful shutdown must avoid).
--close opens a new connection per request (Connection: close), so a connection closed by the
server between requests cannot be mistaken for a dropped request. "done_at" holds the wall-clock
time of every 2xx answer (the script counts those that came after a signal).
"""

import argparse
import http.client
import json
import threading
import time
import urllib.parse

parser = argparse.ArgumentParser()
parser.add_argument("--bases", required=True)
parser.add_argument("--keys", required=True)
parser.add_argument("--mode", default="sim")
parser.add_argument("--seconds", type=float, default=10)
parser.add_argument("--threads", type=int, default=8)
parser.add_argument("--out", required=True)
parser.add_argument("--close", action="store_true")
parser.add_argument("--paths", type=int, default=1000)
args = parser.parse_args()

bases = [urllib.parse.urlsplit(b) for b in args.bases.split(",")]
keys = [k.split()[0] for k in open(args.keys) if k.strip()]
body = json.dumps({
    "assets": [{"name": "A", "weight": 1, "drift": 0.07, "volatility": 0.15}],
    "initial_value": 100000, "horizon_years": 10, "steps_per_year": 1, "paths": args.paths,
})
lock = threading.Lock()
status = {}
ids = []
done_at = []
refused = 0
dropped = 0
errors = []
deadline = time.monotonic() + args.seconds


def worker(n):
    global refused, dropped
    conn = None
    i = n
    local_status, local_ids, local_refused, local_dropped, local_done = {}, [], 0, 0, []
    while time.monotonic() < deadline:
        base = bases[i % len(bases)]
        key = keys[i % len(keys)]
        i += args.threads
        sim = args.mode == "sim" or (args.mode == "mix" and i % 2 == 0)
        headers = {"X-API-Key": key}
        if args.close:
            headers["Connection"] = "close"
        if sim:
            headers["Content-Type"] = "application/json"
        fresh = conn is None or args.close or len(bases) > 1
        if fresh:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
        sent = False
        try:
            if fresh:
                conn.connect()
            if sim:
                conn.request("POST", "/api/v1/simulations", body=body, headers=headers)
            else:
                conn.request("GET", "/api/v1/auth/me", headers=headers)
            sent = True
            resp = conn.getresponse()
            data = resp.read()
        except (ConnectionRefusedError, OSError) as e:
            conn.close()
            conn = None
            if sent:
                local_dropped += 1
                if len(errors) < 5:
                    errors.append(repr(e))
            else:
                local_refused += 1
                time.sleep(0.01)
            continue
        local_status[resp.status] = local_status.get(resp.status, 0) + 1
        if sim and resp.status == 201:
            local_ids.append(json.loads(data)["id"])
        if resp.status < 300:
            local_done.append(time.time())
        if resp.status >= 500:
            time.sleep(0.01)
    with lock:
        for s, c in local_status.items():
            status[s] = status.get(s, 0) + c
        ids.extend(local_ids)
        done_at.extend(local_done)
        refused += local_refused
        dropped += local_dropped


threads = [threading.Thread(target=worker, args=(n,)) for n in range(args.threads)]
t0 = time.monotonic()
for t in threads:
    t.start()
for t in threads:
    t.join()
with open(args.out, "w") as f:
    json.dump({"status": {str(k): v for k, v in sorted(status.items())}, "ids": ids,
               "done_at": done_at,
               "refused": refused, "dropped": dropped, "errors": errors,
               "seconds": round(time.monotonic() - t0, 1)}, f)
