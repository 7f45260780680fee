#!/usr/bin/env python3
"""llama.cpp perplexity of the default model on the long parity text (tests/data/llm/ppl_long.txt).

ppl_text.txt (12.1k characters, 2694 tokens, 5 chunks of 512, 1275 scored tokens) is long enough to check the
tokenizer on mixed text, but its perplexity moves by 0.25% between llama.cpp's own flash-attention on and off: too
noisy to hold a 0.5% bound with margin. ppl_long.txt is a frozen copy of this repository's own prose (docs/
ARCHITECTURE.md, CONTROLLER.md, WORLD.md and DECODERS.md as of 2026-12-05, concatenated; 51 KB, ~15.4k tokens,
30 chunks, ~7.7k scored tokens). It is not regenerated when the docs change.

Writes tests/data/llm/goldens/gemma3_270m_llamacpp_ppl_long.json with llama-perplexity's result at its defaults
("ppl", flash attention auto = on for this model on CPU) and with -fa off ("ppl_fa_off", for the record).
Pins and binaries as in make_llamacpp_goldens.py (llama.cpp 0c1e57098, built by scripts/setup-reference.sh
--llamacpp). Run: python3 tests/reference/make_llamacpp_ppl_long.py [MODEL.gguf]   (~2 min on 2 cores)
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_llamacpp_goldens as g  # noqa: E402


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else g.DEFAULT_MODEL
    text = os.path.join(g.DATA, "ppl_long.txt")
    ppl = g.perplexity(model, text)
    ppl_fa_off = g.perplexity(model, text, ("-fa", "off"))
    print(f"PPL(c={g.N_CTX_PPL}) = {ppl['final']} +/- {ppl['error']} (fa off: {ppl_fa_off['final']})")
    golden = {
        "generator": "tests/reference/make_llamacpp_ppl_long.py",
        "model": os.path.basename(model),
        "model_sha256": g.sha256(model),
        "llama_cpp_commit": g.LLAMA_CPP_COMMIT,
        "ppl": ppl,
        "ppl_fa_off": ppl_fa_off,
    }
    with open(os.path.join(g.DATA, "goldens", "gemma3_270m_llamacpp_ppl_long.json"), "w") as f:
        json.dump(golden, f, indent=1)


if __name__ == "__main__":
    main()
