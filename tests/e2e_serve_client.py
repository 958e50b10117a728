"""HTTP checks of tests/e2e_serve.sh against a running dpep serve (mpirun -np 2, tiny model).
Usage: e2e_serve_client.py PORT API_KEY EXPECTED.jsonl PROMPTS.jsonl"""
import http.client, json, sys, threading, time, urllib.request, urllib.error

PORT, KEY, EXPECTED, PROMPTS = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
BASE = f"http://127.0.0.1:{PORT}"
AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


def post(path, body, headers=AUTH, raw=None):
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def get(path):
    try:
        with urllib.request.urlopen(BASE + path, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def sse(body):
    """Streams a request; returns (status, list of parsed events, saw [DONE])."""
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    c.request("POST", "/v1/completions" if "prompt" in body else "/generate", json.dumps(body), AUTH)
    r = c.getresponse()
    events, done = [], False
    for line in r.read().decode().split("\n"):
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            done = True
        else:
            events.append(json.loads(line[6:]))
    return r.status, events, done


def metrics():
    out = {}
    for line in get("/metrics")[1].splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def kv_pages_used(m):  # KV pages in use over all ranks, from a metrics() scrape
    return sum(v for k, v in m.items() if k.startswith("dpep:rank_kv_pages_used"))


def check_error(status_body, status, param=None):
    s, b = status_body
    assert s == status, f"expected {status}, got {s}: {b}"
    e = json.loads(b)["error"]
    assert set(e) >= {"message", "type", "param", "code"}, e
    assert e["code"] == status and e["message"], e
    if param is not None:
        assert e["param"] == param, e
    return e


expected = [json.loads(l) for l in open(EXPECTED)]
prompts = [json.loads(l) for l in open(PROMPTS)]
assert len(expected) == len(prompts) >= 2

# /health and /metrics are open; /v1/models needs the key.
assert get("/health")[0] == 200
check_error(get("/v1/models"), 401)
req = urllib.request.Request(BASE + "/v1/models", headers=AUTH)
models = json.loads(urllib.request.urlopen(req).read())
assert models["object"] == "list" and models["data"][0]["id"] == "m", models
assert models["data"][0]["max_model_len"] > 0

# Greedy results equal dpep generate's, whole and streamed, OpenAI and SGLang shapes.
for p, e in zip(prompts, expected):
    body = {"model": "m", "prompt": p["input_ids"], "max_tokens": p["max_tokens"], "temperature": 0,
            "ignore_eos": True}
    s, b = post("/v1/completions", body)
    assert s == 200, b
    r = json.loads(b)
    assert r["object"] == "text_completion" and r["id"].startswith("cmpl-"), r
    c = r["choices"][0]
    assert c["token_ids"] == e["output_ids"], (c["token_ids"], e["output_ids"])
    assert c["finish_reason"] == "length", c
    assert isinstance(c["text"], str) and c["text"], c
    assert r["usage"] == {"prompt_tokens": len(p["input_ids"]), "completion_tokens": p["max_tokens"],
                          "total_tokens": len(p["input_ids"]) + p["max_tokens"]}, r["usage"]

    s, ev, done = sse(dict(body, stream=True, stream_options={"include_usage": True}))
    assert s == 200 and done, (s, ev)
    ids = [t for x in ev if x["choices"] for t in x["choices"][0]["token_ids"]]
    assert ids == e["output_ids"], (ids, e["output_ids"])
    assert len([x for x in ev if x["choices"]]) >= 2, "one chunk per step, not one buffered chunk"
    assert [x["choices"][0]["finish_reason"] for x in ev if x["choices"]][-1] == "length"
    assert ev[-1]["choices"] == [] and ev[-1]["usage"]["completion_tokens"] == p["max_tokens"], ev[-1]
    assert "".join(x["choices"][0]["text"] for x in ev if x["choices"]) == c["text"]

    g = {"input_ids": p["input_ids"], "sampling_params": {"max_new_tokens": p["max_tokens"], "temperature": 0,
                                                          "ignore_eos": True}}
    s, b = post("/generate", g)
    assert s == 200 and json.loads(b)["output_ids"] == e["output_ids"], b
    s, ev, done = sse(dict(g, stream=True))
    assert s == 200 and done and ev[-1]["output_ids"] == e["output_ids"], ev[-1]
    assert ev[-1]["meta_info"]["finish_reason"] == {"type": "length"}, ev[-1]
print("ok greedy equals dpep generate (completions, stream, /generate)")

# Logprobs and stop token ids.
p0, e0 = prompts[0], expected[0]
s, b = post("/v1/completions", {"prompt": p0["input_ids"], "max_tokens": 4, "temperature": 0, "ignore_eos": True,
                                "logprobs": 2})
lp = json.loads(b)["choices"][0]["logprobs"]
assert s == 200 and len(lp["token_logprobs"]) == 4 and all(len(t) == 2 for t in lp["top_logprobs"]), lp
assert all(v <= 0 for v in lp["token_logprobs"]), lp
stop_at = e0["output_ids"][2]
s, b = post("/v1/completions", {"prompt": p0["input_ids"], "max_tokens": 10, "temperature": 0,
                                "ignore_eos": True, "stop_token_ids": [stop_at]})
c = json.loads(b)["choices"][0]
assert c["finish_reason"] == "stop" and c["token_ids"][-1] == stop_at, c
assert len(c["token_ids"]) == e0["output_ids"].index(stop_at) + 1, c

# Chat through the preset tokenizer's template.
s, b = post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 5,
                                     "temperature": 0, "ignore_eos": True})
