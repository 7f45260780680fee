// The request pipeline: encode -> generate -> parse -> rules -> dispatch each group as it closes -> bundle.
#include "pipeline/pipeline.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <new>
#include <thread>

namespace spider {

namespace {

using clk = std::chrono::steady_clock;

double ms_since(clk::time_point t0) {
    return std::chrono::duration<double, std::milli>(clk::now() - t0).count();
}

// Concurrency limit of the decoder workers. A timed-out job's slot is handed back by the main thread.
struct slot_pool {
    std::mutex mu;
    std::condition_variable cv;
    int free = 1;
    void acquire() {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return free > 0; });
        --free;
    }
    void release() {
        {
            std::lock_guard<std::mutex> lk(mu);
            ++free;
        }
        cv.notify_one();
    }
};

struct job_state {
    std::mutex mu;
    std::condition_variable cv;
    bool started = false, done = false, slot_released = false, abandoned = false;
    clk::time_point t_start;
    std::atomic<bool> cancel{false};
    response_item item;
    std::vector<float> mprompt;  // [n_signal, n_embd]
    int n_mprompt = 0;
};

struct job_env {
    pipeline_components * c;
    pipeline_config cfg;
    std::shared_ptr<const image_u8> input_image;  // shared: an abandoned worker may outlive run_pipeline
    std::string out_dir;
    std::string model;
    uint64_t seed;
    clk::time_point t0;
    std::shared_ptr<const progress_fn> progress;
    std::shared_ptr<std::mutex> progress_mu;
    quality_rule quality;  // a copy: c.rules is restored when run_pipeline returns
};

void emit(const job_env & env, const progress_event & e) {
    if (!*env.progress) return;
    std::lock_guard<std::mutex> lk(*env.progress_mu);
    (*env.progress)(e);
}

// Calls decoder->decode with failure isolation: errors, exceptions and out-of-memory become messages.
bool safe_decode(pipeline_components & c, decoder & d, const decode_request & rq, decode_result * res,
                 std::string * err) {
    try {
        std::unique_lock<std::mutex> lk;
        if (!d.thread_safe()) lk = std::unique_lock<std::mutex>(c.decoders.call_mutex(d.kind()));
        std::string e;
        if (!d.decode(rq, res, &e)) {
            *err = e.empty() ? "decoder failed" : e;
            return false;
        }
        return true;
    } catch (const std::bad_alloc &) {
        *err = "out of memory in " + d.name();
    } catch (const std::exception & ex) {
        *err = d.name() + " threw: " + ex.what();
    } catch (...) {
        *err = d.name() + " threw an unknown exception";
    }
    return false;
}

