"""The harness of the server's HTTP tests (load_fault_test.py): a minimal HTTP/1.1 client on raw
sockets, so that broken requests can be sent as they are; `mlaserve serve` on the tiny model on
the CPU as a child process; the checks that it lives, answers /health, and has drained.
Standard library only.
"""

import asyncio
import ctypes
import json
import os
import re
import resource
import signal
import subprocess
import threading
import time

HOST = "127.0.0.1"
IO_TIMEOUT = 60.0  # seconds any single exchange may take before the test calls it hung


class Failure(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# A minimal HTTP/1.1 client on raw sockets (so that broken requests can be sent as they are).

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))


async def read_response(reader):
    """Reads one response (Content-Length, chunked or until close). None if the server closed
    the connection without answering."""
    head = b""
    while b"\r\n\r\n" not in head:
        piece = await reader.read(4096)
        if not piece:
            if head:
                raise Failure("connection closed inside the response head: %r" % head[:200])
            return None
        head += piece
    head, _, rest = head.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/\d\.\d (\d{3})", lines[0])
    if not m:
        raise Failure("bad status line %r" % lines[0])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await read_body(reader, headers, rest)
    return Response(int(m.group(1)), headers, body)


async def read_body(reader, headers, rest):
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        async for piece in dechunk(reader, rest):
            body += piece
        return body
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            piece = await reader.read(n - len(rest))
            if not piece:
                raise Failure("body shorter than its Content-Length")
            rest += piece
        return rest[:n]
    while True:
        piece = await reader.read(65536)
        if not piece:
            return rest
        rest += piece


async def dechunk(reader, buf):
    """Yields the data of a chunked body as it arrives."""
    while True:
        while b"\r\n" not in buf:
            piece = await reader.read(4096)
            if not piece:
                raise Failure("chunked body ended early")
            buf += piece
        size_line, _, buf = buf.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        while len(buf) < size + 2:
            piece = await reader.read(65536)
            if not piece:
                raise Failure("chunked body ended inside a chunk")
            buf += piece
        data, buf = buf[:size], buf[size + 2:]
        if size == 0:
            return
        yield data


def request_bytes(method, path, body=b"", headers=None):
    hdrs = {"Host": "%s" % HOST, "Content-Type": "application/json", "Connection": "close"}
    if headers:
        hdrs.update(headers)
    if body or method == "POST":
        hdrs.setdefault("Content-Length", str(len(body)))
    head = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n"
    return head.encode("latin-1") + body


async def exchange(port, raw, half_close=False):
    """Sends raw bytes, returns the Response (or None if the server closed without one)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(raw)
        await writer.drain()
        if half_close:
            writer.write_eof()
        return await asyncio.wait_for(read_response(reader), IO_TIMEOUT)
    except (ConnectionResetError, BrokenPipeError):
        return None
    finally:
        writer.close()


async def get(port, path):
    r = await exchange(port, request_bytes("GET", path))
    if r is None:
        raise Failure("GET %s: no answer" % path)
    return r


# ---------------------------------------------------------------------------------------------
# The server.

def die_with_parent():
    """Linux: the server gets SIGKILL if this script dies first (a ctest timeout, say)."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Server:
    def __init__(self, mlaserve, source_dir, log_path, max_fds=None, extra_args=()):
        self.log = open(log_path, "w+")

        def prepare():
            die_with_parent()
            if max_fds is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max_fds, max_fds))

        model = os.path.join(source_dir, "tests/data/tiny-v3")
        tok = os.path.join(source_dir, "tests/data/tiny-tokenizer")
        self.proc = subprocess.Popen(
            [mlaserve, "serve", model, "--tokenizer", tok, "--port", "0", "--served-model-name", "tiny",
             "--max-num-seqs", "256", "--http-threads", "2",
             # A request without max_tokens runs to the context's end: keep that short.
             "--max-model-len", "256", *extra_args],
            stdout=subprocess.PIPE, stderr=self.log, text=True, preexec_fn=prepare)
        self.port = None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(r"listening on http://[^:]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            self.kill()
            raise Failure("the server did not start:\n" + self.log_tail())
        # Keep reading stdout so that the server never blocks on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def alive(self):
        return self.proc.poll() is None

    def log_tail(self):
        self.log.flush()
        self.log.seek(0)
        return "".join(self.log.readlines()[-30:])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


async def check_up(server, phase):
    if not server.alive():
        raise Failure("%s: the server died (exit %s):\n%s" % (phase, server.proc.returncode, server.log_tail()))
    r = await get(server.port, "/health")
    if r.status != 200:
        raise Failure("%s: /health answered %d" % (phase, r.status))


def metric(text, name):
    m = re.search(r"^mlaserve_%s(?:\{[^}]*\})? ([0-9.e+-]+)$" % name, text, re.M)
    if not m:
        raise Failure("/metrics has no mlaserve_%s" % name)
    return float(m.group(1))


async def drained(port, deadline_s=20):
    """Waits (up to deadline_s) for the engine to hold no KV block and run no request."""
    deadline = time.time() + deadline_s
    while True:
        text = (await get(port, "/metrics")).body.decode()
        in_use, running = metric(text, "kv_blocks_in_use"), metric(text, "num_requests_running")
        waiting = metric(text, "num_requests_waiting")
        if in_use == 0 and running == 0 and waiting == 0:
            print("metrics: 0 KV blocks in use, 0 running, 0 waiting (of %d blocks)" % metric(text, "kv_blocks_total"))
            return
        if time.time() > deadline:
            raise Failure("after the load: %d KV blocks in use, %d running, %d waiting" % (in_use, running, waiting))
        await asyncio.sleep(0.2)
