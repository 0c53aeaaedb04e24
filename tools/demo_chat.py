#!/usr/bin/env python3
"""The README's demo: starts `mlaserve serve` on a model, streams one chat completion from it
with the official openai client (as any OpenAI application would), prints the tokens as they
arrive and the usage, then stops the server with SIGTERM (it drains and exits).

  tools/demo_chat.py MLASERVE MODEL_DIR TOKENIZER_DIR [extra serve flags...]
"""
import os
import re
import signal
import subprocess
import sys
import time

import openai


def main():
    mlaserve, model, tokenizer, extra = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    server = subprocess.Popen([mlaserve, "serve", model, "--tokenizer", tokenizer, "--port", "0",
                               "--served-model-name", "demo", *extra],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = None
        deadline = time.time() + 120
        while port is None and time.time() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            print(line, end="")
            m = re.search(r"listening on http://[^:]+:(\d+)", line)
            port = int(m.group(1)) if m else None
        if port is None:
            sys.exit("demo: the server did not start")

        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
        question = "What does Multi-head Latent Attention keep in the KV cache?"
        print(f"\nuser> {question}\nassistant> ", end="", flush=True)
        stream = client.chat.completions.create(
            model="demo", messages=[{"role": "user", "content": question}], stream=True,
            max_tokens=32, temperature=0.0, stream_options={"include_usage": True})
        finish, usage = None, None
        for chunk in stream:
            for choice in chunk.choices:
                print(choice.delta.content or "", end="", flush=True)
                finish = choice.finish_reason or finish
            usage = chunk.usage or usage
        print(f"\n\nfinish_reason={finish}; usage: {usage.prompt_tokens} prompt + "
              f"{usage.completion_tokens} completion tokens")
        print("(a tiny random model: the words are noise; the path from HTTP to the GPU or CPU and "
              "back is the real one)")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
