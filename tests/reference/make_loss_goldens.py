#!/usr/bin/env python3
"""Goldens for Spider's training losses (tests/test_autograd_losses.cpp, src/train/losses.h).

1. Symmetric InfoNCE with CLIP's learnable logit scale: logits = exp(clamp(log_scale, 0, ln 100)) *
   normalize(a) @ normalize(b).T, loss = (CE(logits, arange) + CE(logits.T, arange)) / 2; value and gradients of
   a, b and log_scale, for a scale inside and one above the clamp.
2. Per-token L2: ((x - y) ** 2).sum(-1).mean().
3. Noise schedules (linear DDPM 1e-4..0.02, scaled_linear SD 0.00085..0.012, cosine of Nichol & Dhariwal) at a few
   timesteps, and the denoising loss MSE(pred, target) for epsilon- and v-prediction,
   v = sqrt(ab) * eps - sqrt(1 - ab) * x0.

Pins: torch==2.15.0 (scripts/setup-reference.sh). Run: python3 tests/reference/make_loss_goldens.py
Writes tests/data/train/loss_goldens.json. Never edit the output by hand.
"""
import json
import math
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "train", "loss_goldens.json")
torch.set_default_dtype(torch.float64)
g = torch.Generator().manual_seed(5)


def info_nce_case(B, d, log_scale):
    a = torch.randn(B, d, generator=g, requires_grad=True)
    b = torch.randn(B, d, generator=g, requires_grad=True)
    ls = torch.tensor([log_scale], requires_grad=True)
    logits = ls.clamp(0, math.log(100)).exp() * F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T
    t = torch.arange(B)
    loss = (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2
    loss.backward()
    return {"B": B, "d": d, "a": a.detach().flatten().tolist(), "b": b.detach().flatten().tolist(),
            "log_scale": log_scale, "loss": loss.item(), "grad_a": a.grad.flatten().tolist(),
            "grad_b": b.grad.flatten().tolist(), "grad_log_scale": ls.grad.item()}


def schedule(kind, n, b0, b1):
    if kind == "linear":
        betas = torch.linspace(b0, b1, n)
    elif kind == "scaled_linear":
        betas = torch.linspace(b0 ** 0.5, b1 ** 0.5, n) ** 2
    else:
        f = lambda t: math.cos((t / n + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = torch.tensor([min(1 - f(t + 1) / f(t), 0.999) for t in range(n)])
    return torch.cumprod(1 - betas, 0)


def main():
    out = {"info_nce": [info_nce_case(4, 6, math.log(1 / 0.07)), info_nce_case(3, 5, 5.0)]}
    x = torch.randn(3, 7, generator=g)
    y = torch.randn(3, 7, generator=g)
    out["token_l2"] = {"x": x.flatten().tolist(), "y": y.flatten().tolist(), "T": 3, "d": 7,
                       "loss": ((x - y) ** 2).sum(-1).mean().item()}
    steps = [0, 1, 10, 499, 999]
    out["schedules"] = []
    for kind, b0, b1 in [("linear", 1e-4, 0.02), ("scaled_linear", 0.00085, 0.012), ("cosine", 1e-4, 0.02)]:
        ab = schedule(kind, 1000, b0, b1)
        out["schedules"].append({"kind": kind, "beta_start": b0, "beta_end": b1, "n_steps": 1000, "t": steps,
                                 "alpha_bar": [ab[t].item() for t in steps]})
    x0 = torch.randn(2, 3, 4, generator=g)
    eps = torch.randn(2, 3, 4, generator=g)
    pred = torch.randn(2, 3, 4, generator=g)
    ab = schedule("linear", 1000, 1e-4, 0.02)[250].item()
    v = math.sqrt(ab) * eps - math.sqrt(1 - ab) * x0
    out["diffusion"] = {"x0": x0.flatten().tolist(), "eps": eps.flatten().tolist(), "pred": pred.flatten().tolist(),
                        "alpha_bar": ab,
                        "x_t": (math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps).flatten().tolist(),
                        "loss_epsilon": F.mse_loss(pred, eps).item(), "loss_v": F.mse_loss(pred, v).item()}
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
