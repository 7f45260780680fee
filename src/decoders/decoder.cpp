// Decoder registry: load once on first use, shared instance afterwards, remembered load failures.
#include "decoders/decoder.h"

namespace spider {

void decoder_registry::add(modality m, const std::string & name, decoder_factory f) {
    std::lock_guard<std::mutex> lk(mu_);
    slot & s = slots_[m];
    s.name = name;
    s.factory = std::move(f);
    s.instance.reset();
    s.load_error.clear();
    s.loads = 0;
}

bool decoder_registry::has(modality m) const {
    std::lock_guard<std::mutex> lk(mu_);
    return slots_.count(m) > 0;
}

std::string decoder_registry::name_of(modality m) const {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = slots_.find(m);
    return it == slots_.end() ? std::string() : it->second.name;
}

std::shared_ptr<decoder> decoder_registry::get(modality m, std::string * err) {
    // One lock for the whole load: loads are rare (once per modality) and this keeps "exactly once" simple.
    std::lock_guard<std::mutex> lk(mu_);
    auto it = slots_.find(m);
    if (it == slots_.end()) {
        if (err) *err = std::string("[decoders] no decoder registered for ") + modality_name(m);
        return nullptr;
    }
    slot & s = it->second;
    if (s.instance) return s.instance;
    if (s.loads > 0) {
        if (err) *err = "[decoders] " + s.name + " failed to load: " + s.load_error;
        return nullptr;
    }
    ++s.loads;
    std::string e;
    std::unique_ptr<decoder> d;
    try {
        d = s.factory(&e);
    } catch (const std::exception & ex) {
        e = std::string("exception: ") + ex.what();
    } catch (...) {
        e = "unknown exception";
    }
    if (!d) {
        s.load_error = e.empty() ? "factory returned nothing" : e;
        if (err) *err = "[decoders] " + s.name + " failed to load: " + s.load_error;
        return nullptr;
    }
    s.instance = std::shared_ptr<decoder>(std::move(d));
    return s.instance;
}

int decoder_registry::load_count(modality m) const {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = slots_.find(m);
    return it == slots_.end() ? 0 : it->second.loads;
}

std::mutex & decoder_registry::call_mutex(modality m) {
    std::lock_guard<std::mutex> lk(mu_);
    return *slots_[m].call_mu;
}

}  // namespace spider
