#!/usr/bin/env python3
# Golden data for tests/test_ops.cpp: small random inputs for every non-matmul op, and the outputs PyTorch
# computes for them, written to tests/data/ops/<op>.json. The C++ test runs spider::ref::X and spider::X on the
# same inputs and compares. Conventions checked here: RoPE NORMAL = llama.cpp pairs (2i, 2i+1), RoPE NEOX = HF
# rotate_half; attention = SDPA with an explicit mask (causal, sliding window, query position offset) and GQA by
# repeating each KV head over n_head / n_head_kv consecutive query heads.
#
# Pins: torch==2.15.0 numpy (any 2.x)
# Run:  python3 tests/reference/make_ops_goldens.py   (from the repository root; writes tests/data/ops/)
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "ops")
torch.manual_seed(1234)
np.random.seed(1234)


def rnd(*shape, lo=-2.0, hi=2.0):
    return (torch.rand(*shape, dtype=torch.float32) * (hi - lo) + lo)


def flat(t):
    # float32 values become Python floats exactly; JSON keeps enough digits to read them back bit-exact.
    return [float(v) for v in np.asarray(t, dtype=np.float32).reshape(-1)]


def write(op, cases):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, op + ".json")
    with open(path, "w") as f:
        json.dump({"op": op, "generator": "tests/reference/make_ops_goldens.py", "torch": torch.__version__,
                   "cases": cases}, f, separators=(",", ":"))
    print("wrote", path, len(cases), "cases")


def case(name, params, inputs, output):
    return {"name": name, "params": params, "inputs": {k: flat(v) for k, v in inputs.items()}, "output": flat(output)}


def elementwise():
    cases = []
    for n in (1, 7, 33):
        a, b = rnd(n), rnd(n)
        cases.append(case(f"add_{n}", {"kind": "add", "n": n}, {"a": a, "b": b}, a + b))
        cases.append(case(f"mul_{n}", {"kind": "mul", "n": n}, {"a": a, "b": b}, a * b))
        cases.append(case(f"scale_{n}", {"kind": "scale", "n": n, "s": 0.37}, {"a": a}, a * torch.tensor(0.37)))
    for rows, n in ((1, 5), (3, 17)):
        x, w = rnd(rows, n), rnd(n)
        cases.append(case(f"mul_row_{rows}x{n}", {"kind": "mul_row", "rows": rows, "n": n}, {"a": x, "b": w}, x * w))
        cases.append(case(f"add_row_{rows}x{n}", {"kind": "add_row", "rows": rows, "n": n}, {"a": x, "b": w}, x + w))
    write("elementwise", cases)


def activations():
    cases = []
    x = torch.cat([rnd(61, lo=-6, hi=6), torch.tensor([0.0, -20.0, 20.0])])
    acts = {0: F.gelu(x, approximate="tanh"), 1: F.gelu(x), 2: F.silu(x), 3: F.relu(x)}
    for a, y in acts.items():
        cases.append(case(f"act_{a}", {"kind": "activation", "act": a, "n": x.numel()}, {"x": x}, y))
    g, u = rnd(45, lo=-5, hi=5), rnd(45)
    glus = {0: F.gelu(g, approximate="tanh") * u, 1: F.gelu(g) * u, 2: F.silu(g) * u, 3: F.relu(g) * u}
    for a, y in glus.items():
        cases.append(case(f"glu_{a}", {"kind": "glu", "act": a, "n": g.numel()}, {"gate": g, "up": u}, y))
    write("activation", cases)


