"""Deterministic text generators for the tokenizer tests and benchmark.

conformance_corpus() returns the strings every tokenizer is checked on (over 1,000): mixed
scripts, long digit runs, emoji (ZWJ sequences, flags, keycaps, skin tones, Unicode 15/16
additions), combining marks, CRLF and other whitespace runs, code, and special tokens in the
middle of text beside their ASCII look-alikes. training_corpus() is English prose plus code
(and a little of every script) for training the small test tokenizers, and document() is a
long mixed document for the benchmark. Everything derives from a seeded random.Random, so
the same strings come out on every machine.
"""
import random

WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there been one all we their has would when if so no will "
    "what can more out into my than some could them only other time new about may then do "
    "first any like now such our over man even most made after also did many before must "
    "through back where much your way down should because each just those people how too "
    "little state good very make world still own see men work long get here between both life "
    "being under never day same another know while last might us great old year off come "
    "since against go came right used take three model token server request stream batch "
    "latent attention cache kernel tensor prompt sampling decode prefill throughput latency"
).split()

CAPITALISED = ["The", "A", "In", "It", "We", "They", "However", "When", "DeepSeek", "Python", "Tokyo", "Paris"]

PUNCT = [".", ",", ";", ":", "!", "?", "...", " -", " (", ")", "\"", "'", "'s", "n't", " —", "…", "!?"]

CYRILLIC = "привет мир это проверка токенизатора Москва данные модель язык быстро медленно".split()
ARABIC = "مرحبا بالعالم هذا اختبار للنموذج اللغة العربية الكتاب المدرسة".split()
DEVANAGARI = "नमस्ते दुनिया यह परीक्षण है भाषा मॉडल हिन्दी किताब विद्यालय".split()
THAI = "สวัสดีครับ ภาษาไทย ทดสอบ โมเดล ข้อความ ตัวตัดคำ ประเทศไทย".split()
HANGUL = "안녕하세요 세계 이것은 시험입니다 한국어 모델 토크나이저 서울".split()
CJK = "我们 今天 天气 很好 中文 分词 测试 模型 语言 北京 人工智能 数据 龥 鿿 㐀 𠀀".split()
KANA = "こんにちは 世界 カタカナ ひらがな テスト です ます トークナイザー 東京 日本語".split()
GREEK = "γειά σου κόσμε δοκιμή μοντέλο".split()
HEBREW = "שָׁלוֹם עוֹלָם בְּדִיקָה".split()

EMOJI = [
    "😀", "🎉", "👍", "👍🏽", "❤️", "🔥", "✨", "🚀", "🤖", "🧠",
    "👨‍👩‍👧‍👦", "👩🏽‍💻", "🏳️‍🌈", "🧑‍🤝‍🧑", "❤️‍🔥",                      # ZWJ sequences
    "🇯🇵", "🇺🇸", "🇫🇷", "🇨🇳", "🇩🇪🇧🇷",                                   # flags
    "1️⃣", "#️⃣", "*️⃣",                                                     # keycaps
    "🏴󠁧󠁢󠁳󠁣󠁴󠁿",                                                                  # tag sequence
    "🫨", "🩷", "🪿", "🫎", "\U0001FAE9", "\U0001FAC6",                     # Unicode 15 / 16
    "☺", "☺️", "©", "™", "↔️",
]

SPECIAL_V3 = [
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>", "<｜User｜>", "<｜Assistant｜>",
    "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>",
    "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>", "<｜tool▁output▁begin｜>",
    "<｜tool▁output▁end｜>", "<｜tool▁sep｜>", "<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>",
    "<｜place▁holder▁no▁7｜>", "<|EOT|>", "<think>", "</think>",
]
LOOK_ALIKES = [
    "<|User|>", "<|Assistant|>", "<|begin_of_sentence|>", "<|end▁of▁sentence|>", "<｜User|>",
    "<|tool_calls_begin|>", "<｜User", "User｜>", "<｜ User｜>", "<｜user｜>", "< think>", "<think",
    "<｜begin▁of▁sentence｜", "｜", "▁", "<|EOT", "<|eot|>",
]

