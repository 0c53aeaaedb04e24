#!/usr/bin/env python3
"""Produces, at test time, what mlaserve's tokenizer tests compare against: the outputs of
the peer implementations (Hugging Face tokenizers 0.23.3, jinja2 3.1.6) on generated inputs.

  make_golden.py --out DIR [--v3-dir PATH] [--source-dir REPO]

writes under DIR:
  tokenizers/small/     a V3-structured BPE (multilingual, 4,000 ids) trained here
  tokenizers/variant/   a GPT-2-style ByteLevel BPE with every added-token flag, Split
                        behaviours and ignore_merges, for the code paths V3 does not use
  encode/NAME.jsonl     {"text", "ids", "ids_special"} per corpus string and tokenizer
  decode/NAME.jsonl     {"ids", "text", "text_skip"} for random id sequences
  pretokenize.jsonl     {"pattern", "is_regex", "behavior", "invert", "text", "pieces"}
  chat/NAME.jsonl       {"messages", "add_generation_prompt", "context", "rendered"|"error"}
  jinja_cases.jsonl     tests/tokenizer/data/jinja_cases.json rendered, or the error type
  manifest.json         the tokenizer directories (V3 only when --v3-dir exists)

Templates render in an environment built like transformers' chat-template one
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, its tojson and
raise_exception), since that is the behaviour mlaserve's ChatTemplate reproduces.
ids_special applies transformers' rule for LlamaTokenizerFast: BOS first when
add_bos_token, EOS last when add_eos_token (tokenizer.json itself adds nothing).
"""
import argparse
import json
import os
import random
import sys

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402
import v3_style  # noqa: E402


def write_jsonl(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------- tokenizers

def build_small(out_dir):
    extra = ["<think>", "</think>", "<|EOT|>"]
    tok = v3_style.train(corpus.training_corpus(), 4000, extra_added=extra,
                         extra_special=["<｜place▁holder▁no▁7｜>"])
    v3_style.write(tok, out_dir)


def build_variant(out_dir):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\d+"), "contiguous"),
        pre_tokenizers.Split("--", "removed"),
        pre_tokenizers.Split(Regex(r"[、。「」]"), "merged_with_next"),
        pre_tokenizers.Split(Regex(r"\s+$"), "merged_with_previous"),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True),
    ])
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus.training_corpus(seed=9, sentences=8000), trainer)
    tok.add_tokens([
        AddedToken("<lstrip>", lstrip=True), AddedToken("<rstrip>", rstrip=True),
        AddedToken("<both>", lstrip=True, rstrip=True), AddedToken("word", single_word=True),
        AddedToken(" sp", single_word=True), AddedToken("[raw]", normalized=False),
        AddedToken("[raw]x", normalized=True), AddedToken("ab", normalized=False),
        AddedToken("abc", normalized=True), AddedToken("<｜User｜>"), AddedToken("Ġhello"),
        AddedToken("hello world"),
    ])
    tok.add_special_tokens([AddedToken("<sp>", special=True), AddedToken("<sp_l>", special=True, lstrip=True)])
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"add_bos_token": True, "add_eos_token": True, "bos_token": "<s>", "eos_token": "</s>",
                   "tokenizer_class": "PreTrainedTokenizerFast"}, f)


VARIANT_STRINGS = [
    "a <lstrip>b", "a  \t<lstrip>", "<rstrip>  \n x", "x <both>  y", "word", "xword", "wordx", "a word b",
    "_word", "word_", "éword", "word²", "-word-", "x sp", "x  sp", "[raw]x", "[raw]y", "abc", "xabcx", "ab abc",
    "<｜User｜>hi", "Ġhello", " hello", "hello world", "hello  world", "<sp>x", "y <sp_l>z", "12--34 5678",
    "a--b----c", "「こんにちは」、世界。", "trailing   ", "lines \n\n", "",
]


def encode_rows(tok, config, texts):
    bos = tok.token_to_id(config["bos_token"]) if config.get("add_bos_token") else None
    eos = tok.token_to_id(config["eos_token"]) if config.get("add_eos_token") else None
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False).ids
        special = ([bos] if bos is not None else []) + ids + ([eos] if eos is not None else [])
        yield {"text": text, "ids": ids, "ids_special": special}


