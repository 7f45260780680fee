#!/usr/bin/env python3
"""PyTorch side of the LoRA training throughput comparison (docs/BENCHMARKS.md): the same step as `spider train`
stage `instruct` on the same base model and the same token sequences.

The base model is read from the GGUF by transformers (5.23.0 with accelerate 1.10.0, dequantized to F32); LoRA (B starts at 0) on the
chosen projections of every block; one trainable row per added token next to the frozen (tied) embedding table (started at the table's
mean row; the C++ stage starts each at the mean of its own text's pieces — the same work per step),
used for the input embedding (scaled by sqrt(d) like gemma3's embedding) and as extra LM-head rows; logits only at
the answer positions; AdamW + gradient clipping 1.0, sum of per-example mean cross-entropies over a batch.
Token sequences come from the C++ stage's `data.dump_tokens` file ({"ids": [...], "targets": [...]} per line), so
both sides train on identical ids.

  python3 tests/reference/lora_throughput_torch.py --gguf MODEL.gguf --tokens tokens.jsonl --steps 8 --batch 4
"""
import argparse
import json
import math
import os
import random
import time

import torch
from transformers import AutoModelForCausalLM


class LoraLinear(torch.nn.Module):
    def __init__(self, base, r, alpha, gen):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        bound = 1.0 / math.sqrt(base.in_features)
        self.A = torch.nn.Parameter((torch.rand(r, base.in_features, generator=gen) * 2 - 1) * bound)
        self.B = torch.nn.Parameter(torch.zeros(base.out_features, r))
        self.s = alpha / r

    def forward(self, x):
        return self.base(x) + self.s * torch.nn.functional.linear(torch.nn.functional.linear(x, self.A), self.B)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16.0)
    ap.add_argument("--targets", default="q,k,v,o")
    ap.add_argument("--n-added", type=int, default=33)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup-steps", type=int, default=1, help="steps not timed")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(os.path.abspath(a.gguf)),
                                                 gguf_file=os.path.basename(a.gguf), dtype=torch.float32)
    model.eval()  # no dropout; gradients still flow
    for p in model.parameters():
        p.requires_grad_(False)
    load_s = time.time() - t0
    names = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj", "gate": "gate_proj", "up": "up_proj",
             "down": "down_proj"}
    gen = torch.Generator().manual_seed(a.seed)
    params = []
    for layer in model.model.layers:
        for t in a.targets.split(","):
            parent = layer.self_attn if t in "qkvo" else layer.mlp
            lin = LoraLinear(getattr(parent, names[t]), a.rank, a.alpha, gen)
            setattr(parent, names[t], lin)
            params += [lin.A, lin.B]
    E = model.model.embed_tokens.weight  # [V, d] frozen, tied LM head
    V, d = E.shape
    extra = torch.nn.Parameter(E[:a.n_added].detach().clone() * 0 + E.mean(0, keepdim=True).detach())
    params.append(extra)
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    scale = math.sqrt(d)

    examples = [json.loads(l) for l in open(a.tokens) if l.strip()]
    rng = random.Random(a.seed)

    def example_loss(ex):
        ids = torch.tensor(ex["ids"])
        tg = torch.tensor(ex["targets"])
        base_ids = ids.clamp(max=V - 1)
        emb = torch.where((ids < V)[:, None], E[base_ids], extra[(ids - V).clamp(min=0)])
        h = model.model(inputs_embeds=(emb * scale)[None]).last_hidden_state[0]  # final norm applied
        rows = (tg >= 0).nonzero().squeeze(1)
        hs = h[rows]
        logits = torch.cat([hs @ E.t(), hs @ extra.t()], dim=1)
        return torch.nn.functional.cross_entropy(logits, tg[rows])

    tokens = 0
    t_start = None
    for step in range(a.steps + a.warmup_steps):
        if step == a.warmup_steps:
            tokens = 0
            t_start = time.time()
        opt.zero_grad()
        total = 0.0
        for _ in range(a.batch):
            ex = examples[rng.randrange(len(examples))]
            loss = example_loss(ex) / a.batch
            loss.backward()
            total += loss.item()
            tokens += len(ex["ids"])
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        print(f"step {step} loss {total:.4f}", flush=True)
    dt = time.time() - t_start
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": a.threads, "rank": a.rank,
                      "targets": a.targets, "batch": a.batch, "steps": a.steps, "tokens": tokens,
                      "seconds": round(dt, 2), "tokens_per_s": round(tokens / dt, 2), "load_s": round(load_s, 1)}))


if __name__ == "__main__":
    main()