// The body of one item's job (runs on its own worker thread).
void run_item(const job_env & env, std::shared_ptr<job_state> st) {
    pipeline_components & c = *env.c;
    response_item & it = st->item;
    it.timings_ms["started"] = ms_since(env.t0);
    auto fail = [&](const std::string & status, const std::string & e) {
        it.status = status;
        it.error = e;
    };
    std::string e;
    std::shared_ptr<decoder> dec = c.decoders.get(it.m, &e);
    decode_request rq;
    rq.m = it.m;
    rq.t_prompt = it.t_prompt;
    rq.width = rq.height = env.cfg.image_size;
    rq.duration_s = it.m == MODALITY_VIDEO ? env.cfg.video_seconds : env.cfg.audio_seconds;
    rq.fps = env.cfg.video_fps;
    rq.input_image = env.input_image.get();
    rq.cancel = &st->cancel;
    const int id = it.id;
    rq.progress = [&env, id](int s, int n) {
        progress_event pe;
        pe.kind = progress_event::ITEM_STEP;
        pe.item = id;
        pe.step = s;
        pe.n_steps = n;
        emit(env, pe);
    };
    if (!dec) {
        fail("failed", e);
        return;
    }
    it.decoder = dec->name();
    if (it.m != MODALITY_BOX) {
        // T-Prompt through the decoder's own text encoder, M-Prompt through the UDP, then TM-Fusion.
        std::vector<float> text;
        int T = 0, D = 0;
        if (!dec->encode_text(it.t_prompt, &text, &T, &D, &e)) {
            fail("failed", e);
            return;
        }
        if (c.udp && c.udp->has(it.m)) {
            std::vector<float> y;
            if (!c.udp->forward(it.m, st->mprompt.data(), st->n_mprompt, &y, &it.router_weights, &e)) {
                fail("failed", e);
                return;
            }
            const auto & hp = c.udp->hparams();
            if (hp.t_out[it.m] != T || hp.d_out[it.m] != D) {
                fail("failed", "[tm-fusion] UDP output " + std::to_string(hp.t_out[it.m]) + "x" +
                                   std::to_string(hp.d_out[it.m]) + " does not match the decoder condition " +
                                   std::to_string(T) + "x" + std::to_string(D));
                return;
            }
            if (!c.udp->fuse(it.m, y.data(), text.data(), T, &rq.cond, &e)) {
                fail("failed", e);
                return;
            }
            it.decisions.push_back({"tm_fusion", "accept",
                                    std::string(hp.tmf_learned ? "learned" : "blend") + ", alpha " +
                                        std::to_string(hp.tmf_alpha).substr(0, 4)});
        } else {
            rq.cond = text;
            it.decisions.push_back({"tm_fusion", "keep", "no UDP head: the T-Prompt encoding alone conditions it"});
        }
        rq.cond_tokens = T;
        rq.cond_dim = D;
    }
    if (it.m == MODALITY_MASK) {
        // SPIDER.md §3: the box decoder finds the top box for the T-Prompt, the mask decoder gets box + M-Prompt.
        std::shared_ptr<decoder> bd = c.decoders.get(MODALITY_BOX, &e);
        if (bd) {
            decode_request br = rq;
            br.m = MODALITY_BOX;
            br.cond.clear();
            br.progress = nullptr;
            decode_result bres;
            std::string be;
            if (safe_decode(c, *bd, br, &bres, &be) && !bres.boxes.empty() && bres.boxes[0].score >= 0.3f) {
                rq.prompt_boxes = {bres.boxes[0]};
                it.decisions.push_back(
                    {"mask_box", "accept", "box prompt score " + std::to_string(bres.boxes[0].score)});
            } else {
                it.decisions.push_back({"mask_box", "keep", "no box >= 0.3 for the T-Prompt: mask without box prompt"});
            }
        }
    }
    const quality_rule & q = env.quality;
    const int n_attempts = q.enabled ? 1 + q.max_retries : 1;
    decode_result best;
    float best_score = -1.0f;
    uint64_t best_seed = it.seed;
    for (int a = 0; a < n_attempts; ++a) {
        if (st->cancel.load()) break;
        rq.seed = it.seed + static_cast<uint64_t>(a) * 7919u;
        decode_result res;
        it.attempts = a + 1;
        if (!safe_decode(c, *dec, rq, &res, &e)) {
            fail("failed", e);
            return;
        }
        res.m = it.m;
        if (!q.enabled) {
            best = std::move(res);
            best_seed = rq.seed;
            break;
        }
        const float s = c.scorer ? c.scorer(res, it.t_prompt) : builtin_quality_score(res, it.t_prompt);
        it.quality = s;
        if (s > best_score) {
            best_score = s;
            best = std::move(res);
            best_seed = rq.seed;
        }
        if (s >= q.min_score) {
            it.decisions.push_back(
                {"quality", "accept", "score " + std::to_string(s) + " >= " + std::to_string(q.min_score)});
            break;
        }
        if (a + 1 < n_attempts) {
            it.decisions.push_back({"quality", "retry",
                                    "score " + std::to_string(s) + " < " + std::to_string(q.min_score) + ", new seed"});
            continue;
        }
        if (q.drop_on_fail) {
            it.decisions.push_back(
                {"quality", "drop",
                 "score " + std::to_string(s) + " after " + std::to_string(n_attempts) + " attempt(s)"});
            it.seed = best_seed;
            fail("dropped", "quality below " + std::to_string(q.min_score));
            return;
        }
        it.decisions.push_back(
            {"quality", "keep", "best score " + std::to_string(best_score) + ", flagged for review"});
        it.needs_review = true;
        it.quality = best_score;
    }
    if (st->cancel.load()) {
        fail("timeout", "cancelled");
        return;
    }
    it.seed = best_seed;
    if (!env.out_dir.empty()) {
        if (!bundle_write_item(env.out_dir, best, env.input_image.get(), env.model, &it, &e, env.cfg.video_format)) {
            fail("failed", e);
            return;
        }
    } else {
        it.boxes = best.boxes;
    }
    it.status = "ok";
}

