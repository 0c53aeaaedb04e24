#!/usr/bin/env python3
"""The server end to end through the official OpenAI Python SDK (pinned in scripts/setup.sh).

Starts `mlaserve serve` on the tiny DeepSeek-V3 model with the tiny tokenizer on the CPU (port 0:
the server picks a free port and prints it), waits for /health, runs the cases, then stops the
server with SIGTERM and checks that it exits cleanly. The server is killed in every case, also
when a case fails. Usage: openai_sdk_test.py MLASERVE_BINARY REPO_ROOT
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import openai

API_KEY = "test-key"
MODEL = "tiny-v3"
MAX_MODEL_LEN = 512
SERVER = None  # (process, base_url)


def start_server(binary, root, log):
    cmd = [binary, "--log-level", "info", "serve", os.path.join(root, "tests/data/tiny-v3"),
           "--tokenizer", os.path.join(root, "tests/data/tiny-tokenizer"), "--port", "0",
           "--api-key", API_KEY, "--max-model-len", str(MAX_MODEL_LEN), "--num-blocks", "64",
           "--http-threads", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    line_box = []
    reader = threading.Thread(target=lambda: line_box.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=120)
    if not line_box or "listening on " not in line_box[0]:
        proc.kill()
        raise RuntimeError(f"the server did not start (stdout: {line_box}); see {log.name}")
    url = line_box[0].split("listening on ")[1].split()[0]
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as r:
                if r.status == 200:
                    return proc, url
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server never answered /health")


def raw(method, path, body=None, key=API_KEY, headers=None):
    """An HTTP request outside the SDK: (status, parsed JSON or text)."""
    _, url = SERVER
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def metrics():
    status, text = raw("GET", "/metrics")
    assert status == 200, status
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


class OpenAISdkTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = openai.OpenAI(base_url=SERVER[1] + "/v1", api_key=API_KEY, timeout=120, max_retries=0)

    def chat(self, **kw):
        args = dict(model=MODEL, messages=[{"role": "user", "content": "Hello there"}], max_tokens=12,
                    temperature=0)
        args.update(kw)
        return self.client.chat.completions.create(**args)

    def complete(self, **kw):
        args = dict(model=MODEL, prompt="The quick brown fox", max_tokens=12, temperature=0)
        args.update(kw)
        return self.client.completions.create(**args)

    def test_models(self):
        models = self.client.models.list()
        self.assertEqual([m.id for m in models.data], [MODEL])
        self.assertEqual(self.client.models.retrieve(MODEL).id, MODEL)

    def test_chat_non_streamed(self):
        r = self.chat()
        self.assertEqual(r.object, "chat.completion")
        self.assertEqual(r.model, MODEL)
        self.assertEqual(len(r.choices), 1)
        c = r.choices[0]
        self.assertEqual(c.message.role, "assistant")
        self.assertIsInstance(c.message.content, str)
        self.assertIn(c.finish_reason, ("stop", "length"))
        self.assertGreater(r.usage.prompt_tokens, 3)
        self.assertTrue(1 <= r.usage.completion_tokens <= 12)
        self.assertEqual(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens)
        # The prompt went through the chat template: /tokenize of the same messages agrees.
        status, tok = raw("POST", "/tokenize", {"model": MODEL, "messages": [{"role": "user", "content": "Hello there"}]})
        self.assertEqual(status, 200)
        self.assertEqual(tok["count"], r.usage.prompt_tokens)

    def test_chat_streamed_equals_non_streamed(self):
        full = self.chat(max_tokens=16, extra_body={"ignore_eos": True})
        chunks = list(self.chat(max_tokens=16, stream=True, stream_options={"include_usage": True},
                                extra_body={"ignore_eos": True}))
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        self.assertEqual(text, full.choices[0].message.content)
        finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
        self.assertEqual(len(finals), 1)
        self.assertEqual(finals[0].choices[0].finish_reason, "length")
        self.assertEqual(chunks[-1].choices, [])
        self.assertEqual(chunks[-1].usage.completion_tokens, 16)
        self.assertEqual(chunks[-1].usage.prompt_tokens, full.usage.prompt_tokens)
        for c in chunks[:-1]:
            self.assertIsNone(c.usage)
        # Without include_usage there is no usage chunk.
        plain = list(self.chat(max_tokens=4, stream=True))
        self.assertTrue(all(c.choices for c in plain))

    def test_completions_streamed_and_not(self):
        full = self.complete(max_tokens=16, extra_body={"ignore_eos": True})
        self.assertEqual(full.object, "text_completion")
        self.assertEqual(full.choices[0].finish_reason, "length")
        self.assertEqual(full.usage.completion_tokens, 16)
        chunks = list(self.complete(max_tokens=16, stream=True, stream_options={"include_usage": True},
                                    extra_body={"ignore_eos": True}))
        text = "".join(c.choices[0].text for c in chunks if c.choices)
        self.assertEqual(text, full.choices[0].text)
        self.assertEqual(chunks[-1].usage.total_tokens, full.usage.total_tokens)
        # Token-id prompts: the BOS-prefixed ids of the text prompt give the same answer.
        _, tok = raw("POST", "/tokenize", {"prompt": "The quick brown fox"})
        by_ids = self.complete(prompt=tok["tokens"], max_tokens=16, extra_body={"ignore_eos": True})
        self.assertEqual(by_ids.choices[0].text, full.choices[0].text)

    def test_stop_strings(self):
        full = self.complete(max_tokens=32, extra_body={"ignore_eos": True}).choices[0].text
        # A stop string from the middle of the greedy text: the answer is cut before its first
        # occurrence, with finish_reason stop.
        candidates = [full[i:i + 3] for i in range(4, len(full) - 3) if full[i:i + 3].strip() == full[i:i + 3]]
        self.assertTrue(candidates, f"no usable stop string in {full!r}")
        stop = candidates[0]
        r = self.complete(max_tokens=32, stop=[stop], extra_body={"ignore_eos": True})
        self.assertEqual(r.choices[0].text, full[:full.index(stop)])
        self.assertEqual(r.choices[0].finish_reason, "stop")
        streamed = list(self.complete(max_tokens=32, stop=stop, stream=True, extra_body={"ignore_eos": True}))
        self.assertEqual("".join(c.choices[0].text for c in streamed), full[:full.index(stop)])
        self.assertEqual(streamed[-1].choices[0].finish_reason, "stop")

    def test_chat_logprobs(self):
        r = self.chat(logprobs=True, top_logprobs=3, max_tokens=8, extra_body={"ignore_eos": True})
        content = r.choices[0].logprobs.content
        self.assertEqual(len(content), r.usage.completion_tokens)
        for entry in content:
            self.assertLessEqual(entry.logprob, 0.0)
            self.assertEqual(len(entry.top_logprobs), 3)
            tops = [t.logprob for t in entry.top_logprobs]
            self.assertEqual(tops, sorted(tops, reverse=True))
            # Greedy: the chosen token is the most likely one.
            self.assertAlmostEqual(entry.logprob, tops[0], places=5)
            self.assertEqual(entry.token, entry.top_logprobs[0].token)
        self.assertEqual("".join(e.token for e in content), r.choices[0].message.content)
        streamed = list(self.chat(logprobs=True, top_logprobs=2, max_tokens=8, stream=True,
                                  extra_body={"ignore_eos": True}))
        entries = [e for c in streamed if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
        self.assertEqual(len(entries), 8)
        self.assertEqual([e.token for e in entries], [e.token for e in content])

    def test_completion_logprobs(self):
        r = self.complete(logprobs=2, max_tokens=8, extra_body={"ignore_eos": True})
        lp = r.choices[0].logprobs
        self.assertEqual(len(lp.tokens), 8)
        self.assertEqual(len(lp.token_logprobs), 8)
        self.assertEqual(len(lp.top_logprobs), 8)
        self.assertTrue(all(1 <= len(t) <= 2 for t in lp.top_logprobs))
        self.assertEqual(lp.text_offset[0], 0)
        self.assertEqual("".join(lp.tokens), r.choices[0].text)

    def test_n_choices_and_seed(self):
        r = self.chat(n=3, temperature=1.0, seed=7, max_tokens=8, extra_body={"ignore_eos": True})
        self.assertEqual(sorted(c.index for c in r.choices), [0, 1, 2])
        self.assertEqual(r.usage.completion_tokens, 24)
        again = self.chat(n=3, temperature=1.0, seed=7, max_tokens=8, extra_body={"ignore_eos": True})
        self.assertEqual([c.message.content for c in r.choices], [c.message.content for c in again.choices])
        chunks = list(self.complete(n=2, temperature=1.0, seed=3, max_tokens=6, stream=True,
                                    extra_body={"ignore_eos": True}))
        texts = {0: "", 1: ""}
        for c in chunks:
            for ch in c.choices:
                texts[ch.index] += ch.text
        full = self.complete(n=2, temperature=1.0, seed=3, max_tokens=6, extra_body={"ignore_eos": True})
        self.assertEqual([texts[0], texts[1]], [c.text for c in full.choices])

    def test_sampling_parameters_accepted(self):
        r = self.chat(temperature=0.8, top_p=0.9, presence_penalty=0.5, frequency_penalty=0.5, seed=1,
                      max_completion_tokens=5,
                      extra_body={"top_k": 20, "min_p": 0.05, "repetition_penalty": 1.1, "ignore_eos": True})
        self.assertEqual(r.usage.completion_tokens, 5)

    def test_logit_bias(self):
        # A bias of +100 on one token makes the greedy answer that token every time, streamed or
        # not, through the official client's own logit_bias argument.
        _, tok = raw("POST", "/tokenize", {"prompt": " fox", "add_special_tokens": False})
        forced_id = tok["tokens"][0]
        _, want = raw("POST", "/detokenize", {"tokens": [forced_id] * 4})
        bias = {str(forced_id): 100}
        r = self.complete(max_tokens=4, logit_bias=bias, extra_body={"ignore_eos": True})
        self.assertEqual(r.choices[0].text, want["prompt"])
        streamed = list(self.chat(max_tokens=4, logit_bias=bias, stream=True, extra_body={"ignore_eos": True}))
        self.assertEqual("".join(c.choices[0].delta.content or "" for c in streamed if c.choices), want["prompt"])
        with self.assertRaises(openai.BadRequestError) as e:
            self.complete(logit_bias={"5": 101})
        self.assertEqual(e.exception.body["param"], "logit_bias")
        with self.assertRaises(openai.BadRequestError) as e:
            self.complete(logit_bias={str(10 ** 9): 1})  # outside the vocabulary: the engine refuses it
        self.assertEqual(e.exception.status_code, 400)

    def test_errors(self):
        bad = openai.OpenAI(base_url=SERVER[1] + "/v1", api_key="wrong", max_retries=0)
        with self.assertRaises(openai.AuthenticationError) as e:
            bad.models.list()
        self.assertEqual(e.exception.status_code, 401)
        with self.assertRaises(openai.NotFoundError) as e:
            self.chat(model="no-such-model")
        self.assertEqual(e.exception.body["code"], "model_not_found")
        for kw, param in [({"max_tokens": -1}, "max_tokens"), ({"temperature": 5}, "temperature"),
                          ({"top_p": 0}, "top_p"), ({"n": 0}, "n"), ({"top_logprobs": 3}, "top_logprobs")]:
            with self.assertRaises(openai.BadRequestError, msg=str(kw)) as e:
                self.chat(**kw)
            self.assertEqual(e.exception.status_code, 400)
            self.assertEqual(e.exception.body["param"], param)
        with self.assertRaises(openai.BadRequestError) as e:
            self.complete(prompt=[5] * (MAX_MODEL_LEN + 10))
        self.assertEqual(e.exception.body["code"], "context_length_exceeded")
        self.assertIn(str(MAX_MODEL_LEN), e.exception.body["message"])
        with self.assertRaises(openai.BadRequestError) as e:
            self.complete(max_tokens=MAX_MODEL_LEN)
        self.assertEqual(e.exception.body["code"], "context_length_exceeded")

    def test_raw_http_errors(self):
        status, body = raw("POST", "/v1/chat/completions", b'{"model": ')
        self.assertEqual(status, 400)
        self.assertEqual(body["error"]["type"], "invalid_request_error")
        status, body = raw("POST", "/v1/chat/completions", {"model": MODEL, "messages": "hi"})
        self.assertEqual((status, body["error"]["param"]), (400, "messages"))
        status, body = raw("POST", "/v1/completions", {"model": MODEL, "prompt": "x", "max_tokens": "10"})
        self.assertEqual((status, body["error"]["param"]), (400, "max_tokens"))
        status, body = raw("POST", "/v1/completions", {"model": MODEL, "prompt": "x", "max_tokens": 1e30})
        self.assertEqual(status, 400)
        status, body = raw("GET", "/v1/nothing")
        self.assertEqual(status, 404)
        self.assertIn("error", body)
        status, body = raw("GET", "/v1/completions")
        self.assertEqual(status, 405)
        status, body = raw("POST", "/v1/completions", b"\xff\xfe{}")
        self.assertEqual(status, 400)
        status, _ = raw("GET", "/health", key=None)
        self.assertEqual(status, 200)
        status, _ = raw("GET", "/metrics", key=None)
        self.assertEqual(status, 401)

    def test_tokenize_detokenize(self):
        status, tok = raw("POST", "/tokenize", {"prompt": "hello world", "add_special_tokens": False})
        self.assertEqual(status, 200)
        self.assertEqual(tok["count"], len(tok["tokens"]))
        status, detok = raw("POST", "/detokenize", {"tokens": tok["tokens"]})
        self.assertEqual((status, detok["prompt"]), (200, "hello world"))
        status, _ = raw("POST", "/detokenize", {"tokens": [10 ** 9]})
        self.assertEqual(status, 400)

    def test_zz_disconnect_aborts_and_metrics(self):
        # A long streamed request whose client goes away after the first chunk: the server aborts
        # it, and once everything is finished no KV block is in use.
        stream = self.complete(max_tokens=400, stream=True, extra_body={"ignore_eos": True})
        next(iter(stream))
        stream.close()
        deadline = time.time() + 20
        m = metrics()
        # The engine frees the blocks first; the abort is counted when the HTTP side sees its end.
        while time.time() < deadline and (m["mlaserve_kv_blocks_in_use"] > 0 or m["mlaserve_num_requests_running"] > 0
                                          or m['mlaserve_requests_finished_total{finish_reason="abort"}'] < 1):
            time.sleep(0.1)
            m = metrics()
        self.assertEqual(m["mlaserve_kv_blocks_in_use"], 0)
        self.assertEqual(m["mlaserve_num_requests_running"], 0)
        self.assertGreaterEqual(m['mlaserve_requests_finished_total{finish_reason="abort"}'], 1)
        self.assertGreater(m['mlaserve_http_requests_total{route="/v1/chat/completions",code="200"}'], 0)
        self.assertGreater(m["mlaserve_time_to_first_token_seconds_count"], 0)


def main():
    global SERVER
    binary, root = sys.argv[1], sys.argv[2]
    with tempfile.NamedTemporaryFile("w+", prefix="mlaserve_serve_", suffix=".log", delete=False) as log:
        proc = None
        try:
            SERVER = start_server(binary, root, log)
            proc = SERVER[0]
            result = unittest.main(argv=[sys.argv[0], "-v"], exit=False).result
            ok = result.wasSuccessful()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            if code != 0:
                print(f"the server exited with {code} after SIGTERM", file=sys.stderr)
                ok = False
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        if not ok:
            log.seek(0)
            print("---- server log (tail) ----\n" + log.read()[-4000:], file=sys.stderr)
    os.unlink(log.name)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