CODE = [
    'def fib(n: int) -> int:\n    """Return the n-th Fibonacci number."""\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n',
    '#include <vector>\n\nint main() {\n\tstd::vector<int> v{1, 2, 3};\n\treturn v.size() > 2 ? 0 : 1;\n}\n',
    '{"model": "deepseek-v3", "messages": [{"role": "user", "content": "Hi!"}], "max_tokens": 1024}',
    'for i in $(seq 1 10); do echo "$i" >> out.txt; done && cat out.txt | sort -n | uniq -c',
    '<div class="main"><p>Hello &amp; welcome</p><a href="https://example.org/?q=1&x=2">link</a></div>',
    '| name | value |\n|------|-------|\n| alpha | 0.001 |\n| beta | 1e-9 |\n',
    'SELECT id, name FROM users WHERE created_at >= \'2024-01-01\' ORDER BY id DESC LIMIT 100;',
    'fn main() {\r\n    let xs: Vec<u32> = (0..100).map(|x| x * x).collect();\r\n    println!("{:?}", xs);\r\n}\r\n',
    'if (x != null && x.length > 0) { return x[0]; } // first\n/* block\n   comment */',
    'const f = async (url) => { const r = await fetch(url); return r.json(); };',
    "x = [i**2 for i in range(10) if i % 2 == 0]  # squares\nprint(f'{x!r:>20}')\n",
    "    \n\t\t  \n  indented\n        deeper\n\n\n",
]

WHITESPACE = [" ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\n\n", "\r\n\r\n", " \n", "\n ", "\u00a0", "\u3000",
              "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\u200b", "\u180e", "\u2003", "\ufeff", " \t \n"]

COMBINING = ["e\u0301", "a\u0308", "n\u0303", "o\u0302\u0323", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d",
             "\u0301", "\u20dd", "i\u0307", "क्", "ก\u0e31", "\u0652"]

DIGITS_EXTRA = ["٣٤٥", "१२३", "１２３４", "²³", "½", "Ⅻ", "𝟙𝟚𝟛", "①②", "〇", "0x1F", "3.14159", "1,000,000",
                "2024-11-28", "+1 (555) 010-9999", "1e-9", "v2.0.1"]

BLOCKS = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF), (0x900, 0x97F),
          (0xE00, 0xE7F), (0x1100, 0x11FF), (0x2000, 0x206F), (0x2190, 0x22FF), (0x3000, 0x30FF),
          (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xE000, 0xE00F), (0xFE00, 0xFE0F), (0xFF00, 0xFFEF),
          (0x1F300, 0x1FAFF), (0x20000, 0x2000F), (0x2EBF0, 0x2EBFF), (0x31350, 0x3135F), (0x11F00, 0x11F5F),
          (0x10D40, 0x10D8F), (0xE0000, 0xE007F), (0x10FFF0, 0x10FFFD)]


def _sentence(rng, words=WORDS):
    n = rng.randint(3, 18)
    parts = [rng.choice(CAPITALISED)] + [rng.choice(words) for _ in range(n)]
    text = " ".join(parts)
    for _ in range(rng.randint(0, 3)):
        pos = rng.randint(0, len(text))
        text = text[:pos] + rng.choice(PUNCT) + text[pos:]
    return text + rng.choice([".", "!", "?", ":", "", "\n"])


def _digits(rng):
    n = rng.choice([1, 2, 3, 4, 5, 6, 7, 9, 10, 12, 16, 25, 40, 64])
    s = "".join(rng.choice("0123456789") for _ in range(n))
    return rng.choice(["{}", "x{}y", " {} ", "{}.{}", "${}", "#{}", "{}%", "({})", "{}\n{}"]).format(s, s[::-1])


def _random_unicode(rng, n):
    out = []
    for _ in range(n):
        lo, hi = rng.choice(BLOCKS)
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


def _mixed(rng, pieces):
    return rng.choice(["", " "]).join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))


