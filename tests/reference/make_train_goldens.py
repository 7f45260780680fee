#!/usr/bin/env python3
"""Goldens for Spider's training code (tests/test_train_parity.cpp).

1. Optimisers: AdamW and SGD (momentum, Nesterov) steps of PyTorch on fixed parameters and gradients.
2. A tiny Llama (transformers LlamaForCausalLM, F32, eager attention) trained for 50 steps with AdamW on fixed
   random token batches: initial weights, the batches and PyTorch's loss at every step.

Pins: torch==2.15.0, transformers==5.23.0, numpy. Run: python3 tests/reference/make_train_goldens.py
Writes tests/data/train/{optim.json, tiny_llama_init.bin, tiny_llama.json}. Never edit the outputs by hand.
"""
import json
import os
import struct

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "train")
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(0)
torch.set_num_threads(1)


def optim_goldens():
    g = torch.Generator().manual_seed(1)
    p0 = torch.randn(12, generator=g)
    grads = [torch.randn(12, generator=g) for _ in range(6)]
    out = {"p0": p0.tolist(), "grads": [x.tolist() for x in grads], "cases": []}
    cases = [
        ("adamw", dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)),
        ("sgd", dict(lr=1e-2, momentum=0.9, weight_decay=0.01, nesterov=False)),
        ("sgd", dict(lr=1e-2, momentum=0.9, weight_decay=0.0, nesterov=True)),
    ]
    for kind, kw in cases:
        p = torch.nn.Parameter(p0.clone())
        opt = torch.optim.AdamW([p], **kw) if kind == "adamw" else torch.optim.SGD([p], **kw)
        traj = []
        for gr in grads:
            p.grad = gr.clone()
            opt.step()
            traj.append(p.detach().tolist())
        kw = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}
        out["cases"].append({"kind": kind, "params": kw, "trajectory": traj})
    with open(os.path.join(OUT, "optim.json"), "w") as f:
        json.dump(out, f)


def tiny_llama_goldens():
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
                      attention_bias=False, mlp_bias=False)
    cfg._attn_implementation = "eager"
    model = LlamaForCausalLM(cfg).float()
    with torch.no_grad():  # larger init than HF's 0.02 so that 50 steps move the loss visibly
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.1)
    names = [n for n, _ in model.named_parameters()]
    blob = bytearray()
    tensors = []
    for n, p in model.named_parameters():
        a = p.detach().numpy().astype(np.float32)
        tensors.append({"name": n, "shape": list(a.shape), "offset": len(blob)})
        blob += a.tobytes()
    with open(os.path.join(OUT, "tiny_llama_init.bin"), "wb") as f:
        f.write(bytes(blob))

    steps, batch, seq = 50, 2, 16
    g = torch.Generator().manual_seed(7)
    # A learnable pattern: each sequence counts up from a random start (mod vocab), so the loss falls clearly.
    starts = torch.randint(0, cfg.vocab_size, (steps, batch), generator=g)
    data = (starts[:, :, None] + torch.arange(seq)[None, None, :]) % cfg.vocab_size
    lr, warmup = 3e-3, 5
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
    losses = []
    for s in range(steps):
        ids = data[s]
        out = model(input_ids=ids, labels=ids)
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(out.loss))
    meta = {
        "config": {"vocab": cfg.vocab_size, "n_embd": cfg.hidden_size, "n_ff": cfg.intermediate_size,
                   "n_layer": cfg.num_hidden_layers, "n_head": cfg.num_attention_heads,
                   "n_head_kv": cfg.num_key_value_heads, "eps": cfg.rms_norm_eps, "rope_theta": 10000.0},
        "train": {"steps": steps, "batch": batch, "seq": seq, "lr": lr, "warmup": warmup, "betas": [0.9, 0.95],
                  "eps": 1e-8, "clip": 1.0},
        "tensors": tensors,
        "data": data.tolist(),
        "losses": losses,
    }
    with open(os.path.join(OUT, "tiny_llama.json"), "w") as f:
        json.dump(meta, f)
    print("losses", losses[0], "->", losses[-1])


if __name__ == "__main__":
    optim_goldens()
    tiny_llama_goldens()
