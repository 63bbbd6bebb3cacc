#!/usr/bin/env python3
"""faultline's NDJSON client protocol for our Raft node's HTTP API (nodes/API.md).

One line in per op: {"id", "process", "f", "key", "value", "node"}; one line out per op:
{"id", "type": "ok"|"fail"|"info", "value", "error"}. Each op runs in its own thread, so
answers come back in any order. `fail` only when the op certainly did not happen.
"""
import json
import os
import sys
import threading
import urllib.error
import urllib.request

NODES = dict(p.split("=", 1) for p in os.environ["FAULTLINE_NODES"].split(","))
# Answer before faultline's own client timeout gives up on us.
TIMEOUT_S = int(os.environ.get("FAULTLINE_CLIENT_TIMEOUT_MS", "2500")) / 1000 * 0.8
OUT = threading.Lock()


def post(node, path, body):
    request = urllib.request.Request(
        f"http://{NODES[node]}:8001{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
        return json.load(answer)


def perform(op):
    read = op["f"] == "read"
    key, rid = str(op["key"]), f"x{op['process']}-{op['id']}"
    try:
        if read:
            return {"type": "ok", "value": post(op["node"], "/read", {"key": key, "request_id": rid})["value"]}
        if op["f"] == "write":
            post(op["node"], "/write", {"key": key, "value": op["value"], "request_id": rid})
            return {"type": "ok"}
        if op["f"] == "cas":
            expected, new = op["value"]
            body = post(op["node"], "/cas", {"key": key, "expected": expected, "new": new, "request_id": rid})
            return {"type": "ok"} if body["ok"] else {"type": "fail", "error": "compare failed"}
        return {"type": "fail", "error": f"no op {op['f']}"}
    except urllib.error.HTTPError as err:
        try:
            body = json.load(err)
            definite, text = body.get("definite", False), body.get("error", str(err))
        except ValueError:
            definite, text = False, str(err)
        return {"type": "fail" if definite or read else "info", "error": text}
    except urllib.error.URLError as err:
        # Refused: the request never left. A lost read changed nothing either.
        refused = isinstance(err.reason, ConnectionRefusedError)
        return {"type": "fail" if refused or read else "info", "error": str(err.reason)}
    except Exception as err:  # timeouts, resets
        return {"type": "fail" if read else "info", "error": repr(err)}


def answer(op):
    done = perform(op)
    done["id"] = op["id"]
    with OUT:
        sys.stdout.write(json.dumps(done) + "\n")
        sys.stdout.flush()


for line in sys.stdin:
    threading.Thread(target=answer, args=(json.loads(line),), daemon=True).start()