def norms():
    cases = []
    for rows, n in ((1, 8), (3, 37), (2, 128)):
        x = rnd(rows, n, lo=-3, hi=3)
        w, b = rnd(n), rnd(n)
        cases.append(case(f"softmax_{rows}x{n}", {"kind": "softmax", "rows": rows, "n": n}, {"x": x * 4},
                          torch.softmax(x * 4, dim=-1)))
        cases.append(case(f"rms_{rows}x{n}", {"kind": "rms_norm", "rows": rows, "n": n, "eps": 1e-6, "affine": 1},
                          {"x": x, "w": w}, F.rms_norm(x, (n,), w, eps=1e-6)))
        cases.append(case(f"rms_noaff_{rows}x{n}", {"kind": "rms_norm", "rows": rows, "n": n, "eps": 1e-5,
                                                     "affine": 0}, {"x": x}, F.rms_norm(x, (n,), None, eps=1e-5)))
        cases.append(case(f"ln_{rows}x{n}", {"kind": "layer_norm", "rows": rows, "n": n, "eps": 1e-5, "affine": 1},
                          {"x": x, "w": w, "b": b}, F.layer_norm(x, (n,), w, b, eps=1e-5)))
        cases.append(case(f"ln_noaff_{rows}x{n}", {"kind": "layer_norm", "rows": rows, "n": n, "eps": 1e-5,
                                                    "affine": 0}, {"x": x}, F.layer_norm(x, (n,), None, None, 1e-5)))
    for C, HW, G in ((4, 9, 2), (32, 16, 8), (6, 5, 6)):
        x = rnd(C, HW, lo=-3, hi=3) + 0.5
        w, b = rnd(C), rnd(C)
        y = F.group_norm(x[None], G, w, b, eps=1e-6)[0]
        cases.append(case(f"gn_{C}x{HW}g{G}", {"kind": "group_norm", "C": C, "HW": HW, "groups": G, "eps": 1e-6},
                          {"x": x, "w": w, "b": b}, y))
    write("norm", cases)


