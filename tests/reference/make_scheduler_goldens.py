#!/usr/bin/env python3
"""Goldens for Spider's diffusion samplers (src/decoders/diffusion_tiny.h) from diffusers' DDIMScheduler and
DDPMScheduler (diffusers 0.42.1, pinned in scripts/setup-reference.sh).

Each case feeds the canonical scheduler a fixed initial latent, a fixed model-output sequence (one standard normal
array per step) and, for DDPM, a fixed noise sequence (diffusers draws its noise through randn_tensor; this script
replaces that function with one that hands out the recorded arrays in order, so the C++ test can feed the same
noise), and records diffusers' alphas_cumprod (computed by diffusers in float32, held in float64), the timesteps and every step's
latent. Latents and model outputs are float64 so the goldens
carry diffusers' arithmetic, not float32 rounding. Writes tests/data/diffusion/scheduler_goldens.json.

Run: python3 tests/reference/make_scheduler_goldens.py
"""
import json
import os

import numpy as np
import torch
import diffusers
from diffusers import DDIMScheduler, DDPMScheduler
import diffusers.schedulers.scheduling_ddpm as ddpm_module

assert diffusers.__version__ == "0.42.1", diffusers.__version__

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "diffusion", "scheduler_goldens.json")
SHAPE = (1, 3, 2, 2)

# name, sampler, spacing, prediction, schedule (kind, n_steps, beta_start, beta_end), steps, clip_sample
CASES = [
    ("ddim_leading_eps_linear", "ddim", "leading", "epsilon", ("linear", 1000, 1e-4, 0.02), 10, True),
    ("ddim_trailing_v_scaled", "ddim", "trailing", "v", ("scaled_linear", 1000, 0.00085, 0.012), 7, True),
    ("ddim_leading_v_cosine_all", "ddim", "leading", "v", ("cosine", 100, 1e-4, 0.02), 100, True),
    ("ddim_trailing_eps_linear_noclip", "ddim", "trailing", "epsilon", ("linear", 1000, 1e-4, 0.02), 3, False),
    ("ddpm_leading_eps_linear", "ddpm", "leading", "epsilon", ("linear", 1000, 1e-4, 0.02), 20, True),
    ("ddpm_trailing_v_cosine", "ddpm", "trailing", "v", ("cosine", 200, 1e-4, 0.02), 9, True),
    ("ddpm_full_eps_linear", "ddpm", "leading", "epsilon", ("linear", 50, 1e-4, 0.02), 50, True),
    ("ddpm_leading_v_linear_noclip", "ddpm", "leading", "v", ("linear", 1000, 1e-4, 0.02), 4, False),
]

SCHEDULE_NAMES = {"linear": "linear", "scaled_linear": "scaled_linear", "cosine": "squaredcos_cap_v2"}
PREDICTION_NAMES = {"epsilon": "epsilon", "v": "v_prediction"}


def run_case(index, name, sampler, spacing, prediction, schedule, steps, clip):
    kind, n_steps, b0, b1 = schedule
    cls = DDIMScheduler if sampler == "ddim" else DDPMScheduler
    sched = cls(num_train_timesteps=n_steps, beta_start=b0, beta_end=b1, beta_schedule=SCHEDULE_NAMES[kind],
                prediction_type=PREDICTION_NAMES[prediction], clip_sample=clip, timestep_spacing=spacing)
    sched.set_timesteps(steps)
    # diffusers keeps alphas_cumprod in float32 and does its per-step scalar arithmetic on those 0-d tensors, so
    # 1 - alpha_prod_t / alpha_prod_t_prev near t = 0 (about 5e-4) loses 1e-4 of its value to float32 cancellation.
    # Holding the same values in float64 runs diffusers' own step code in float64 (the goldens then show the
    # algorithm, not float32 scalar rounding); the values are recorded and checked against Spider's schedule.
    sched.alphas_cumprod = sched.alphas_cumprod.double()
    if hasattr(sched, "final_alpha_cumprod"):
        sched.final_alpha_cumprod = sched.final_alpha_cumprod.double()
    if hasattr(sched, "one"):
        sched.one = sched.one.double()
    rng = np.random.default_rng(1000 + index)
    x = rng.standard_normal(SHAPE)
    x_t = x.copy()
    model_outputs, noises, latents = [], [], []
    pending = []

    def recorded_noise(shape, generator=None, device=None, dtype=None, **kwargs):
        return pending.pop(0)

    ddpm_module.randn_tensor = recorded_noise
    sample = torch.from_numpy(x)
    for t in sched.timesteps:
        mo = rng.standard_normal(SHAPE)
        z = rng.standard_normal(SHAPE)
        pending[:] = [torch.from_numpy(z)]
        sample = sched.step(torch.from_numpy(mo), int(t), sample).prev_sample
        model_outputs.append(mo.ravel().tolist())
        noises.append(z.ravel().tolist())
        latents.append(sample.numpy().ravel().tolist())
    return {
        "name": name, "sampler": sampler, "spacing": spacing, "prediction": prediction,
        "schedule": {"kind": kind, "n_steps": n_steps, "beta_start": b0, "beta_end": b1},
        "steps": steps, "clip_sample": clip, "x_T": x_t.ravel().tolist(),
        "alphas_cumprod": sched.alphas_cumprod.double().tolist(),
        "timesteps": [int(t) for t in sched.timesteps], "model_outputs": model_outputs, "noises": noises,
        "latents": latents,
    }


def main():
    cases = [run_case(i, *c) for i, c in enumerate(CASES)]
    # Steps the canonical implementation rejects (the C++ side must reject them too).
    errors = []
    for steps in (1001,):
        try:
            DDIMScheduler(num_train_timesteps=1000).set_timesteps(steps)
            errors.append({"steps": steps, "rejected": False})
        except ValueError:
            errors.append({"steps": steps, "rejected": True})
    doc = {"generator": "tests/reference/make_scheduler_goldens.py", "diffusers": diffusers.__version__,
           "torch": torch.__version__.split("+")[0], "cases": cases, "rejected_steps": errors}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f)
        f.write("\n")
    print("wrote", OUT, len(cases), "cases")


if __name__ == "__main__":
    main()
