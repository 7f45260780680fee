#!/usr/bin/env python3
# Goldens for tests/test_quants.cpp: quantized bytes and dequantized floats produced by gguf-py (the numpy port of
# ggml's reference quantizers that ships with llama.cpp) for fixed random inputs.
#
# Pins: gguf==0.19.0 numpy==2.4.6   (pip install gguf==0.19.0 numpy==2.4.6)
# Run:  python3 tests/reference/make_quant_goldens.py   (writes tests/data/quants/<type>.bin; never hand-edit them)
#
# gguf-py 0.19.0 quantizes F16, BF16, Q4_0, Q5_0, Q8_0 (byte-exact ports of quantize_row_*_ref) but only
# dequantizes the K-quants. For Q4_K / Q5_K / Q6_K the "quantized" bytes are therefore random blocks with sane
# fp16 scales, and only dequantization is compared.
#
# File layout (little-endian): "SPQG", u32 ggml type, u32 n elements, u32 n bytes, u32 has_quant_golden,
# f32[n] input, u8[nbytes] quantized, f32[n] dequantized (gguf-py, of those bytes).
import os
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

N = 2048  # 8 super-blocks, 64 small blocks


def make_input(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal(n).astype(np.float32)
    # different magnitudes per 32-block, so scales cover a range
    x *= np.repeat(np.float32(2.0) ** rng.integers(-6, 7, n // 32).astype(np.float32), 32)
    x[0:32] = 0.0  # all-zero block
    # rounding ties: with amax 127 the Q8_0 scale is exactly 1, so x*id lands on k + 0.5
    x[32:64] = np.array([127.0] + [k + 0.5 for k in range(-15, 16)], dtype=np.float32)
    # Q4_0 / Q5_0 ties: largest magnitude -8 / -16 gives d = 1 exactly
    x[64:96] = np.array([-8.0] + [k * 0.5 for k in range(-15, 16)], dtype=np.float32)
    x[96:128] = np.array([-16.0] + [k * 0.5 for k in range(-15, 16)], dtype=np.float32)
    x[128:160] = np.float32(3.25)  # constant block: opposite-sign clamp path
    x[160] = 1e4  # lone outlier
    return x


def random_k_blocks(rng: np.random.Generator, qtype: T, n: int) -> np.ndarray:
    block_size, type_size = quants.GGML_QUANT_SIZES[qtype]
    nb = n // block_size
    raw = rng.integers(0, 256, (nb, type_size), dtype=np.uint8)
    d = (rng.standard_normal((nb, 2)) * 0.01).astype(np.float16).view(np.uint8)
    if qtype == T.Q6_K:
        raw[:, -2:] = d[:, 0:2]  # d is the last field of block_q6_K
    else:
        raw[:, 0:4] = d  # d, dmin first
    return raw.reshape(-1)


def main() -> int:
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "quants")
    os.makedirs(out_dir, exist_ok=True)
    cases = [
        ("f16", T.F16, True),
        ("bf16", T.BF16, True),
        ("q4_0", T.Q4_0, True),
        ("q5_0", T.Q5_0, True),
        ("q8_0", T.Q8_0, True),
        ("q4_K", T.Q4_K, False),
        ("q5_K", T.Q5_K, False),
        ("q6_K", T.Q6_K, False),
    ]
    for i, (name, qtype, has_quant) in enumerate(cases):
        rng = np.random.default_rng(1234 + i)
        x = make_input(rng, N)
        if has_quant:
            qbytes = np.asarray(quants.quantize(x.reshape(1, N), qtype)).view(np.uint8).reshape(-1)
        else:
            qbytes = random_k_blocks(rng, qtype, N)
        deq = np.asarray(quants.dequantize(qbytes.reshape(1, -1), qtype), dtype=np.float32).reshape(-1)
        assert deq.size == N, (name, deq.size)
        path = os.path.join(out_dir, name + ".bin")
        with open(path, "wb") as f:
            f.write(b"SPQG")
            f.write(struct.pack("<IIII", int(qtype), N, qbytes.size, 1 if has_quant else 0))
            f.write(x.astype("<f4").tobytes())
            f.write(qbytes.tobytes())
            f.write(deq.astype("<f4").tobytes())
        print(f"{path}: {qbytes.size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
