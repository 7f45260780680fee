#!/usr/bin/env python3
# Reference goldens for the Unified Decoder Projector and TM-Fusion (SPIDER.md §3), built with PyTorch modules:
# nn.Transformer (norm_first=True, ReLU, dropout 0, batch_first) per expert, router MLP with GELU + sigmoid
# normalised to sum 1, query tokens, output Linear; TM-Fusion blend a*y + (1-a)*text plus the learned gated
# cross-attention (nn.MultiheadAttention of LayerNorm(y) over the T-Prompt tokens).
#
# Pins: torch==2.15.0 gguf==0.19.0 numpy==2.4.6
# Usage: python3 tests/reference/make_udp_goldens.py [out_dir]   (default tests/data/controller)
# Writes udp_tiny.gguf (weights, names as src/controller/udp.cpp) and udp_golden.gguf (inputs and outputs).
import os
import sys

import gguf
import numpy as np
import torch
from torch import nn

MODS = ["image", "video", "audio", "box", "mask"]
HP = dict(d_model=32, d_hidden=32, n_expert=3, n_enc_layer=2, n_dec_layer=2, n_head=4, d_ff=64, eps=1e-5)
HEADS = {"image": (7, 24), "video": (7, 16), "audio": (1, 16), "mask": (1, 8)}  # t_out, d_out
N_TOK = {"image": 4, "video": 3, "audio": 1, "mask": 1}  # M-Prompt tokens per group
TMF_ALPHA = 0.1
TMF_HEADS = 2


class Expert(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(HP["d_model"], HP["d_hidden"])
        self.tf = nn.Transformer(d_model=HP["d_hidden"], nhead=HP["n_head"], num_encoder_layers=HP["n_enc_layer"],
                                 num_decoder_layers=HP["n_dec_layer"], dim_feedforward=HP["d_ff"], dropout=0.0,
                                 batch_first=True, norm_first=True, layer_norm_eps=HP["eps"])

    def forward(self, x, q):  # x [B, n, d_model], q [B, T, E]
        return self.tf(self.inp(x), q)


class Head(nn.Module):
    def __init__(self, t_out, d_out):
        super().__init__()
        d = HP["d_model"]
        self.router = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, HP["n_expert"]))
        self.query = nn.Parameter(torch.randn(t_out, HP["d_hidden"]))
        self.out = nn.Linear(HP["d_hidden"], d_out)
        # learned TM-Fusion
        self.tmf_norm = nn.LayerNorm(d_out, eps=HP["eps"])
        self.tmf_attn = nn.MultiheadAttention(d_out, TMF_HEADS, batch_first=True)
        self.tmf_gate = nn.Parameter(torch.tensor([0.7]))


def udp_forward(experts, head, x):  # x [n, d_model]
    w = torch.sigmoid(head.router(x.mean(0, keepdim=True)))[0]
    w = w / w.sum()
    q = head.query.unsqueeze(0)
    mix = sum(w[k] * experts[k](x.unsqueeze(0), q)[0] for k in range(len(experts)))
    return head.out(mix), w


def tmf_forward(head, y, text):
    blend = TMF_ALPHA * y + (1 - TMF_ALPHA) * text
    qn = head.tmf_norm(y).unsqueeze(0)
    att, _ = head.tmf_attn(qn, text.unsqueeze(0), text.unsqueeze(0), need_weights=False)
    return blend, blend + torch.tanh(head.tmf_gate) * att[0]


def perturb_norms(module):
    # LayerNorms start at (1, 0): randomise them so the test sees their weights.
    for m in module.modules():
        if isinstance(m, nn.LayerNorm):
            m.weight.data = 1.0 + 0.1 * torch.randn_like(m.weight)
            m.bias.data = 0.1 * torch.randn_like(m.bias)