def token_bytes_of(tok, i):
    t = tok.id_to_token(i)
    try:
        return bytes(BYTE_DECODER[c] for c in t)
    except KeyError:
        return t.encode()


def _byte_decoder():
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


BYTE_DECODER = _byte_decoder()


def decode_rows(tok, seed):
    rng = random.Random(seed)
    size = tok.get_vocab_size(with_added_tokens=True)
    ids_all = [i for i in range(size) if tok.id_to_token(i) is not None]
    specials = [t.content for t in tok.get_added_tokens_decoder().values()]
    special_ids = [tok.token_to_id(s) for s in specials]
    # Tokens that are not valid UTF-8 on their own: halves of characters.
    partial = [i for i in ids_all if not _valid_utf8(token_bytes_of(tok, i))]
    for n in range(400):
        length = rng.randint(1, 24)
        ids = []
        for _ in range(length):
            r = rng.random()
            pool = partial if (r < 0.4 and partial) else special_ids if r < 0.5 else ids_all
            ids.append(rng.choice(pool))
        yield {"ids": ids, "text": tok.decode(ids, skip_special_tokens=False),
               "text_skip": tok.decode(ids, skip_special_tokens=True)}


def _valid_utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


# ----------------------------------------------------------------------- pre-tokenizers

def pretokenize_rows():
    patterns = [(r"\s+", True), (r"\p{N}", True), (r"a*", True), ("", True), (r"(?=x)", True), (r"\s+$", True),
                (r"^.", True), (" ", False), ("ab", False), (".", False), ("", False)]
    texts = ["", "a", "hello world  foo", "  lead and trail  ", "aaxaabxa", "12 345 x6", "ab.ab..ab", "x\nx \n\ny",
             "日本 語\u3000テスト\u2028終", "\x85\u180e\u200b ", "tab\tsep\tline\n"]
    for pattern, is_regex in patterns:
        for behavior in ["removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"]:
            for invert in [False, True]:
                split = pre_tokenizers.Split(Regex(pattern) if is_regex else pattern, behavior, invert=invert)
                for text in texts:
                    pieces = [p for p, _ in split.pre_tokenize_str(text)]
                    yield {"pattern": pattern, "is_regex": is_regex, "behavior": behavior, "invert": invert,
                           "text": text, "pieces": pieces}


# ------------------------------------------------------------------------ chat templates

def chat_environment():
    """jinja2 set up as transformers sets it up for chat templates."""

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def render(env, source, context):
    try:
        return {"rendered": env.from_string(source).render(**context)}
    except Exception as e:  # the C++ engine must fail too; the type is kept for the log
        return {"error": type(e).__name__ + ": " + str(e)}


def conversations(seed=5):
    rng = random.Random(seed)
    texts = ["Hi", "How are you?", "What is 2+2?", "日本語で答えて", "Line one\nLine two\r\n", "  spaced  ",
             "emoji 👨‍👩‍👧 and <|User|> look-alike", "{{ not a template }}", "{% raw %}", "tab\there", "",
             "<think>\nlet me see\n</think>\n\nThe answer is 4.", "a</think>b</think>c", "Привет!"]

    def call(k):
        args = rng.choice(['{"city": "Paris"}', '{"q": "weather", "n": 3}', "{}",
                           {"city": "Tōkyō", "days": [1, 2]}, '{"nested": {"a": [true, null]}}'])
        return {"type": "function", "function": {"name": rng.choice(["get_weather", "search", "calc"]) + str(k),
                                                 "arguments": args}}

    convs = [
        [{"role": "user", "content": "Hi"}],
        [{"role": "system", "content": "You are helpful"}, {"role": "user", "content": "Hi"},
         {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "How are you?"}],
        [{"role": "system", "content": "A"}, {"role": "system", "content": "B"}, {"role": "user", "content": "x"}],
        [],
    ]
    for _ in range(60):
        conv = []
        for _ in range(rng.randint(0, 2)):
            conv.append({"role": "system", "content": rng.choice(texts)})
        for turn in range(rng.randint(1, 4)):
            conv.append({"role": "user", "content": rng.choice(texts)})
            if rng.random() < 0.35:
                calls = [call(k) for k in range(rng.randint(1, 3))]
                conv.append({"role": "assistant", "content": rng.choice([None, None, "Let me check."]),
                             "tool_calls": calls})
                for _ in range(rng.randint(1, 3)):
                    conv.append({"role": "tool", "content": rng.choice(['{"temp": 21}', "sunny", "无结果"])})
            if rng.random() < 0.8:
                conv.append({"role": "assistant", "content": rng.choice(texts)})
        convs.append(conv)
    # Messages the templates reject, or on which Python raises: both sides must fail.
    convs.append([{"role": "user", "content": None}])
    convs.append([{"role": "critic", "content": "x"}])
    convs.append([{"role": "user", "content": "x"}, {"role": "assistant", "content": None}])
    return convs


