"""tests/e2e_serve.sh: long requests in flight, then SIGTERM to rank 0: they finish (200, length),
new requests get 503. Usage: e2e_serve_drain.py PORT API_KEY RANK0_PID"""
import json, os, signal, sys, threading, time, urllib.request, urllib.error

PORT, KEY, PID = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
BASE = f"http://127.0.0.1:{PORT}"
AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

def post(body):
    req = urllib.request.Request(BASE + "/v1/completions", data=json.dumps(body).encode(), headers=AUTH)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except (urllib.error.URLError, ConnectionError) as e:
        return 0, str(e)

results = []
def long_request():
    results.append(post({"prompt": [5, 6, 7], "max_tokens": 1900, "ignore_eos": True}))
threads = [threading.Thread(target=long_request) for _ in range(4)]
def in_server():
    req = urllib.request.Request(BASE + "/metrics", headers=AUTH)
    with urllib.request.urlopen(req, timeout=10) as r:
        vals = {l.split()[0]: float(l.split()[1]) for l in r.read().decode().splitlines()
                if l.startswith(("dpep:num_requests_running ", "dpep:num_requests_waiting "))}
    return sum(vals.values())
for t in threads: t.start()
# Signal only once all four are inside the server (no race with their arrival).
for _ in range(1000):
    if in_server() == 4:
        break
    time.sleep(0.01)
else:
    raise SystemExit("FAIL: the four requests did not all arrive")
os.kill(PID, signal.SIGTERM)
time.sleep(0.1)
late = post({"prompt": [5, 6, 7], "max_tokens": 2})
for t in threads: t.join()
assert len(results) == 4 and all(s == 200 and r["choices"][0]["finish_reason"] == "length" and
                                 len(r["choices"][0]["token_ids"]) == 1900 for s, r in results), \
    [(s, r if s != 200 else r["choices"][0]["finish_reason"]) for s, r in results]
# During the drain: 503 in the error shape (or, if the drain already ended, no server).
assert late[0] in (503, 0), late
if late[0] == 503:
    assert late[1]["error"]["code"] == 503, late
print(f"ok drain: 4 in-flight requests finished after SIGTERM; a new request got {late[0] or 'no server'}")
