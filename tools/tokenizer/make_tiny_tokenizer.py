#!/usr/bin/env python3
"""Writes tests/data/tiny-tokenizer/{tokenizer.json,tokenizer_config.json}: the tokenizer of
mlaserve's tiny test models (vocab_size 1024), small enough to commit.

It has DeepSeek-V3's structure (v3_style.py: the V3 pre-tokenizer, ByteLevel decoder, BOS
<｜begin▁of▁sentence｜> = 0, EOS <｜end▁of▁sentence｜> = 1, pad <｜▁pad▁｜> = 2, <｜User｜>,
<｜Assistant｜> and the nine tool tokens as added tokens), 997 ids in all, BPE trained on
generated English prose and code, and as chat_template the V3-format template written for
this project (tests/tokenizer/data/v3_format.jinja), not DeepSeek's own.

  python3 tools/tokenizer/make_tiny_tokenizer.py [--out tests/data/tiny-tokenizer]
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import corpus  # noqa: E402
import v3_style  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
# 3 special + 256 byte symbols + merges = 986; with the 11 added tokens: 997 ids (< 1024).
BPE_VOCAB = 986


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "tiny-tokenizer"))
    args = ap.parse_args()
    with open(os.path.join(ROOT, "tests", "tokenizer", "data", "v3_format.jinja"), encoding="utf-8") as f:
        template = f.read()
    tok = v3_style.train(corpus.english_code_corpus(), BPE_VOCAB)
    size = tok.get_vocab_size(with_added_tokens=True)
    if size > 1000:
        sys.exit(f"tiny tokenizer has {size} ids, more than 1000")
    v3_style.write(tok, args.out, chat_template=template)
    print(f"{args.out}: {size} ids")


if __name__ == "__main__":
    main()