def chat_rows(env, source, context):
    for conv in conversations():
        for gen in (False, True):
            # transformers always passes tools and documents (None when not given).
            ctx = dict(context, messages=conv, add_generation_prompt=gen, tools=None, documents=None)
            yield dict({"messages": conv, "add_generation_prompt": gen, "context": context}, **render(env, source, ctx))


def jinja_case_rows(env, cases_path):
    with open(cases_path, encoding="utf-8") as f:
        cases = json.load(f)
    for case in cases:
        yield dict(case, **render(env, case["template"], case.get("context", {})))


# ---------------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--v3-dir", default="")
    ap.add_argument("--source-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    args = ap.parse_args()
    out = args.out
    src = os.path.abspath(args.source_dir)
    data = os.path.join(src, "tests", "tokenizer", "data")

    dirs = {"small": os.path.join(out, "tokenizers", "small"), "variant": os.path.join(out, "tokenizers", "variant"),
            "tiny": os.path.join(src, "tests", "data", "tiny-tokenizer")}
    build_small(dirs["small"])
    build_variant(dirs["variant"])
    has_v3 = bool(args.v3_dir) and os.path.isfile(os.path.join(args.v3_dir, "tokenizer.json"))
    if has_v3:
        dirs["v3"] = os.path.abspath(args.v3_dir)

    texts = corpus.conformance_corpus()
    for name, d in dirs.items():
        tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        with open(os.path.join(d, "tokenizer_config.json"), encoding="utf-8") as f:
            config = json.load(f)
        for key in ("bos_token", "eos_token"):
            if isinstance(config.get(key), dict):
                config[key] = config[key]["content"]
        strings = texts + (VARIANT_STRINGS if name == "variant" else [])
        write_jsonl(os.path.join(out, "encode", name + ".jsonl"), encode_rows(tok, config, strings))
        write_jsonl(os.path.join(out, "decode", name + ".jsonl"), decode_rows(tok, seed=len(name)))

    write_jsonl(os.path.join(out, "pretokenize.jsonl"), pretokenize_rows())

    env = chat_environment()
    v3_tokens = {"bos_token": v3_style.BOS, "eos_token": v3_style.EOS}
    templates = {"v3_format": os.path.join(data, "v3_format.jinja"), "r1_format": os.path.join(data, "r1_format.jinja"),
                 "v2_chat_format": os.path.join(data, "v2_chat_format.jinja")}
    chats = {name: open(path, encoding="utf-8").read() for name, path in templates.items()}
    if has_v3:
        with open(os.path.join(args.v3_dir, "tokenizer_config.json"), encoding="utf-8") as f:
            chats["v3_shipped"] = json.load(f)["chat_template"]
    for name, source in chats.items():
        context = dict(v3_tokens)
        if name == "v2_chat_format":
            context = {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"}
        write_jsonl(os.path.join(out, "chat", name + ".jsonl"), chat_rows(env, source, context))
    write_jsonl(os.path.join(out, "jinja_cases.jsonl"), jinja_case_rows(env, os.path.join(data, "jinja_cases.json")))

    manifest = {"tokenizers": dirs, "templates": {n: p for n, p in templates.items()},
                "v3_template_from": dirs.get("v3")}
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, ensure_ascii=False, indent=1)
    print(f"golden data for {', '.join(dirs)} written to {out}")


if __name__ == "__main__":
    main()