bool load_inputs(const run_request & req, std::vector<image_u8> * imgs, std::vector<audio_f32> * auds,
                 std::vector<video_u8> * vids, std::string * err) {
    for (const auto & p : req.images) {
        image_u8 im;
        std::string e;
        if (!image_read(p, &im, &e)) {
            *err = "[run] input image " + p + ": " + e;
            return false;
        }
        imgs->push_back(std::move(im));
    }
    for (const auto & p : req.audios) {
        audio_f32 a;
        std::string e;
        if (!audio_read(p, &a, &e)) {
            *err = "[run] input audio " + p + ": " + e;
            return false;
        }
        auds->push_back(std::move(a));
    }
    for (const auto & p : req.videos) {
        video_u8 v;
        std::string e;
        if (!video_read(p, &v, &e)) {
            *err = "[run] input video " + p + ": " + e;
            return false;
        }
        vids->push_back(std::move(v));
    }
    return true;
}

}  // namespace

bool run_pipeline(pipeline_components & c, const pipeline_config & cfg, text_generator & gen, const run_request & req,
                  const progress_fn & progress, response * out, std::string * err) {
    std::string e0;
    std::string * er = err ? err : &e0;
    const clk::time_point t0 = clk::now();
    response r;
    r.id = req.id;
    r.model = c.model_name;
    r.generator = gen.name();
    r.prompt = req.prompt;
    r.seed = req.seed;
    auto progress_mu = std::make_shared<std::mutex>();
    auto stage = [&](const std::string & s) {
        if (!progress) return;
        std::lock_guard<std::mutex> lk(*progress_mu);
        progress_event pe;
        pe.kind = progress_event::STAGE;
        pe.text = s;
        progress(pe);
    };

    // Effective rules for this request: the configured ones, tightened by the request's.
    const controller_rules rules = req.has_rules ? rules_merge(c.rules, req.rules) : c.rules;
    r.rules_json = rules_to_json(rules);

    // 1. inputs -> embeddings -> one LLM token each
    stage("encode");
    std::vector<image_u8> imgs;
    std::vector<audio_f32> auds;
    std::vector<video_u8> vids;
    if (!load_inputs(req, &imgs, &auds, &vids, er)) return false;
    std::vector<input_media> media;
    std::vector<std::vector<float>> embs;
    auto encode_one = [&](modality m, int idx, const std::string & path) {
        std::vector<float> emb, tok;
        std::string e;
        bool ok = !c.enc                ? (e = "no encoder loaded", false)
                  : m == MODALITY_IMAGE ? c.enc->encode_image(imgs[idx], &emb, &e)
                  : m == MODALITY_AUDIO ? c.enc->encode_audio(auds[idx], &emb, &e)
                                        : c.enc->encode_video(vids[idx], &emb, &e);
        if (ok && !c.proj) ok = (e = "no input projector loaded", false);
        if (ok) ok = c.proj->project(emb, &tok, &e);
        if (ok && static_cast<int>(tok.size()) != gen.n_embd()) {
            ok = (e = "projector width " + std::to_string(tok.size()) + " != LLM width " + std::to_string(gen.n_embd()),
                  false);
        }
        if (!ok) {
            *er = "[run] encoding " + path + ": " + e;
            return false;
        }
        media.push_back({m, idx});
        embs.push_back(std::move(tok));
        r.inputs.push_back({modality_name_lower(m), path});
        return true;
    };
    for (size_t i = 0; i < imgs.size(); ++i) {
        if (!encode_one(MODALITY_IMAGE, static_cast<int>(i), req.images[i])) return false;
    }
    for (size_t i = 0; i < vids.size(); ++i) {
        if (!encode_one(MODALITY_VIDEO, static_cast<int>(i), req.videos[i])) return false;
    }
    for (size_t i = 0; i < auds.size(); ++i) {
        if (!encode_one(MODALITY_AUDIO, static_cast<int>(i), req.audios[i])) return false;
    }
    r.timings_ms["encode"] = ms_since(t0);

    // 2. layout, task token, allowed modalities for the output grammar
    r.task_token = task_token_for(req.modalities, req.smart);
    input_layout layout;
    if (!build_input_layout(req.prompt, media, r.task_token, &layout, er)) return false;
    // The embeddings in layout order (markers in the question may reorder media).
    std::vector<std::vector<float>> tokens;
    for (const auto & seg : layout.segments) {
        if (!seg.is_media) continue;
        for (size_t k = 0; k < media.size(); ++k) {
            if (media[k].m == seg.media.m && media[k].index == seg.media.index) tokens.push_back(embs[k]);
        }
    }
    std::vector<modality> allowed;
    for (int i = 0; i < MODALITY_COUNT; ++i) {
        modality m = static_cast<modality>(i);
        if (!rules.allows(m) || !c.decoders.has(m)) continue;
        if (!req.smart && !req.modalities.empty() &&
            std::find(req.modalities.begin(), req.modalities.end(), m) == req.modalities.end()) {
            continue;
        }
        allowed.push_back(m);
    }
    stage("llm");
    if (!gen.begin(layout, tokens, allowed, req.seed, er)) return false;

    // 3. generate, parse, dispatch
    std::shared_ptr<const image_u8> input_image;
    if (!imgs.empty()) input_image = std::make_shared<const image_u8>(imgs[0]);
    job_env env{&c,           cfg,          input_image, req.out_dir,
                c.model_name, req.seed,     t0,          std::make_shared<const progress_fn>(progress),
                progress_mu,  rules.quality};
    auto pool = std::make_shared<slot_pool>();
    pool->free = std::max(1, cfg.n_workers);
    std::vector<std::shared_ptr<job_state>> jobs(0);
    std::vector<std::thread> threads;
    std::vector<int> job_item;  // item id of each job
    rule_engine re(rules);
    output_parser parser(c.tmpl);
    bool first_token = true;
    bool gen_error = false;

    auto handle = [&](const std::vector<parse_event> & evs) {
        for (const auto & ev : evs) {
            if (ev.kind == parse_event::TEXT) {
                if (!r.parts.empty() && !r.parts.back().is_item) {
                    r.parts.back().text += ev.text;
                } else {
                    answer_part p;
                    p.text = ev.text;
                    r.parts.push_back(p);
                }
            } else if (ev.kind == parse_event::WARNING) {
                r.warnings.push_back(ev.text);
            } else if (ev.kind == parse_event::GROUP) {
                const parsed_group & g = ev.group;
                response_item it;
                it.id = static_cast<int>(r.items.size());
                it.group_index = g.index;
                it.m = g.m;
                it.t_prompt = g.t_prompt;
                it.seed = req.seed + 1000003ull * static_cast<uint64_t>(it.id + 1);
                it.timings_ms["closed"] = ms_since(t0);
                answer_part p;
                p.is_item = true;
                p.item = it.id;
                r.parts.push_back(p);
                progress_event pe;
                pe.kind = progress_event::GROUP;
                pe.item = it.id;
                if (!g.ok) {
                    it.status = "malformed";
                    it.error = g.error;
                    it.decisions.push_back({"grammar", "block", g.error});
                } else if (!re.admit(g.m, g.t_prompt, &it.decisions)) {
                    it.status = "blocked";
                    it.error = it.decisions.back().detail;
                } else if (!c.decoders.has(g.m)) {
                    it.status = "failed";
                    it.error = std::string("no decoder for ") + modality_name_lower(g.m);
                } else {
                    auto st = std::make_shared<job_state>();
                    std::string e;
                    if (!gen.m_prompt(g.signal_positions, &st->mprompt, &e)) {
                        it.status = "failed";
                        it.error = e;
                    } else {
                        st->n_mprompt = static_cast<int>(g.signal_positions.size());
                        it.status = "running";
                        it.timings_ms["dispatched"] = ms_since(t0);
                        if (!r.timings_ms.count("first_dispatch")) r.timings_ms["first_dispatch"] = ms_since(t0);
                        st->item = it;
                        jobs.push_back(st);
                        job_item.push_back(it.id);
                        threads.emplace_back([env, st, pool] {
                            pool->acquire();
                            {
                                std::lock_guard<std::mutex> lk(st->mu);
                                st->started = true;
                                st->t_start = clk::now();
                            }
                            st->cv.notify_all();
                            run_item(env, st);
                            bool release = false;
                            {
                                std::lock_guard<std::mutex> lk(st->mu);
                                st->done = true;
                                st->item.timings_ms["finished"] = ms_since(env.t0);
                                if (!st->slot_released) {
                                    st->slot_released = true;
                                    release = true;
                                }
                            }
                            st->cv.notify_all();
                            if (release) pool->release();
                        });
                    }
                }
                pe.text = std::string(modality_name_lower(g.m)) + " " + it.status;
                r.items.push_back(it);
                if (progress) {
                    std::lock_guard<std::mutex> lk(*progress_mu);
                    progress(pe);
                }
            }
        }
    };

    int n_tok = 0;
    for (;;) {
        gen_token t;
        std::string e;
        if (!gen.next(&t, &e)) {
            r.warnings.push_back("generation stopped: " + e);
            gen_error = true;
            break;
        }
        if (t.end) break;
        if (first_token) {
            r.timings_ms["llm_first_token"] = ms_since(t0);
            first_token = false;
        }
        if (progress) {
            std::lock_guard<std::mutex> lk(*progress_mu);
            progress_event pe;
            pe.kind = progress_event::TOKEN;
            pe.text = t.piece;
            pe.step = n_tok + 1;
            pe.n_steps = cfg.max_tokens;
            progress(pe);
        }
        handle(parser.feed(t.piece, t.pos));
        if (parser.ended()) break;
        if (++n_tok >= cfg.max_tokens) {
            r.warnings.push_back("generation stopped at the token limit " + std::to_string(cfg.max_tokens));
            break;
        }
    }
    handle(parser.finish());
    r.timings_ms["llm_end"] = ms_since(t0);
    r.timings_ms["llm_tokens"] = n_tok;
    (void)gen_error;

    // 4. wait for the items; a job past its timeout is cancelled and abandoned (its slot handed back)
    stage("decoders");
    const auto timeout = std::chrono::duration<double>(cfg.item_timeout_s);
    for (size_t j = 0; j < jobs.size(); ++j) {
        auto & st = jobs[j];
        std::unique_lock<std::mutex> lk(st->mu);
        for (;;) {
            if (st->done) break;
            if (st->started && clk::now() - st->t_start > timeout) {
                st->abandoned = true;
                st->cancel.store(true);
                break;
            }
            st->cv.wait_for(lk, std::chrono::milliseconds(20));
        }
        response_item & dst = r.items[job_item[j]];
        if (st->abandoned) {
            // The worker may still be writing st->item: keep the copy made at dispatch instead.
            dst.status = "timeout";
            dst.error = "decoder ran past the item timeout of " + std::to_string(cfg.item_timeout_s) + " s";
            dst.files.clear();
            dst.timings_ms["finished"] = ms_since(t0);
            if (!st->slot_released) {
                st->slot_released = true;
                lk.unlock();
                pool->release();
            }
        } else {
            dst = st->item;
        }
        progress_event pe;
        pe.kind = progress_event::ITEM_DONE;
        pe.item = dst.id;
        pe.text = std::string(modality_name_lower(dst.m)) + " " + dst.status;
        if (progress) {
            std::lock_guard<std::mutex> plk(*progress_mu);
            progress(pe);
        }
    }
    // Join finished workers; give abandoned ones a short grace period to honour the cancel flag, then detach.
    for (size_t j = 0; j < threads.size(); ++j) {
        if (jobs[j]->abandoned) {
            std::unique_lock<std::mutex> lk(jobs[j]->mu);
            jobs[j]->cv.wait_for(lk, std::chrono::seconds(2), [&] { return jobs[j]->done; });
            const bool done = jobs[j]->done;
            lk.unlock();
            if (done) {
                threads[j].join();
            } else {
                threads[j].detach();
                r.warnings.push_back("item " + std::to_string(job_item[j]) + ": decoder still running after cancel");
            }
        } else {
            threads[j].join();
        }
    }
    r.timings_ms["decoders_done"] = ms_since(t0);

    // 5. review flags and the bundle
    for (auto & it : r.items) {
        if (it.status == "ok" && re.review(it.m, it.t_prompt, &it.decisions)) it.needs_review = true;
        if (it.needs_review) {
            r.needs_review = true;
            r.review_reasons.push_back("item " + std::to_string(it.id) + " (" + modality_name_lower(it.m) +
                                       "): " + (it.decisions.empty() ? "flagged" : it.decisions.back().detail));
        }
    }
    if (!req.out_dir.empty()) {
        stage("bundle");
        r.timings_ms["total"] = ms_since(t0);
        if (!bundle_write(req.out_dir, r, er)) return false;
    }
    r.timings_ms["total"] = ms_since(t0);
    *out = std::move(r);
    return true;
}

void make_tiny_components(pipeline_components * c, int n_embd, uint64_t seed) {
    c->model_name = "spider-tiny-random";
    c->enc = make_builtin_encoder(64, seed);
    c->proj = input_projector::random(64, n_embd, seed + 1);
    builtin_decoder_config dc;
    udp_hparams hp;
    hp.d_model = n_embd;
    hp.d_hidden = 32;
    hp.n_expert = 3;
    hp.n_enc_layer = 1;
    hp.n_dec_layer = 1;
    hp.n_head = 4;
    hp.d_ff = 64;
    for (int i = 0; i < MODALITY_COUNT; ++i) {
        hp.t_out[i] = dc.cond_tokens[i];
        hp.d_out[i] = dc.cond_dim[i];
    }
    hp.tmf_learned = true;
    hp.tmf_n_head = 2;
    c->udp = udp_model::random(hp, seed + 2, 0.3f);
    register_builtin_decoders(c->decoders, dc);
    c->scorer = builtin_quality_score;
}

}  // namespace spider
