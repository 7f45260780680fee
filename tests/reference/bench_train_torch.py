#!/usr/bin/env python3
"""PyTorch side of the training throughput benchmark (docs/BENCHMARKS.md, "Training"; scripts/bench_train.sh).

Trains the same tiny Llama as `spider bench-train` (transformers LlamaForCausalLM, F32, untied LM head, RMSNorm,
SwiGLU, GQA, RoPE), on the same data windows (the splitmix64 stream of train/tiny_lm.h seeded alike), with the same
optimiser (AdamW betas 0.9/0.95, eps 1e-8, clipping at 1.0), the same batch and thread count, and prints the same
row: warm-up steps, then timed steps. Init: normal(0, 0.02) like ours (not the same numbers; loss is a sanity check).

Pins: torch==2.15.0, transformers==5.23.0. Not a golden generator: prints a benchmark row only.
"""
import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

MASK = (1 << 64) - 1


class Rng64:  # train/tiny_lm.h rng64 (splitmix64)
    def __init__(self, seed):
        self.s = seed & MASK

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="tests/data/train/corpus.txt")
    ap.add_argument("--n-embd", type=int, default=256)
    ap.add_argument("--n-ff", type=int, default=768)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=8)
    ap.add_argument("--n-head-kv", type=int, default=4)
    ap.add_argument("-b", "--batch", type=int, default=8)
    ap.add_argument("-s", "--seq", type=int, default=128)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("-n", "--steps", type=int, default=10)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--attn", default="sdpa", help="transformers attention implementation (sdpa or eager)")
    ap.add_argument("--label", default="", help="added to the impl column (e.g. the OpenMP settings used)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    data = open(a.data, "rb").read()
    cfg = LlamaConfig(vocab_size=256, hidden_size=a.n_embd, intermediate_size=a.n_ff, num_hidden_layers=a.n_layer,
                      num_attention_heads=a.n_head, num_key_value_heads=a.n_head_kv, max_position_embeddings=a.seq,
                      rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False, attention_bias=False,
                      mlp_bias=False, initializer_range=0.02)
    cfg._attn_implementation = a.attn
    model = LlamaForCausalLM(cfg).float().train()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    r = Rng64(a.seed)
    span = len(data) - a.seq
    times, losses, cpu = [], [], 0.0
    for s in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        c0 = time.process_time()  # CPU time of all threads: on a loaded machine wall time mostly measures the load
        rows = []
        for _ in range(a.batch):
            st = r.next() % span
            rows.append(list(data[st:st + a.seq]))
        ids = torch.tensor(rows, dtype=torch.long)
        opt.zero_grad(set_to_none=False)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        dt = (time.perf_counter() - t0) * 1000
        if s >= a.warmup:
            times.append(dt)
            cpu += (time.process_time() - c0) * 1000
        losses.append(float(loss.detach()))
    mean = sum(times) / len(times)
    median = sorted(times)[len(times) // 2]
    sps = a.batch * 1000 / mean
    tps = sps * a.seq
    label = f"{a.attn}, {a.label}" if a.label else a.attn
    row = {"impl": f"pytorch {torch.__version__} ({label})", "params": n_params, "n_embd": a.n_embd,
           "n_layer": a.n_layer, "batch": a.batch, "seq": a.seq, "threads": a.threads, "steps": a.steps,
           "warmup": a.warmup, "ms_per_step": mean, "ms_median": median, "samples_per_s": sps, "tokens_per_s": tps,
           "cpu_ms_per_step": cpu / a.steps,
           "loss_first": losses[0], "loss_last": losses[-1]}
    if a.json:
        print(json.dumps(row))
    else:
        print("| impl | params | n_embd x layers | batch x seq | threads | ms/step (median) | samples/s | tokens/s "
              "| CPU ms/step | loss first -> last |\n|---|---|---|---|---|---|---|---|---|---|")
        print(f"| {row['impl']} | {n_params / 1e6:.2f}M | {a.n_embd} x {a.n_layer} | "
              f"{a.batch} x {a.seq} | {a.threads} | {mean:.1f} ({median:.1f}) | {sps:.2f} | {tps:.0f} | {cpu / a.steps:.1f} | "
              f"{losses[0]:.3f} -> {losses[-1]:.3f} |")


if __name__ == "__main__":
    main()