assert s == 200, b
r = json.loads(b)
assert r["object"] == "chat.completion" and r["choices"][0]["message"]["role"] == "assistant", r
assert r["usage"]["completion_tokens"] == 5, r
s, b = post("/tokenize", {"prompt": "hello world", "add_special_tokens": False})
toks = json.loads(b)["tokens"]
assert s == 200 and json.loads(b)["count"] == len(toks) > 0, b
s, b = post("/detokenize", {"tokens": toks})
assert s == 200 and json.loads(b)["prompt"] == "hello world", b
print("ok logprobs, stop_token_ids, chat, tokenize/detokenize")

# Errors: shapes and statuses.
check_error(post("/v1/completions", None, raw=b"{not json"), 400)
check_error(post("/v1/completions", {"prompt": [1, 2], "max_tokens": -1}), 400, "max_tokens")
check_error(post("/v1/completions", {"prompt": [1, 10 ** 6]}), 400, "prompt")
check_error(post("/v1/completions", {"prompt": [1, 2], "max_tokens": 10 ** 6}), 400, "prompt")
check_error(post("/v1/completions", {"prompt": [1, 2], "temperature": -1}), 400, "temperature")
check_error(post("/v1/completions", {"prompt": [1, 2], "top_p": 0}), 400, "top_p")
check_error(post("/v1/completions", {"prompt": [1, 2], "n": 3}), 400, "n")
check_error(post("/v1/completions", {"prompt": [1, 2], "model": "nope"}), 404, "model")
e = check_error(post("/v1/completions", {"prompt": [1, 2]}, headers={"Content-Type": "application/json"}), 401)
assert e["type"] == "authentication_error", e
check_error(post("/v1/completions", {"prompt": [1, 2]},
                 headers={"Authorization": "Bearer wrong", "Content-Type": "application/json"}), 401)
check_error(get("/nothing-here"), 404)
print("ok 400/401/404 error shapes")

# Cancellation: a streaming client that goes away frees its KV pages on its rank.
before = metrics()
c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
c.request("POST", "/v1/completions", json.dumps({"prompt": p0["input_ids"], "max_tokens": 1900,
                                                 "ignore_eos": True, "stream": True}), AUTH)
r = c.getresponse()
assert r.status == 200 and r.readline().startswith(b"data: ")
# The ranks' gauges are those of the last step reported to rank 0; the first token can reach
# the client before the step that holds the request's pages is reported. Read on, a line at a
# time, until a scrape sees the pages (the request has 1900 tokens to go).
for _ in range(50):
    during = metrics()
    used = kv_pages_used(during)
    if used > 0:
        break
    r.readline()
assert used > 0, f"no KV pages in use while a request streams: {during}"
c.sock.shutdown(2)
c.close()
key = 'dpep:request_finished_total{finished_reason="abort"}'
for _ in range(100):
    m = metrics()
    if m[key] > before[key] and kv_pages_used(m) == 0:
        break
    time.sleep(0.05)
else:
    raise AssertionError(f"the cancelled request was not aborted or its pages not freed: {m}")
print(f"ok cancelled stream aborted, KV pages {used:.0f} -> 0")

# The same for a non-streaming client: the server polls its socket (every 50 ms) while the
# request runs. On the tiny model 1900 tokens take only a few hundred ms, so a request may
# finish before the close is seen: then it is tried again (3 tries; one must be aborted).
def disconnect_whole_request():
    before = metrics()
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    c.request("POST", "/v1/completions", json.dumps({"prompt": p0["input_ids"], "max_tokens": 1900,
                                                     "ignore_eos": True}), AUTH)
    for _ in range(200):
        during = metrics()
        used = kv_pages_used(during)
        if used > 0:
            break
        time.sleep(0.02)
    assert used > 0, f"no KV pages in use while a whole request runs: {during}"
    c.sock.shutdown(2)
    c.close()
    done = 'dpep:request_finished_total{finished_reason="length"}'
    for _ in range(100):
        m = metrics()
        freed = kv_pages_used(m) == 0
        if freed and (m[key] > before[key] or m[done] > before[done]):
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the disconnected whole request neither ended nor freed its pages: {m}")
    aborted = m[key] > before[key]
    if aborted:
        assert m['dpep:generation_tokens_total'] - before['dpep:generation_tokens_total'] < 1900, m
    return aborted, used

for attempt in range(3):
    aborted, used = disconnect_whole_request()
    if aborted:
        break
else:
    raise AssertionError("a disconnected non-streaming request was never aborted in 3 tries")
print(f"ok disconnected non-streaming client: request aborted, KV pages {used:.0f} -> 0")

# Overload: more long requests than running slots plus --max-queued-requests -> some 429.
codes = []
def long_request():
    s, b = post("/v1/completions", {"prompt": p0["input_ids"], "max_tokens": 1500, "ignore_eos": True})
    codes.append(s)
    if s == 429:
        e = json.loads(b)["error"]
        assert e["type"] == "rate_limit_error" and e["code"] == 429, e
threads = [threading.Thread(target=long_request) for _ in range(14)]
for t in threads: t.start()
for t in threads: t.join()
assert 429 in codes and 200 in codes and set(codes) <= {200, 429}, codes
print(f"ok overload: {codes.count(200)} x 200, {codes.count(429)} x 429")
m = metrics()
assert m["dpep:num_requests_running"] == 0 and m["dpep:num_requests_waiting"] == 0, m
assert m["dpep:generation_tokens_total"] > 0 and m["dpep:time_to_first_token_seconds_count"] > 0, m
assert 'dpep:rank_kv_pages_total{rank="1"}' in m and m['dpep:rank_kv_pages_total{rank="1"}'] > 0, m
print("ok /metrics")
