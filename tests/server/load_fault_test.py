#!/usr/bin/env python3
"""The server under load and under hostile input, on the tiny model on the CPU, over loopback.

  load_fault_test.py --mlaserve build/mlaserve --source-dir .

Starts `mlaserve serve tests/data/tiny-v3 --tokenizer tests/data/tiny-tokenizer --port 0`, then:
  1. `mlaserve bench serve` against it (32 streamed requests of exact lengths): every request
     completes and the output token count is exact;
  2. 240 streaming requests at once (completions and chat, text and token-id prompts), a third
     of whose clients disconnect at a random point (mid-request, before the answer, after the
     header, after a few chunks); every other one must end with a finish_reason, a usage chunk
     whose completion_tokens equals max_tokens (ignore_eos) and "data: [DONE]";
  3. 600+ malformed or hostile requests (bad JSON, wrong types, huge numbers, negative
     max_tokens, a 10 MB body, invalid UTF-8, deep nesting, broken request lines and headers,
     truncated bodies, unknown routes and methods), each of which must get a 4xx answer with an
     OpenAI error object (a truncated body whose client half-closes may instead be dropped),
     alongside slow-drip and idle (half-open) connections; requests with unknown fields or a
     slowly sent body are well-formed and must complete;
  4. a second server limited to 64 file descriptors, given 96 idle connections, must idle (not
     spin on the connections it cannot accept) and serve again once they close;
  5. a third server, with a 2 s write timeout, must drop a streaming client that stops reading
     and stop its generation;
and checks after each phase that the process lives and /health answers, and at the end that
/metrics shows no KV block in use and no request running. The server is always killed. The raw
HTTP client and the server's harness are in http_harness.py. Standard library only.
"""

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time

from http_harness import (HOST, IO_TIMEOUT, Failure, Server, check_up, dechunk, drained, exchange, read_response,
                          request_bytes)

# ---------------------------------------------------------------------------------------------
# Phase 1: mlaserve bench serve against the server.

def bench_serve(mlaserve, port, results_dir):
    cmd = [mlaserve, "bench", "serve", "--port", str(port), "--num-prompts", "32", "--random-input-len", "24",
           "--random-output-len", "8", "--random-range-ratio", "0", "--request-rate", "64", "--max-concurrency",
           "16", "--seed", "5", "--results-dir", results_dir]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise Failure("bench serve failed (%d):\n%s\n%s" % (p.returncode, p.stdout, p.stderr))
    files = [f for f in os.listdir(results_dir) if f.startswith("serve_") and f.endswith(".json")]
    if len(files) != 1:
        raise Failure("bench serve wrote %s" % files)
    doc = json.load(open(os.path.join(results_dir, files[0])))
    res = doc["results"]
    if doc["model"] != "tiny" or res["completed"] != 32 or res["failed"] != 0:
        raise Failure("bench serve: %s" % json.dumps(doc)[:500])
    if res["total_output_tokens"] != 32 * 8 or res["total_input_tokens"] != 32 * 24:
        raise Failure("bench serve counted %d in / %d out tokens, expected %d / %d" %
                      (res["total_input_tokens"], res["total_output_tokens"], 32 * 24, 32 * 8))
    for key in ("mean_ttft_ms", "p99_ttft_ms", "median_tpot_ms", "p90_itl_ms", "mean_e2el_ms"):
        if not res[key] > 0:
            raise Failure("bench serve: %s = %s" % (key, res[key]))
    print("bench serve: %d requests, %.1f req/s, %.0f output tok/s, TTFT mean %.1f ms, TPOT mean %.2f ms" %
          (res["completed"], res["request_throughput"], res["output_throughput"], res["mean_ttft_ms"],
           res["mean_tpot_ms"]))


# ---------------------------------------------------------------------------------------------
# Phase 2: many concurrent streams, some of whose clients go away.

WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "then", "it", "ran", "away", "hello", "world"]


