// Noise schedules and prediction kinds (decoders/diffusion_schedule.h).
#include "decoders/diffusion_schedule.h"

#include <algorithm>
#include <cmath>

namespace spider {

bool noise_schedule::build(std::string * err) {
    if (n_steps < 1) {
        *err = "noise schedule: n_steps must be >= 1";
        return false;
    }
    alpha_bar.assign(static_cast<size_t>(n_steps), 0.0);
    const double T = static_cast<double>(n_steps);
    if (kind == "cosine") {
        auto f = [&](double t) {
            const double c = std::cos((t / T + 0.008) / 1.008 * M_PI / 2);
            return c * c;
        };
        double ab = 1.0;
        for (int64_t t = 0; t < n_steps; ++t) {
            const double beta = std::min(1.0 - f(t + 1) / f(t), 0.999);
            ab *= 1.0 - beta;
            alpha_bar[t] = ab;
        }
        return true;
    }
    if (kind != "linear" && kind != "scaled_linear") {
        *err = "noise schedule: kind must be linear, scaled_linear or cosine (got '" + kind + "')";
        return false;
    }
    if (!(beta_start > 0 && beta_end >= beta_start && beta_end < 1)) {
        *err = "noise schedule: need 0 < beta_start <= beta_end < 1";
        return false;
    }
    double ab = 1.0;
    for (int64_t t = 0; t < n_steps; ++t) {
        const double u = n_steps > 1 ? static_cast<double>(t) / (T - 1) : 0.0;
        double beta;
        if (kind == "linear") {
            beta = beta_start + u * (static_cast<double>(beta_end) - beta_start);
        } else {
            const double r =
                std::sqrt(static_cast<double>(beta_start)) +
                u * (std::sqrt(static_cast<double>(beta_end)) - std::sqrt(static_cast<double>(beta_start)));
            beta = r * r;
        }
        ab *= 1.0 - beta;
        alpha_bar[t] = ab;
    }
    return true;
}

bool parse_prediction(const std::string & s, diffusion_prediction * out) {
    if (s == "epsilon") {
        *out = PREDICT_EPSILON;
        return true;
    }
    if (s == "v") {
        *out = PREDICT_V;
        return true;
    }
    return false;
}

}  // namespace spider
