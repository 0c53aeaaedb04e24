#!/usr/bin/env python3
"""The Hugging Face side of bench/tokenizer/tokenizer_bench.cc, run by it in the same run.

  hf_tokenizer_bench.py make-text --out FILE --bytes N
      writes the benchmark document (tools/tokenizer/corpus.py document(): English
      paragraphs with code blocks, numbers, some Chinese, Japanese and Russian).
  hf_tokenizer_bench.py encode --tokenizer DIR --text FILE --repeats R
      times tokenizers' encode (add_special_tokens=False) of the whole document, cold (first
      call after loading) and warm (best and median of R), and of its paragraphs one call
      each; prints one JSON object with the times, the token count and an id checksum.
The checksum is h = (h * 1000003 + id) mod 2**64 over the ids, as the C++ side computes it.
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "tokenizer"))


def checksum(ids):
    h = 0
    for i in ids:
        h = (h * 1000003 + i) % (1 << 64)
    return h


def encode(args):
    import tokenizers
    from tokenizers import Tokenizer

    with open(args.text, encoding="utf-8", newline="") as f:  # keep \r\n as it is
        text = f.read()
    paragraphs = [p for p in text.split("\n\n") if p]
    t0 = time.perf_counter()
    tok = Tokenizer.from_file(os.path.join(args.tokenizer, "tokenizer.json"))
    load_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    ids = tok.encode(text, add_special_tokens=False).ids
    cold_s = time.perf_counter() - t0
    warm = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        tok.encode(text, add_special_tokens=False)
        warm.append(time.perf_counter() - t0)
    lines = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for p in paragraphs:
            tok.encode(p, add_special_tokens=False)
        lines.append(time.perf_counter() - t0)
    print(json.dumps({
        "version": tokenizers.__version__,
        "load_s": load_s,
        "doc": {"cold_s": cold_s, "warm_best_s": min(warm), "warm_median_s": statistics.median(warm),
                "tokens": len(ids), "checksum": str(checksum(ids))},
        "paragraphs": {"count": len(paragraphs), "best_s": min(lines), "median_s": statistics.median(lines)},
    }))


def make_text(args):
    import corpus

    with open(args.out, "w", encoding="utf-8", newline="") as f:
        f.write(corpus.document(args.bytes))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make-text")
    m.add_argument("--out", required=True)
    m.add_argument("--bytes", type=int, required=True)
    e = sub.add_parser("encode")
    e.add_argument("--tokenizer", required=True)
    e.add_argument("--text", required=True)
    e.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    {"make-text": make_text, "encode": encode}[args.command](args)


if __name__ == "__main__":
    main()