def add_linear(tensors, name, lin_w, lin_b):
    tensors[name + ".weight"] = lin_w
    tensors[name + ".bias"] = lin_b


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "data", "controller")
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(1234)
    experts = [Expert() for _ in range(HP["n_expert"])]
    heads = {m: Head(*HEADS[m]) for m in HEADS}
    for e in experts:
        perturb_norms(e)
    for h in heads.values():
        perturb_norms(h)
        for p in h.parameters():  # non-zero biases everywhere
            if p.dim() == 1 and p.abs().sum() == 0:
                p.data = 0.05 * torch.randn_like(p)
    for e in experts:
        for n, p in e.named_parameters():
            if n.endswith("bias") and p.abs().sum() == 0:
                p.data = 0.05 * torch.randn_like(p)

    t = {}
    for k, e in enumerate(experts):
        pre = f"spider.udp.expert.{k}."
        add_linear(t, pre + "in", e.inp.weight, e.inp.bias)
        for l, L in enumerate(e.tf.encoder.layers):
            b = pre + f"enc.{l}."
            add_linear(t, b + "attn_norm", L.norm1.weight, L.norm1.bias)
            add_linear(t, b + "attn_qkv", L.self_attn.in_proj_weight, L.self_attn.in_proj_bias)
            add_linear(t, b + "attn_out", L.self_attn.out_proj.weight, L.self_attn.out_proj.bias)
            add_linear(t, b + "ffn_norm", L.norm2.weight, L.norm2.bias)
            add_linear(t, b + "ffn_up", L.linear1.weight, L.linear1.bias)
            add_linear(t, b + "ffn_down", L.linear2.weight, L.linear2.bias)
        add_linear(t, pre + "enc_norm", e.tf.encoder.norm.weight, e.tf.encoder.norm.bias)
        for l, L in enumerate(e.tf.decoder.layers):
            b = pre + f"dec.{l}."
            add_linear(t, b + "attn_norm", L.norm1.weight, L.norm1.bias)
            add_linear(t, b + "attn_qkv", L.self_attn.in_proj_weight, L.self_attn.in_proj_bias)
            add_linear(t, b + "attn_out", L.self_attn.out_proj.weight, L.self_attn.out_proj.bias)
            add_linear(t, b + "cross_norm", L.norm2.weight, L.norm2.bias)
            add_linear(t, b + "cross_qkv", L.multihead_attn.in_proj_weight, L.multihead_attn.in_proj_bias)
            add_linear(t, b + "cross_out", L.multihead_attn.out_proj.weight, L.multihead_attn.out_proj.bias)
            add_linear(t, b + "ffn_norm", L.norm3.weight, L.norm3.bias)
            add_linear(t, b + "ffn_up", L.linear1.weight, L.linear1.bias)
            add_linear(t, b + "ffn_down", L.linear2.weight, L.linear2.bias)
        add_linear(t, pre + "dec_norm", e.tf.decoder.norm.weight, e.tf.decoder.norm.bias)
    for m, h in heads.items():
        pre = f"spider.udp.{m}."
        add_linear(t, pre + "router_up", h.router[0].weight, h.router[0].bias)
        add_linear(t, pre + "router_down", h.router[2].weight, h.router[2].bias)
        t[pre + "query"] = h.query
        add_linear(t, pre + "out", h.out.weight, h.out.bias)
        pre = f"spider.tmf.{m}."
        add_linear(t, pre + "norm", h.tmf_norm.weight, h.tmf_norm.bias)
        add_linear(t, pre + "attn_qkv", h.tmf_attn.in_proj_weight, h.tmf_attn.in_proj_bias)
        add_linear(t, pre + "attn_out", h.tmf_attn.out_proj.weight, h.tmf_attn.out_proj.bias)
        t[pre + "gate"] = h.tmf_gate

    w = gguf.GGUFWriter(os.path.join(out_dir, "udp_tiny.gguf"), "spider-udp")
    for k in ["d_model", "d_hidden", "n_expert", "n_enc_layer", "n_dec_layer", "n_head", "d_ff"]:
        w.add_uint32(f"spider.udp.{k}", HP[k])
    w.add_float32("spider.udp.eps", HP["eps"])
    for m, (to, do) in HEADS.items():
        w.add_uint32(f"spider.udp.{m}.t_out", to)
        w.add_uint32(f"spider.udp.{m}.d_out", do)
    w.add_float32("spider.tmf.alpha", TMF_ALPHA)
    w.add_bool("spider.tmf.learned", True)
    w.add_uint32("spider.tmf.n_head", TMF_HEADS)
    for name, p in t.items():
        w.add_tensor(name, p.detach().numpy().astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    g = gguf.GGUFWriter(os.path.join(out_dir, "udp_golden.gguf"), "spider-golden")
    with torch.no_grad():
        for m in HEADS:
            x = torch.randn(N_TOK[m], HP["d_model"])
            y, rw = udp_forward(experts, heads[m], x)
            text = torch.randn(*y.shape)
            blend, cond = tmf_forward(heads[m], y, text)
            for nm, v in [("x", x), ("y", y), ("router", rw), ("text", text), ("blend", blend), ("cond", cond)]:
                g.add_tensor(f"golden.{m}.{nm}", v.numpy().astype(np.float32))
    g.write_header_to_file()
    g.write_kv_data_to_file()
    g.write_tensors_to_file()
    g.close()
    print("wrote", out_dir)


if __name__ == "__main__":
    main()