def stream_body(rng, i):
    max_tokens = rng.randint(2, 12)
    if i % 3 == 0:
        body = {"model": "tiny", "messages": [{"role": "user", "content": " ".join(rng.choices(WORDS, k=6))}],
                "max_tokens": max_tokens}
        path = "/v1/chat/completions"
    else:
        prompt = " ".join(rng.choices(WORDS, k=rng.randint(2, 20))) if i % 3 == 1 else \
            [rng.randrange(1000) for _ in range(rng.randint(1, 40))]
        body = {"model": "tiny", "prompt": prompt, "max_tokens": max_tokens}
        path = "/v1/completions"
    body.update({"stream": True, "ignore_eos": True, "temperature": rng.choice([0.0, 0.8]),
                 "stream_options": {"include_usage": True}})
    return path, body


async def one_stream(port, rng, i, start_gate, outcome):
    path, body = stream_body(rng, i)
    raw = request_bytes("POST", path, json.dumps(body).encode())
    # A third of the clients leave: in the middle of the request, before the answer, after the
    # response head, or after 1-3 chunks.
    leave = rng.choice(["mid_request", "before_answer", "after_head", "after_chunks"]) if rng.random() < 1 / 3 else None
    reader, writer = await asyncio.open_connection(HOST, port)
    await start_gate.wait()
    try:
        if leave == "mid_request":
            writer.write(raw[:rng.randrange(1, len(raw))])
            await writer.drain()
            outcome["left"] += 1
            return
        writer.write(raw)
        await writer.drain()
        if leave == "before_answer":
            outcome["left"] += 1
            return
        head = b""
        while b"\r\n\r\n" not in head:
            piece = await asyncio.wait_for(reader.read(4096), IO_TIMEOUT)
            if not piece:
                raise Failure("stream %d: closed before the response head" % i)
            head += piece
        head, _, rest = head.partition(b"\r\n\r\n")
        status = head.split(b"\r\n")[0]
        if b" 200 " not in status + b" ":
            raise Failure("stream %d: %r %r" % (i, status, rest[:300]))
        if b"chunked" not in head.lower() or b"text/event-stream" not in head.lower():
            raise Failure("stream %d: not a chunked event stream: %r" % (i, head))
        if leave == "after_head":
            outcome["left"] += 1
            return
        quit_after = rng.randint(1, 3) if leave == "after_chunks" else None
        text, chunks, events = b"", 0, []
        async for data in dechunk_timed(reader, rest):
            text += data
            chunks += 1
            if quit_after is not None and chunks >= quit_after:
                outcome["left"] += 1
                return
        for block in text.decode("utf-8").split("\n\n"):
            if block.strip():
                if not block.startswith("data: "):
                    raise Failure("stream %d: not an SSE data event: %r" % (i, block[:200]))
                events.append(block[len("data: "):])
        if not events or events[-1] != "[DONE]":
            raise Failure("stream %d: no final [DONE] (%r)" % (i, events[-3:]))
        chunks_json = [json.loads(e) for e in events[:-1]]
        finish = [c["choices"][0].get("finish_reason") for c in chunks_json if c.get("choices")]
        finish = [f for f in finish if f]
        if finish != ["length"]:
            raise Failure("stream %d: finish reasons %s (ignore_eos: expected one 'length')" % (i, finish))
        usage = [c["usage"] for c in chunks_json if c.get("usage")]
        if len(usage) != 1 or usage[0]["completion_tokens"] != body["max_tokens"]:
            raise Failure("stream %d: usage %s, max_tokens %d" % (i, usage, body["max_tokens"]))
        outcome["complete"] += 1
    finally:
        writer.close()


async def dechunk_timed(reader, rest):
    it = dechunk(reader, rest).__aiter__()
    while True:
        try:
            yield await asyncio.wait_for(it.__anext__(), IO_TIMEOUT)
        except StopAsyncIteration:
            return


async def concurrent_streams(port, count, seed):
    rng = random.Random(seed)
    gate = asyncio.Event()
    outcome = {"complete": 0, "left": 0}
    tasks = [asyncio.create_task(one_stream(port, random.Random(rng.random()), i, gate, outcome)) for i in range(count)]
    await asyncio.sleep(0.5)  # every connection open before anyone sends
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise Failure("%d of %d streams failed; first: %r" % (len(errors), count, errors[0]))
    print("streams: %d at once, %d complete, %d clients left early" % (count, outcome["complete"], outcome["left"]))
    if outcome["complete"] < count // 2:
        raise Failure("too few complete streams: %s" % outcome)