def rope_normal(x, pos, n_rot, base, fscale):
    # llama.cpp GGML_ROPE_TYPE_NORMAL: pairs (2i, 2i+1), theta_i = pos * base^(-2i/n_rot) * freq_scale.
    x = x.double().clone()
    i = torch.arange(n_rot // 2, dtype=torch.float64)
    theta = pos.double()[:, None] * base ** (-2.0 * i / n_rot) * fscale  # [n_tok, n_rot/2]
    c, s = torch.cos(theta)[:, None, :], torch.sin(theta)[:, None, :]
    a, b = x[..., 0:n_rot:2].clone(), x[..., 1:n_rot:2].clone()
    x[..., 0:n_rot:2] = a * c - b * s
    x[..., 1:n_rot:2] = a * s + b * c
    return x.float()


def rope_neox_hf(x, pos, n_rot, base, fscale):
    # HF transformers: inv_freq = 1 / base^(arange(0, d, 2)/d); emb = cat(freqs, freqs); q*cos + rotate_half(q)*sin.
    x = x.double()
    inv_freq = 1.0 / (base ** (torch.arange(0, n_rot, 2, dtype=torch.float64) / n_rot))
    freqs = (pos.double()[:, None] * fscale) * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
    xr, xp = x[..., :n_rot], x[..., n_rot:]

    def rotate_half(t):
        return torch.cat([-t[..., t.shape[-1] // 2:], t[..., : t.shape[-1] // 2]], dim=-1)

    return torch.cat([xr * cos + rotate_half(xr) * sin, xp], dim=-1).float()


def rope():
    cases = []
    for n_tok, n_head, hd, n_rot, base, fs in ((3, 2, 8, 8, 10000.0, 1.0), (4, 3, 16, 8, 10000.0, 0.5),
                                              (2, 1, 64, 64, 1000000.0, 1.0)):
        x = rnd(n_tok, n_head, hd)
        pos = torch.tensor([0, 5, 17, 300][:n_tok], dtype=torch.int32)
        for mode, fn in ((0, rope_normal), (2, rope_neox_hf)):
            p = {"kind": "rope", "n_tok": n_tok, "n_head": n_head, "head_dim": hd, "n_rot": n_rot, "base": base,
                 "freq_scale": fs, "mode": mode, "pos": pos.tolist()}
            cases.append(case(f"rope_m{mode}_{n_tok}x{n_head}x{hd}_r{n_rot}", p, {"x": x},
                              fn(x, pos, n_rot, base, fs)))
    write("rope", cases)


def attention():
    cases = []
    configs = [  # n_q, n_kv, n_head, n_head_kv, hd, causal, q_pos0, window
        (5, 5, 2, 2, 8, True, 0, 0),
        (1, 9, 4, 2, 16, True, 8, 0),      # decode with GQA
        (4, 12, 4, 1, 8, True, 8, 0),      # multi-query, position offset
        (6, 6, 2, 1, 8, True, 0, 3),       # sliding window
        (3, 7, 3, 3, 4, False, 0, 0),      # bidirectional (encoders, cross-attention)
        (7, 7, 6, 2, 32, True, 0, 0),
    ]
    for n_q, n_kv, nh, nkv, hd, causal, q0, win in configs:
        q, k, v = rnd(n_q, nh, hd), rnd(n_kv, nkv, hd), rnd(n_kv, nkv, hd)
        scale = 1.0 / math.sqrt(hd)
        qpos = torch.arange(n_q)[:, None] + q0
        kpos = torch.arange(n_kv)[None, :]
        mask = torch.ones(n_q, n_kv, dtype=torch.bool)
        if causal:
            mask &= kpos <= qpos
        if win > 0:
            mask &= (qpos - kpos) < win
        g = nh // nkv
        kh = k.transpose(0, 1).repeat_interleave(g, dim=0)  # [nh, n_kv, hd]
        vh = v.transpose(0, 1).repeat_interleave(g, dim=0)
        o = F.scaled_dot_product_attention(q.transpose(0, 1)[None], kh[None], vh[None], attn_mask=mask,
                                           scale=scale)[0].transpose(0, 1)
        p = {"kind": "attention", "n_q": n_q, "n_kv": n_kv, "n_head": nh, "n_head_kv": nkv, "head_dim": hd,
             "scale": scale, "causal": int(causal), "q_pos0": q0, "window": win}
        cases.append(case(f"attn_{n_q}x{n_kv}_h{nh}_{nkv}_d{hd}_c{int(causal)}_p{q0}_w{win}", p,
                          {"q": q, "k": k, "v": v}, o))
    write("attention", cases)


def convs():
    cases = []
    for C_in, L, C_out, K, stride, pad in ((3, 11, 4, 3, 1, 1), (2, 16, 5, 5, 2, 2), (4, 9, 3, 1, 1, 0)):
        x, w, b = rnd(C_in, L), rnd(C_out, C_in, K), rnd(C_out)
        y = F.conv1d(x[None], w, b, stride=stride, padding=pad)[0]
        p = {"kind": "conv1d", "C_in": C_in, "L": L, "C_out": C_out, "K": K, "stride": stride, "pad": pad}
        cases.append(case(f"conv1d_{C_in}x{L}_o{C_out}_k{K}_s{stride}_p{pad}", p, {"x": x, "w": w, "b": b}, y))
    for C_in, H, W, C_out, KH, KW, stride, pad in ((3, 7, 6, 4, 3, 3, 1, 1), (2, 9, 8, 3, 3, 3, 2, 1),
                                                   (4, 5, 5, 2, 1, 1, 1, 0), (2, 8, 7, 3, 4, 2, 2, 0)):
        x, w, b = rnd(C_in, H, W), rnd(C_out, C_in, KH, KW), rnd(C_out)
        y = F.conv2d(x[None], w, b, stride=stride, padding=pad)[0]
        p = {"kind": "conv2d", "C_in": C_in, "H": H, "W": W, "C_out": C_out, "KH": KH, "KW": KW, "stride": stride,
             "pad": pad}
        cases.append(case(f"conv2d_{C_in}x{H}x{W}_o{C_out}_k{KH}x{KW}_s{stride}_p{pad}", p,
                          {"x": x, "w": w, "b": b}, y))
    for C_in, H, W, C_out, KH, KW, stride, pad in ((3, 4, 5, 2, 4, 4, 2, 1), (2, 3, 3, 3, 3, 3, 1, 1),
                                                   (2, 5, 4, 2, 3, 2, 2, 0)):
        x, w, b = rnd(C_in, H, W), rnd(C_in, C_out, KH, KW), rnd(C_out)
        y = F.conv_transpose2d(x[None], w, b, stride=stride, padding=pad)[0]
        p = {"kind": "conv_transpose2d", "C_in": C_in, "H": H, "W": W, "C_out": C_out, "KH": KH, "KW": KW,
             "stride": stride, "pad": pad}
        cases.append(case(f"convt2d_{C_in}x{H}x{W}_o{C_out}_k{KH}x{KW}_s{stride}_p{pad}", p,
                          {"x": x, "w": w, "b": b}, y))
    for C_in, T, HW, C_out, KT in ((3, 5, 6, 4, 3), (2, 4, 3, 2, 1), (4, 8, 4, 3, 5)):
        x, w, b = rnd(C_in, T, HW), rnd(C_out, C_in, KT), rnd(C_out)
        xs = x.permute(2, 0, 1)  # [HW, C_in, T]: one 1-D conv over time per pixel
        y = F.conv1d(xs, w, b, padding=(KT - 1) // 2).permute(1, 2, 0)  # [C_out, T, HW]
        p = {"kind": "conv_temporal", "C_in": C_in, "T": T, "HW": HW, "C_out": C_out, "KT": KT}
        cases.append(case(f"convt_{C_in}x{T}x{HW}_o{C_out}_k{KT}", p, {"x": x, "w": w, "b": b}, y))
    write("conv", cases)


def resample():
    cases = []
    for C, H, W, f in ((2, 3, 4, 2), (1, 2, 2, 3)):
        x = rnd(C, H, W)
        y = F.interpolate(x[None], scale_factor=f, mode="nearest")[0]
        cases.append(case(f"up_{C}x{H}x{W}_f{f}", {"kind": "upsample_nearest2d", "C": C, "H": H, "W": W, "f": f},
                          {"x": x}, y))
    for C, H, W, k in ((2, 4, 6, 2), (3, 7, 5, 2), (1, 9, 9, 3)):
        x = rnd(C, H, W)
        p = {"C": C, "H": H, "W": W, "k": k}
        cases.append(case(f"avg_{C}x{H}x{W}_k{k}", dict(p, kind="avg_pool2d"), {"x": x}, F.avg_pool2d(x[None], k)[0]))
        cases.append(case(f"max_{C}x{H}x{W}_k{k}", dict(p, kind="max_pool2d"), {"x": x}, F.max_pool2d(x[None], k)[0]))
    write("resample", cases)


def layout():
    cases = []
    # Shapes are given innermost first (ggml order); numpy shape is the reverse.
    for ne, perm in (((3, 4, 2, 1), (1, 0, 2, 3)), ((2, 3, 4, 5), (2, 0, 3, 1)), ((5, 1, 3, 2), (3, 2, 1, 0))):
        x = np.random.uniform(-1, 1, size=ne[::-1]).astype(np.float32)
        # output dim d (ggml order) = input dim perm[d]  ->  numpy axis a' takes input numpy axis 3 - perm[3 - a']
        y = np.transpose(x, [3 - perm[3 - a] for a in range(4)])
        cases.append(case(f"permute_{'x'.join(map(str, ne))}_{''.join(map(str, perm))}",
                          {"kind": "permute", "ne": list(ne), "perm": list(perm)}, {"x": x}, y))
    for ne_a, ne_b, dim in (((3, 2, 2, 1), (3, 4, 2, 1), 1), ((2, 3, 1, 1), (5, 3, 1, 1), 0),
                            ((2, 2, 3, 2), (2, 2, 3, 1), 3), ((4, 1, 2, 3), (4, 1, 1, 3), 2)):
        a = np.random.uniform(-1, 1, size=ne_a[::-1]).astype(np.float32)
        b = np.random.uniform(-1, 1, size=ne_b[::-1]).astype(np.float32)
        y = np.concatenate([a, b], axis=3 - dim)
        cases.append(case(f"concat_d{dim}", {"kind": "concat", "ne_a": list(ne_a), "ne_b": list(ne_b), "dim": dim},
                          {"a": a, "b": b}, y))
    write("layout", cases)


if __name__ == "__main__":
    torch.set_num_threads(1)
    for fn in (elementwise, activations, norms, rope, attention, convs, resample, layout):
        fn()
    sys.exit(0)
