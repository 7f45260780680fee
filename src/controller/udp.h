// Unified Decoder Projector (UDP) and TM-Fusion (SPIDER.md §3).
//
// UDP: n_expert shared experts; expert k = Linear(d_model -> d_hidden) feeding a pre-norm encoder-decoder
// transformer (PyTorch nn.Transformer with norm_first=True, ReLU FFN, final encoder and decoder LayerNorms).
// Per modality M: a router MLP (d_model -> d_model -> n_expert, GELU) on the mean of the M-Prompt tokens whose
// sigmoid outputs are normalised to sum 1, learnable query tokens Q_M [t_out, d_hidden] as the decoder input,
// and an output Linear(d_hidden -> d_out):   y = out_M( sum_k w_k * expert_k(x, Q_M) ).
//
// TM-Fusion: cond = a * y + (1 - a) * text (the reference blend, a = 0.1), and, when the file holds the learned
// variant, + tanh(g_M) * out(MHA(LN(y), text, text)): a cross-attention of the M-Prompt over the T-Prompt
// tokens with a learned gate g_M (0 at initialisation = exactly the reference blend).
//
// Weights live in GGUF; tensor and key names are listed in docs/CONTROLLER.md and built by the functions below
// (one table, no ad-hoc strings). Linear weights have ne = {n_in, n_out} (PyTorch [out, in] reversed).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "controller/template.h"
#include "core/tensor.h"

namespace spider {

class gguf_file;

struct udp_hparams {
    int d_model = 0;     // LLM hidden size (M-Prompt token width)
    int d_hidden = 512;  // transformer width
    int n_expert = 3;
    int n_enc_layer = 4;
    int n_dec_layer = 4;
    int n_head = 4;
    int d_ff = 2048;
    float eps = 1e-5f;  // LayerNorm epsilon
    // Output shape per modality; t_out == 0 means the modality has no UDP head (BOX reads the T-Prompt only).
    int t_out[MODALITY_COUNT] = {0, 0, 0, 0, 0};
    int d_out[MODALITY_COUNT] = {0, 0, 0, 0, 0};
    // TM-Fusion
    float tmf_alpha = 0.1f;
    bool tmf_learned = false;
    int tmf_n_head = 1;

    // The reference sizes of SPIDER.md §3 for a given LLM width (IMAGE 77x768, VIDEO 77x1024, AUDIO 1x512,
    // MASK 1x256).
    static udp_hparams reference(int d_model);
};

class udp_model {
public:
    // Loads and validates a GGUF holding spider.udp.* (and optionally spider.tmf.*) keys and tensors.
    static std::unique_ptr<udp_model> load(const std::string & path, std::string * err);
    // Uses a file already open (e.g. the model bundle); the file must outlive the model.
    static std::unique_ptr<udp_model> from_gguf(std::shared_ptr<gguf_file> file, std::string * err);
    // Random weights (tests, tiny built-in model). Learned-fusion gates are set to `tmf_gate` (0 = blend only).
    static std::unique_ptr<udp_model> random(const udp_hparams & hp, uint64_t seed, float tmf_gate = 0.0f);
    ~udp_model();

    const udp_hparams & hparams() const { return hp_; }
    bool has(modality m) const { return m >= 0 && m < MODALITY_COUNT && hp_.t_out[m] > 0; }
    // Writes the weights and keys to a GGUF file (atomically).
    bool save(const std::string & path, std::string * err) const;

    // x: [n_tok, d_model] M-Prompt tokens -> y: [t_out, d_out]; router_w (optional) receives the n_expert weights.
    bool forward(modality m, const float * x, int n_tok, std::vector<float> * y, std::vector<float> * router_w,
                 std::string * err) const;
    // y, text: [t_out, d_out] -> cond [t_out, d_out]. alpha < 0 uses the file's alpha.
    bool fuse(modality m, const float * y, const float * text, int n_text_tok, std::vector<float> * cond,
              std::string * err, float alpha = -1.0f) const;

    // Tensor names (the one table).
    static std::string name_expert(int k, const std::string & leaf);      // spider.udp.expert.K.leaf
    static std::string name_enc(int k, int l, const std::string & leaf);  // ...expert.K.enc.L.leaf
    static std::string name_dec(int k, int l, const std::string & leaf);  // ...expert.K.dec.L.leaf
    static std::string name_mod(modality m, const std::string & leaf);    // spider.udp.image.leaf
    static std::string name_tmf(modality m, const std::string & leaf);    // spider.tmf.image.leaf

private:
    udp_model();
    struct impl;
    std::unique_ptr<impl> p_;
    udp_hparams hp_;
};

// Every expected tensor name with its shape (ne, innermost first), for validation, random init and docs.
struct udp_tensor_spec {
    std::string name;
    std::vector<int64_t> ne;
};
std::vector<udp_tensor_spec> udp_tensor_specs(const udp_hparams & hp);

// One tensor's dtype and data (laid out as its spec's shape) for udp_write_gguf.
struct udp_tensor_data {
    dtype type = DTYPE_F32;
    const void * data = nullptr;
};
// The one writer of the UDP GGUF format that udp_model::load reads, used by udp_model::save and by the trainer
// (train::udp_tape::save): general.architecture = spider-udp, the spider.udp.* and spider.tmf.* keys of hp, then every
// tensor of udp_tensor_specs(hp) in that order with its spec's shape, as tensor_of(spec) gives it.
bool udp_write_gguf(const std::string & path, const udp_hparams & hp,
                    const std::function<udp_tensor_data(const udp_tensor_spec &)> & tensor_of, std::string * err);

}  // namespace spider