# ---------------------------------------------------------------------------------------------
# Phase 3: malformed and hostile requests.

def hostile_cases(rng):
    """(name, raw bytes, half_close, expect) with expect 'error' (a 4xx with an error object),
    'error_or_drop' (that, or a closed connection) or 'ok' (a complete non-streamed answer)."""
    cases = []

    def post(name, path, body, expect="error", headers=None):
        raw_body = body if isinstance(body, bytes) else json.dumps(body).encode()
        cases.append((name, request_bytes("POST", path, raw_body, headers), False, expect))

    good = {"model": "tiny", "prompt": "hello", "max_tokens": 2}
    chat = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    # Broken JSON.
    for text in [b"", b"{", b"{\"model\": ", b"{\"model\": \"tiny\",}", b"[1, 2", b"nul", b"{'a': 1}",
                 b"{\"model\": \"tiny\" \"prompt\": 1}", b"\x00\x01\x02", b"{\"a\": 1e999999}", b"}{"]:
        for path in ["/v1/completions", "/v1/chat/completions"]:
            post("bad json %r" % text[:20], path, text)
    # Valid JSON that is not an object.
    for text in [b"[]", b"[1, 2]", b"\"tiny\"", b"42", b"null", b"true"]:
        for path in ["/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize"]:
            post("not an object %r" % text, path, text)
    # Wrong types, huge and negative numbers, out-of-range values, for every field.
    bad_values = {
        "model": [5, None, ["tiny"], "not-the-model", ""],
        "prompt": [5, None, {}, [], [[]], [1.5], [-1], [10 ** 12], [True], [["a"]], [10 ** 30]],
        "max_tokens": ["8", -1, -100, 0, 1.5, 10 ** 30, 10 ** 18, -10 ** 30, [], True],
        "temperature": ["hot", -1, 1e308, 3, [], float("nan")],
        "top_p": [0, -0.5, 2, "x"],
        "top_k": [-5, 1.5, "k", 10 ** 30],
        "n": [0, -1, 10 ** 6, "2", 1.5],
        "stream": ["yes", 1, []],
        "stop": [5, [1, 2], [""] * 1000, {}],
        "seed": ["s", 1.5, 10 ** 30],
        "logprobs": [-1, 1000, "x", 10 ** 20],
        "presence_penalty": [5, -5, "x"],
        "frequency_penalty": [5, -5, []],
        "repetition_penalty": [0, -1, 100],
        "stop_token_ids": [[-1], [10 ** 9], "x", [1.5]],
        "stream_options": [{"include_usage": True}, "x"],
        "logit_bias": [{"5": 1000}, {"x": 1}, [5], "x", {"999999999": 1}],
        "echo": [True],
        "best_of": [3],
        "min_p": [-1, 2],
        "ignore_eos": ["x", 2],
    }
    # Each on both routes (chat has no prompt), streamed and not: a streamed request must be
    # refused before its event stream starts.
    for key, values in bad_values.items():
        for v in values:
            for route, base in [("/v1/completions", good), ("/v1/chat/completions", chat)]:
                if key in ("prompt", "echo") and route != "/v1/completions":
                    continue  # chat has no prompt; echo is vLLM's chat extension there
                for stream in ([False] if key in ("stream", "stream_options") else [False, True]):
                    body = dict(base)
                    body[key] = v
                    if stream:
                        body["stream"] = True
                    post("%s %s=%r stream=%s" % (route, key, str(v)[:20], stream), route,
                         json.dumps(body, allow_nan=True).encode())
    chat_bad = {
        "messages": [None, "hi", [], [{"role": "user"}], [{"content": "x"}], [{"role": "wizard", "content": "x"}],
                     [{"role": "user", "content": 5}], [{"role": "user", "content": [{"type": "image_url"}]}],
                     [5], [[]]],
        "max_completion_tokens": [-1, "x", 10 ** 30],
        "top_logprobs": [5, -1],
        "tools": [[{"type": "function", "function": {"name": "f"}}]],
        "response_format": [{"type": "json_object"}],
        "add_generation_prompt": ["yes"],
    }
    for key, values in chat_bad.items():
        for v in values:
            body = dict(chat)
            body[key] = v
            post("chat %s=%r" % (key, str(v)[:20]), "/v1/chat/completions", body)
    # Missing required fields.
    for key in ["model", "prompt"]:
        body = dict(good)
        del body[key]
        post("completions without %s" % key, "/v1/completions", body)
    for key in ["model", "messages"]:
        body = dict(chat)
        del body[key]
        post("chat without %s" % key, "/v1/chat/completions", body)
    # /tokenize and /detokenize.
    for body in [{}, {"prompt": 5}, {"messages": "x"}, {"prompt": "a", "messages": []}]:
        post("tokenize %s" % body, "/tokenize", body)
    for body in [{}, {"tokens": "x"}, {"tokens": [-1]}, {"tokens": [10 ** 12]}, {"tokens": [1.5]}]:
        post("detokenize %s" % body, "/detokenize", body)
    # A prompt far past the context (400 context_length_exceeded).
    post("prompt too long", "/v1/completions", {"model": "tiny", "prompt": [5] * 200000, "max_tokens": 2})
    # Invalid UTF-8 inside a JSON string, and overlong / surrogate encodings.
    for bad in [b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"abc\x80"]:
        for path, field in [("/v1/completions", b"prompt"), ("/v1/chat/completions", None), ("/tokenize", b"prompt")]:
            if field is None:
                body = b'{"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": "' + bad + b'"}]}'
            else:
                body = b'{"model": "tiny", "max_tokens": 2, "' + field + b'": "' + bad + b'"}'
            post("invalid utf-8 %r %s" % (bad, path), path, body)
    # Deep nesting, where the prompt's checks reject it and where nothing looks at it before the
    # chat template (20,000 levels in a message, a 40 KB body, once overflowed the server's stack).
    for depth in [65, 1000, 20000, 100000]:
        deep = b"[" * depth + b"]" * depth
        post("nested %d" % depth, "/v1/completions", b'{"model": "tiny", "prompt": ' + deep + b', "max_tokens": 2}')
        post("nested %d in a message" % depth, "/v1/chat/completions",
             b'{"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": "hi", "x": ' + deep + b'}]}')
        post("nested objects %d" % depth, "/tokenize",
             b'{"prompt": "x", "y": ' + b'{"k": ' * depth + b'1' + b'}' * depth + b'}')
    # A 10 MB body (past the 4 MB limit: 413).
    big = b'{"model": "tiny", "max_tokens": 2, "prompt": "' + b"a" * (10 << 20) + b'"}'
    post("10 MB body", "/v1/completions", big)
    # Routes and methods.
    for method, path in [("GET", "/v1/completions"), ("PUT", "/v1/chat/completions"), ("DELETE", "/v1/models"),
                         ("POST", "/health"), ("GET", "/nope"), ("POST", "/v1/engines"), ("GET", "/v1/models/nope"),
                         ("GET", "/" + "x" * 2000), ("GET", "/v1/completions/../../etc/passwd")]:
        cases.append(("%s %s" % (method, path[:30]), request_bytes(method, path, b"{}" if method != "GET" else b""),
                      False, "error"))
    # Broken request lines and headers.
    body = json.dumps(good).encode()
    broken = [
        b"GARBAGE\r\n\r\n",
        b"POST /v1/completions HTTP/9.9\r\nHost: x\r\n\r\n",
        b"POST /v1/completions\r\nHost: x\r\n\r\n",
        b"P@ST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}",
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}",
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n{}",
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n: no name\r\n\r\n",
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n",
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\x00\x01\r\n\r\n{",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),  # a TLS ClientHello
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + str(len(body)).encode() +
        b"\r\nContent-Type: text/plain\r\nAuthorization: Bearer \xff\xff\r\n\r\n" + body[:-1] + b"\xff",
    ]
    for raw in broken:
        cases.append(("broken http %r" % raw[:40], raw, False, "error"))
    # Truncated bodies: the client sends part of what Content-Length promises, then half-closes.
    for cut in [0, 1, 10, len(body) - 1]:
        raw = request_bytes("POST", "/v1/completions", body)
        head_len = raw.index(b"\r\n\r\n") + 4
        cases.append(("truncated body at %d" % cut, raw[:head_len + cut], True, "error_or_drop"))
    # Well-formed requests with unknown fields (ignored, as vLLM does): complete answers.
    for extra in [{"foo": 1}, {"user": "x", "metadata": {"a": [1, 2]}}, {"\u00e9\u00e8": None}, {"x" * 1000: "y"}]:
        b = dict(good)
        b.update(extra)
        post("unknown fields %s" % str(extra)[:20], "/v1/completions", b, expect="ok")
        c = dict(chat)
        c.update(extra)
        post("chat unknown fields %s" % str(extra)[:20], "/v1/chat/completions", c, expect="ok")
    # Random byte flips of good bodies: anything but a 5xx, a hang or a crash.
    for route, base, count in [("/v1/completions", good, 150), ("/v1/chat/completions", chat, 100)]:
        good_raw = json.dumps(base).encode()
        for _ in range(count):
            mutated = bytearray(good_raw)
            for _ in range(rng.randint(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            post("fuzzed %s body %r" % (route, bytes(mutated)[:30]), route, bytes(mutated), expect="any")
    return cases


def check_error_reply(name, r):
    if r.status < 400 or r.status >= 500:
        raise Failure("%s: status %d, expected 4xx: %r" % (name, r.status, r.body[:300]))
    try:
        err = r.json()["error"]
        if not isinstance(err.get("message"), str) or not err["message"]:
            raise KeyError("message")
    except (ValueError, KeyError, TypeError) as e:
        raise Failure("%s: status %d without an OpenAI error object (%s): %r" % (name, r.status, e, r.body[:300]))


def check_complete_reply(name, r):
    if r.status != 200:
        raise Failure("%s: status %d: %r" % (name, r.status, r.body[:300]))
    body = r.json()
    if not body["choices"] or not body["choices"][0].get("finish_reason"):
        raise Failure("%s: no finish_reason: %r" % (name, r.body[:300]))


async def hostile(port, seed):
    rng = random.Random(seed)
    cases = hostile_cases(rng)
    rng.shuffle(cases)
    sem = asyncio.Semaphore(32)
    counts = {"error": 0, "dropped": 0, "ok": 0}
    slowest = []

    async def run(case):
        name, raw, half_close, expect = case
        async with sem:
            t = time.time()
            r = await exchange(port, raw, half_close)
            slowest.append((time.time() - t, name))
        if r is None:
            if expect != "error_or_drop":
                raise Failure("%s: the server closed the connection without an answer" % name)
            counts["dropped"] += 1
        elif expect == "ok":
            check_complete_reply(name, r)
            counts["ok"] += 1
        elif expect == "any":
            if r.status >= 500:
                raise Failure("%s: status %d: %r" % (name, r.status, r.body[:300]))
            if r.status >= 400:
                check_error_reply(name, r)
            counts["ok" if r.status < 400 else "error"] += 1
        else:
            check_error_reply(name, r)
            counts["error"] += 1

    async def slow_drip(i):
        """A well-formed request sent a few bytes at a time over ~1.5 s."""
        raw = request_bytes("POST", "/v1/completions", json.dumps(good_body()).encode())
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            for k in range(0, len(raw), 16):
                writer.write(raw[k:k + 16])
                await writer.drain()
                await asyncio.sleep(1.5 * 16 / len(raw))
            r = await asyncio.wait_for(read_response(reader), IO_TIMEOUT)
            if r is None:
                raise Failure("slow drip %d: no answer" % i)
            check_complete_reply("slow drip %d" % i, r)
        finally:
            writer.close()

    async def idle(i):
        """A connection that sends nothing (or half a request line) and holds on for 3 s."""
        reader, writer = await asyncio.open_connection(HOST, port)
        if i % 2:
            writer.write(b"POST /v1/compl")
            await writer.drain()
        await asyncio.sleep(3)
        writer.close()

    results = await asyncio.gather(*[run(c) for c in cases], *[slow_drip(i) for i in range(8)],
                                   *[idle(i) for i in range(16)], return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        for e in errors[:10]:
            print("  %r" % e, file=sys.stderr)
        raise Failure("%d of %d hostile requests were mishandled; first: %r" % (len(errors), len(cases), errors[0]))
    print("hostile: %d requests: %d answered 4xx, %d answered 200, %d dropped (truncated); 8 slow, 16 idle" %
          (len(cases), counts["error"], counts["ok"], counts["dropped"]))
    slowest.sort(reverse=True)
    print("  slowest: " + ", ".join("%s %.2f s" % (n[:40], dt) for dt, n in slowest[:4]))
    bad = sum(1 for c in cases if c[3] != "ok")
    if bad < 500:
        raise Failure("only %d malformed or hostile cases" % bad)


def good_body():
    return {"model": "tiny", "prompt": "the cat sat", "max_tokens": 3}


async def expect_continue(port):
    """A client that sends "Expect: 100-continue" and waits for the interim answer before its
    body (as curl does past 1 MB) gets it at once, then its final answer."""
    body = json.dumps(good_body()).encode()
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        head = request_bytes("POST", "/v1/completions", body, {"Expect": "100-continue"})[:-len(body)]
        writer.write(head)
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        if not interim.startswith(b"HTTP/1.1 100"):
            raise Failure("Expect: 100-continue answered %r" % interim)
        writer.write(body)
        await writer.drain()
        r = await asyncio.wait_for(read_response(reader), IO_TIMEOUT)
    finally:
        writer.close()
    check_complete_reply("Expect: 100-continue", r)


async def read_to_close(port, raw):
    """Sends raw bytes; returns every byte the server sends until it closes."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), IO_TIMEOUT)
    finally:
        writer.close()


async def http10_stream(port):
    """An HTTP/1.0 client streams without chunks (which it cannot read): the events, then the close."""
    raw = json.dumps(dict(good_body(), stream=True)).encode()
    answer = await read_to_close(port, b"POST /v1/completions HTTP/1.0\r\nContent-Type: application/json\r\n"
                                       b"Content-Length: %d\r\n\r\n" % len(raw) + raw)
    head, _, events = answer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.0 200") or b"chunked" in head.lower():
        raise Failure("HTTP/1.0 stream: %r" % head)
    if not events.startswith(b"data: {") or not events.endswith(b"data: [DONE]\n\n"):
        raise Failure("HTTP/1.0 stream body: %r" % events[:200])


async def head_has_no_body(port):
    """HEAD /health answers 200 with the Content-Length a GET would get and no body: the next
    pipelined response follows its head at once."""
    raw = await read_to_close(port, b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"
                                    b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, rest = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200") or b"content-length: 0" in head.lower():
        raise Failure("HEAD /health: %r" % head)
    if not rest.startswith(b"HTTP/1.1 200"):
        raise Failure("HEAD /health sent a body: %r" % rest[:200])


# ---------------------------------------------------------------------------------------------
# Phase 4: a server out of file descriptors.

def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def out_of_descriptors(args, tmp):
    """A second server, limited to 64 file descriptors, given 96 idle connections: the ones it
    cannot accept wait in the backlog while it idles (once, a failed accept was retried at once:
    a core spun and the log grew by megabytes a second); once they close it serves again."""
    log_path = os.path.join(tmp, "fds.log")
    server = Server(args.mlaserve, args.source_dir, log_path, max_fds=64)
    writers = []
    try:
        await check_up(server, "out of descriptors: start")
        for _ in range(96):
            writers.append((await asyncio.open_connection(HOST, server.port))[1])
        await asyncio.sleep(0.5)  # the server takes what it can
        cpu, log_size = cpu_seconds(server.proc.pid), os.path.getsize(log_path)
        await asyncio.sleep(2.0)
        cpu, grew = cpu_seconds(server.proc.pid) - cpu, os.path.getsize(log_path) - log_size
        print("out of descriptors: %.2f s of CPU and %d bytes of log in 2 s" % (cpu, grew))
        if cpu > 0.5 or grew > 4096:
            raise Failure("out of descriptors, the server spent %.2f s of CPU and wrote %d bytes of log in 2 s"
                          % (cpu, grew))
        for w in writers:
            w.close()
        writers = []
        deadline = time.time() + 20
        while True:  # the closed connections' descriptors come back as their sessions end
            try:
                await check_up(server, "out of descriptors: after")
                break
            except (Failure, OSError, asyncio.TimeoutError):
                if time.time() > deadline:
                    raise
                await asyncio.sleep(0.2)
    finally:
        for w in writers:
            w.close()
        server.kill()


# ---------------------------------------------------------------------------------------------
# Phase 5: a client that stops reading.

async def stalled_reader(args, tmp):
    """A third server, with --write-timeout 2, streams ~6 MB (64 choices of 200 tokens with
    logprobs) to a client with a 4 KB receive buffer that reads nothing until the generation has
    ended (aborted or done) and 3 s more: the server must give up on it (close the connection,
    abort what is left of its generation), so that what the client then reads ends without
    "data: [DONE]". (Waiting on the server, not on the clock: a slow machine generates slowly.)"""
    server = Server(args.mlaserve, args.source_dir, os.path.join(tmp, "stall.log"), extra_args=("--write-timeout", "2"))
    try:
        await check_up(server, "stalled reader: start")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((HOST, server.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        body = {"model": "tiny", "prompt": "the cat sat", "max_tokens": 200, "ignore_eos": True, "stream": True,
                "n": 64, "logprobs": 5}
        writer.write(request_bytes("POST", "/v1/completions", json.dumps(body).encode()))
        await writer.drain()
        await asyncio.sleep(1.0)  # admitted
        await drained(server.port, deadline_s=120)
        await asyncio.sleep(3.0)  # past the write timeout of the write then blocked
        received = b""
        try:
            while True:
                piece = await asyncio.wait_for(reader.read(1 << 20), IO_TIMEOUT)
                if not piece:
                    break
                received += piece
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            writer.close()
        print("stalled reader: %d bytes came before the server closed" % len(received))
        if b"data: [DONE]" in received:
            raise Failure("the server waited for a client that did not read (%d bytes, all of them)" % len(received))
    finally:
        server.kill()


async def main_async(args, server, tmp):
    results_dir = os.path.join(tmp, "results")
    await check_up(server, "start")
    start = time.time()
    t = start

    def lap(what):
        nonlocal t
        print("  (%s: %.1f s)" % (what, time.time() - t))
        t = time.time()

    await asyncio.get_running_loop().run_in_executor(None, bench_serve, args.mlaserve, server.port, results_dir)
    await check_up(server, "bench serve")
    lap("bench serve")
    await concurrent_streams(server.port, args.streams, args.seed)
    await check_up(server, "concurrent streams")
    await drained(server.port)
    lap("concurrent streams")
    await hostile(server.port, args.seed)
    await head_has_no_body(server.port)
    await expect_continue(server.port)
    await http10_stream(server.port)
    await check_up(server, "hostile requests")
    lap("hostile requests")
    await concurrent_streams(server.port, 32, args.seed + 1)  # still serving normally
    await drained(server.port)
    lap("streams after")
    await out_of_descriptors(args, tmp)
    lap("out of descriptors")
    await stalled_reader(args, tmp)
    lap("stalled reader")
    print("all phases passed in %.1f s" % (time.time() - start))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mlaserve", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--streams", type=int, default=240)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlaserve_load_") as tmp:
        server = Server(args.mlaserve, args.source_dir, os.path.join(tmp, "server.log"))
        try:
            asyncio.run(main_async(args, server, tmp))
        except Failure as e:
            print("FAIL: %s" % e, file=sys.stderr)
            print("server log tail:\n" + server.log_tail(), file=sys.stderr)
            return 1
        finally:
            server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
