#!/usr/bin/env python3
"""Goldens for the convolution / normalisation / resampling ops of src/train/autograd_conv.h
(tests/test_autograd_conv.cpp): forward values and input/weight gradients of PyTorch's own ops for the same
inputs, so the layouts and the stride / padding / dilation / groups / output_padding conventions are PyTorch's.

Pins: torch==2.15.0 (scripts/setup-reference.sh). Run: python3 tests/reference/make_conv_goldens.py
Writes tests/data/train/conv_goldens.json. Never edit the output by hand.
"""
import json
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "train", "conv_goldens.json")
torch.set_default_dtype(torch.float64)
g = torch.Generator().manual_seed(11)


def rnd(*shape):
    return torch.randn(*shape, generator=g).requires_grad_(True)


def case(name, fn, inputs, **opts):
    y = fn(*inputs, **opts)
    r = torch.randn(y.shape, generator=g)
    (y * r).sum().backward()
    return {"name": name, "opts": opts,
            "inputs": [{"shape": list(t.shape), "data": t.detach().flatten().tolist(),
                        "grad": t.grad.flatten().tolist()} for t in inputs],
            "out_shape": list(y.shape), "out": y.detach().flatten().tolist(), "r": r.flatten().tolist()}


def main():
    cases = [
        case("conv1d", F.conv1d, [rnd(2, 4, 7), rnd(6, 2, 3), rnd(6)], stride=2, padding=1, dilation=1, groups=2),
        case("conv1d_dilated", F.conv1d, [rnd(1, 3, 9), rnd(2, 3, 3), rnd(2)], stride=1, padding=2, dilation=2, groups=1),
        case("conv2d", F.conv2d, [rnd(1, 3, 5, 6), rnd(4, 3, 3, 3), rnd(4)], stride=2, padding=1, dilation=1, groups=1),
        case("conv3d", F.conv3d, [rnd(1, 2, 3, 4, 4), rnd(2, 2, 3, 3, 3), rnd(2)], stride=1, padding=1, dilation=1,
             groups=1),
        case("conv_transpose2d", F.conv_transpose2d, [rnd(1, 4, 3, 4), rnd(4, 3, 3, 3), rnd(6)], stride=2, padding=1,
             output_padding=1, groups=2, dilation=1),
        case("group_norm", lambda x, w, b, num_groups, eps: F.group_norm(x, num_groups, w, b, eps),
             [rnd(2, 4, 3, 2), rnd(4), rnd(4)], num_groups=2, eps=1e-5),
        case("avg_pool2d", F.avg_pool2d, [rnd(1, 2, 5, 6)], kernel_size=3, stride=2),
        case("max_pool2d", F.max_pool2d, [rnd(1, 2, 4, 6)], kernel_size=2, stride=2),
        case("upsample_nearest2d", lambda x, scale_factor: F.interpolate(x, scale_factor=scale_factor, mode="nearest"),
             [rnd(1, 2, 2, 3)], scale_factor=2),
    ]
    with open(OUT, "w") as f:
        json.dump(cases, f, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