def conformance_corpus(seed=20241128):
    rng = random.Random(seed)
    scripts = [CYRILLIC, ARABIC, DEVANAGARI, THAI, HANGUL, CJK, KANA, GREEK, HEBREW]
    out = ["", " ", "  ", "\n", "\r\n", "a", "1234567", "hello world", "Hello, World!", "日本語のテキスト",
           "<｜User｜>", "<｜User｜><｜Assistant｜>", "x<｜end▁of▁sentence｜>y", "<|User|>"]
    out += SPECIAL_V3 + LOOK_ALIKES + EMOJI + CODE + WHITESPACE + COMBINING + DIGITS_EXTRA
    for _ in range(150):
        out.append(" ".join(_sentence(rng) for _ in range(rng.randint(1, 3))))
    for _ in range(150):
        words = rng.choice(scripts)
        out.append(_mixed(rng, words + [rng.choice(WORDS), rng.choice(EMOJI), _digits(rng), rng.choice(PUNCT)]))
    for _ in range(100):
        out.append(_digits(rng) + rng.choice(["", " ", ",", "\n"]) + _digits(rng))
    for _ in range(80):
        out.append(_mixed(rng, EMOJI + COMBINING + [rng.choice(WORDS)]))
    for _ in range(100):
        ws = rng.choice(WHITESPACE) * rng.randint(1, 4)
        out.append(rng.choice(WORDS) + ws + rng.choice(WORDS + CJK) + rng.choice(WHITESPACE) * rng.randint(0, 3))
    for _ in range(60):
        code = rng.choice(CODE)
        cut = rng.randint(0, len(code))
        out.append(code[cut:] + rng.choice(WHITESPACE) + code[:cut])
    for _ in range(150):
        specials = SPECIAL_V3 + LOOK_ALIKES
        parts = [rng.choice(specials) if rng.random() < 0.4 else _sentence(rng) for _ in range(rng.randint(2, 6))]
        out.append(rng.choice(["", " ", "\n"]).join(parts))
    for _ in range(120):
        out.append(_random_unicode(rng, rng.randint(1, 40)))
    for _ in range(40):
        out.append(rng.choice(PUNCT) + rng.choice(WORDS) + rng.choice(PUNCT) * rng.randint(1, 3) + rng.choice(CJK))
    # A few long strings: long runs of one class stress the regexes and the BPE heap.
    out.append("9" * 5000)
    out.append(" " * 3000 + "x")
    out.append("\r\n" * 1000)
    out.append("a" * 4000)
    out.append("龥" * 1000 + "abc")
    out.append("".join(_sentence(rng) for _ in range(300)))
    return out


def training_corpus(seed=7, sentences=20000):
    rng = random.Random(seed)
    scripts = [CYRILLIC, ARABIC, DEVANAGARI, THAI, HANGUL, CJK, KANA, GREEK]
    lines = []
    for i in range(sentences):
        r = rng.random()
        if r < 0.75:
            lines.append(_sentence(rng))
        elif r < 0.9:
            lines.append(rng.choice(CODE))
        elif r < 0.95:
            lines.append(_digits(rng))
        else:
            lines.append(_mixed(rng, rng.choice(scripts)))
    return lines


def english_code_corpus(seed=11, sentences=30000):
    """English prose and code only: what the tiny models' tokenizer is trained on."""
    rng = random.Random(seed)
    return [_sentence(rng) if rng.random() < 0.8 else rng.choice(CODE) for _ in range(sentences)]


def document(target_bytes, seed=3):
    """A long mixed document: mostly English paragraphs, with code blocks, numbers and some
    Chinese, Japanese and Russian, roughly as a long chat prompt or RAG context looks."""
    rng = random.Random(seed)
    parts = []
    size = 0
    while size < target_bytes:
        r = rng.random()
        if r < 0.7:
            para = " ".join(_sentence(rng).strip() for _ in range(rng.randint(3, 8))) + "\n\n"
        elif r < 0.85:
            para = "```\n" + rng.choice(CODE) + "```\n\n"
        elif r < 0.95:
            para = "".join(rng.choice(CJK + KANA) for _ in range(rng.randint(10, 40))) + "。\n\n"
        else:
            para = " ".join(rng.choice(CYRILLIC) for _ in range(rng.randint(8, 20))) + ". " + _digits(rng) + "\n\n"
        parts.append(para)
        size += len(para.encode())
    return "".join(parts)
