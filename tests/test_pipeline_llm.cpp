// The real LLM path with the installed default model (not fine-tuned): template-constrained decoding gives
// well-formed answers with the requested groups for a set of prompts, and the first group is dispatched before
// the text ends. Skipped when the default model is not installed (scripts/setup.sh installs it).
#include <gtest/gtest.h>

#include "default_model_required.h"
#include "llm/default_model.h"
#include "llm/grammar.h"
#include "pipeline/pipeline.h"

using namespace spider;

struct llm_fixture {
    spider_model * model = nullptr;
    llm_fixture() {
        std::string path, err;
        if (!find_default_model(&path, &err)) return;
        spider_model_params mp = spider_model_default_params();
        if (spider_model_load(path.c_str(), mp, &model) != SPIDER_STATUS_OK) model = nullptr;
    }
    ~llm_fixture() {
        if (model) spider_model_free(model);
    }
};

TEST(pipeline_llm, default_model_writes_well_formed_mixed_answers) {
    llm_fixture lf;
    if (!lf.model) SPIDER_DEFAULT_MODEL_MISSING("default model not installed or not loadable");
    pipeline_components c;
    make_tiny_components(&c, spider_model_n_embd(lf.model), 3);
    pipeline_config cfg;
    cfg.image_size = 24;
    cfg.audio_seconds = 0.1f;
    cfg.video_seconds = 0.25f;
    cfg.max_tokens = 80;
    llm_gen_params gp;
    gp.n_threads = 2;
    gp.max_tokens = 80;
    gp.text_budget_first = 10;
    gp.text_budget_next = 6;
    gp.tprompt_max = 8;
    struct case_t {
        const char * prompt;
        std::vector<modality> mods;
        bool smart;
        std::vector<modality> want;
    } cases[] = {
        {"Describe a sunny beach.", {MODALITY_IMAGE, MODALITY_AUDIO}, false, {MODALITY_IMAGE, MODALITY_AUDIO}},
        {"Show me a video of a cat.", {MODALITY_VIDEO}, false, {MODALITY_VIDEO}},
        {"Draw a picture of a castle and play a sound of bells.", {}, true, {MODALITY_IMAGE, MODALITY_AUDIO}},
    };
    for (const auto & cs : cases) {
        SCOPED_TRACE(cs.prompt);
        std::string err;
        auto gen = make_llm_generator(lf.model, gp, c.tmpl, &err);
        ASSERT_TRUE(gen) << err;
        run_request req;
        req.prompt = cs.prompt;
        req.modalities = cs.mods;
        req.smart = cs.smart;
        req.seed = 4;
        response r;
        std::string raw;  // the answer exactly as generated, piece by piece
        auto collect = [&raw](const progress_event & e) {
            if (e.kind == progress_event::TOKEN) raw += e.text;
        };
        ASSERT_TRUE(run_pipeline(c, cfg, *gen, req, collect, &r, &err)) << err;
        // Checked independently by the project's GBNF engine: the raw answer is a sentence of the template grammar.
        std::vector<modality> allowed = cs.smart ? std::vector<modality>{MODALITY_IMAGE, MODALITY_VIDEO, MODALITY_AUDIO,
                                                                         MODALITY_BOX, MODALITY_MASK}
                                                 : cs.mods;
        auto g = grammar::parse(template_grammar(allowed, c.tmpl), &err);
        ASSERT_TRUE(g) << err;
        EXPECT_TRUE(grammar_accepts(*g, raw)) << raw;
        EXPECT_FALSE(grammar_accepts(*g, raw.substr(0, raw.size() - 5)));  // the check can fail: no [END]
        EXPECT_TRUE(r.warnings.empty()) << r.warnings[0];                  // [OUTPUT] first, [END] last, nothing stray
        ASSERT_EQ(r.items.size(), cs.want.size()) << r.text();
        for (size_t i = 0; i < cs.want.size(); ++i) {
            EXPECT_EQ(r.items[i].m, cs.want[i]);
            EXPECT_EQ(r.items[i].status, "ok") << r.items[i].error;
            EXPECT_FALSE(r.items[i].t_prompt.empty());
        }
        EXPECT_LT(r.timings_ms["first_dispatch"], r.timings_ms["llm_end"]);
        std::printf("%s -> %s\n", cs.prompt, r.text().c_str());
        for (const auto & it : r.items) std::printf("   %s: \"%s\"\n", modality_name_lower(it.m), it.t_prompt.c_str());
    }
}
