// The memory plan's arithmetic on the tiny preset against numbers computed by hand (the
// derivations are in the comments), the KV layout against runtime/kv_cache.h, the dtypes read
// from a model file's metadata, the "does not fit" advice, and the host memory parsers.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "model/io/memory_plan.h"
#include "model/io/plan_tensors.h"
#include "model/io/random_init.h"
#include "model/io/weights_file.h"
#include "runtime/host_memory.h"
#include "runtime/kv_cache.h"

namespace fs = std::filesystem;
using namespace dpep;

namespace {

// tiny: V 512, H 64, dense width 128, expert width 32, 3 layers (layer 0 dense), 4 heads,
// q_lora 32, kv_lora 16, nope 16, rope 8, v 16, 8 experts (top 2), 1 shared expert.
const ModelConfig kTiny = ModelConfig::preset("tiny");

PlanFlags flags(int ranks) {
  PlanFlags f;
  f.ranks = ranks;
  f.kv_cache_tokens = 1000;
  f.page_size = 64;
  f.max_prefill_tokens = 8;
  f.max_batch_size = 8;
  f.threads = 1;
  return f;
}

}  // namespace

TEST(MemoryPlan, TinyBf16WeightsByHand) {
  const auto p = make_memory_plan(kTiny, plan_tensors_for_init(kTiny, DType::BF16), flags(2), 0);
  // bf16: embed + lm_head 2 x 512x64 x 2 = 131072; attention per layer (q_a 32x64, q_b 96x32,
  // kv_a 24x64, kv_b 128x16, o 64x64 = 12800 el) x 3 layers x 2 = 76800; dense MLP 3 x 8192 el
  // x 2 = 49152; each of 2 MoE layers: router 8x64 x 2 = 1024, 4 of 8 experts x 3 x 2048 el x 2
  // = 49152, shared 3 x 2048 x 2 = 12288.
  EXPECT_EQ(p.weights_bf16, 131072u + 76800 + 49152 + 2 * (1024 + 49152 + 12288));
  // Vectors as float32: 3 layers x (64 + 64 + 32 + 16) x 4 = 2112, 2 biases x 8 x 4, norm 256.
  EXPECT_EQ(p.weights_f32, 2112u + 64 + 256);
  EXPECT_EQ(p.weights_fp8, 0u);
  EXPECT_EQ(p.fp8_scales, 0u);
  EXPECT_EQ(p.experts_on_rank, 4);
  EXPECT_EQ(p.experts, 2u * 49152);
  EXPECT_EQ(p.replicated + p.experts, p.weights());
  EXPECT_EQ(p.largest_tensor, 65536u);  // embed_tokens / lm_head
}

TEST(MemoryPlan, TinyFp8WeightsAndScalesByHand) {
  const auto p = make_memory_plan(kTiny, plan_tensors_for_init(kTiny, DType::F8E4M3), flags(2), 0);
  // fp8 (1 byte): attention 3 x 12800, dense 24576, per MoE layer 4 experts x 6144 + shared 6144.
  EXPECT_EQ(p.weights_fp8, 3u * 12800 + 24576 + 2 * (24576 + 6144));
  // Every matrix of tiny is one 128x128 block (4 bytes): 5 per attention layer, 3 dense, per
  // MoE layer 4 experts x 3 + 3 shared.
  EXPECT_EQ(p.fp8_scales, 4u * (3 * 5 + 3 + 2 * (12 + 3)));
  // Embeddings and router stay bf16.
  EXPECT_EQ(p.weights_bf16, 131072u + 2 * 1024);
  EXPECT_EQ(p.weights_f32, 2432u);
}

TEST(MemoryPlan, MoreRanksFewerExperts) {
  const auto t = plan_tensors_for_init(kTiny, DType::BF16);
  const auto p1 = make_memory_plan(kTiny, t, flags(1), 0),
             p8 = make_memory_plan(kTiny, t, flags(8), 0);
  EXPECT_EQ(p1.replicated, p8.replicated);
  EXPECT_EQ(p1.experts, 8 * p8.experts);
  EXPECT_THROW(make_memory_plan(kTiny, t, flags(3), 0), std::invalid_argument);
}

TEST(MemoryPlan, KvCacheBytesMatchTheRuntimeLayout) {
  // float32: 3 layers x (16 + 8) x 4 = 288; bf16 (one copy, rows padded to 32 elements):
  // 3 x 32 x 2 = 192.
  EXPECT_EQ(kv_cache_bytes_per_token(kTiny, false), 288u);
  EXPECT_EQ(kv_cache_bytes_per_token(kTiny, true), 192u);
  for (bool bf16 : {false, true})
    EXPECT_EQ(kv_cache_bytes_per_token(kTiny, bf16),
              KvCache::bytes_per_token(3, 24, bf16, static_cast<int>(kTiny.kv_lora_rank)));
  // 1000 tokens in pages of 64: 16 pages = 1024 tokens.
  const auto p = make_memory_plan(kTiny, plan_tensors_for_init(kTiny, DType::BF16), flags(2), 0);
  EXPECT_EQ(p.kv_tokens, 1024);
  EXPECT_EQ(p.kv_bytes, 1024u * 288);
}

TEST(MemoryPlan, ActivationsByHand) {
  PlanFlags f = flags(2);
  f.kv_cache_tokens = 64;
  // T = 8 + 8 = 16 rows, 8 logits rows, context 64.
  // base 3*16*64 = 3072; attention 16*(4*24 + 32 + 24 + 4*24 + 4*16 + 4*16) + (64 + 24)*64
  // = 11648; dense 16*2*128 = 4096; MoE: logits 16*8 = 128, sent 16*2*64 = 2048, received and
  // outputs 2*(2048 + 16*2*64) = 8192, one expert's rows min(32, 2*16*2*2/8 = 16) * (2*64 + 2*32)
  // = 3072, shared 16*(64 + 64) = 2048: 15488; head 8*(64 + 512) = 4608. Attention and the
  // larger of dense and MoE are held together (the run-state keeps both).
  EXPECT_EQ(activation_bytes(kTiny, f), 4u * (3072 + 11648 + 15488 + 4608));
}

TEST(MemoryPlan, CacheFractionSharesWhatIsLeft) {
  const auto t = plan_tensors_for_init(kTiny, DType::BF16);
  PlanFlags f = flags(2);
  f.kv_cache_tokens = 0;
  f.cache_fraction = 0.5;
  f.ranks_per_host = 2;
  PlanFlags g = f;
  g.kv_cache_tokens = 0;
  const auto probe = make_memory_plan(kTiny, t, g, 0);  // one page, weights and overhead
  const uint64_t rest = probe.weights() + probe.overhead + activation_bytes(kTiny, f);
  // 0.5 / 2 ranks of (available - 2 x rest) = 100 pages of 64 x 288 bytes.
  const uint64_t avail = 2 * rest + 4ull * 100 * 64 * 288;
  const auto p = make_memory_plan(kTiny, t, f, avail);
  EXPECT_EQ(p.kv_tokens, 100 * 64);
  EXPECT_LE(2 * p.peak(), avail);
  EXPECT_EQ(make_memory_plan(kTiny, t, f, rest).kv_tokens, 64);  // nothing left: one page
}

TEST(MemoryPlan, PeakIsLoadingOrServingNotBoth) {
  MemoryPlan p;
  p.weights_bf16 = 1000;
  p.overhead = 10;
  p.largest_tensor = 300;
  p.kv_bytes = 100;
  p.activations = 50;
  EXPECT_EQ(p.peak(), 1310u);
  p.kv_bytes = 500;
  EXPECT_EQ(p.peak(), 1560u);
}

TEST(MemoryPlan, MisfitMessageGivesNumbersAndFixes) {
  ModelConfig c = kTiny;
  const auto t = plan_tensors_for_init(c, DType::BF16);
  PlanFlags f = flags(1);
  f.kv_cache_tokens = 1 << 20;  // 302 MB of cache
  f.ranks_per_host = 1;
  const auto p = make_memory_plan(c, t, f, 0);
  EXPECT_EQ(memory_misfit_message(c, t, f, p, p.peak(), "host h"), "");
  const uint64_t avail = p.peak() - p.kv_bytes / 2;
  const std::string m = memory_misfit_message(c, t, f, p, avail, "host h");
  EXPECT_NE(m.find("not enough memory on host h"), std::string::npos) << m;
  EXPECT_NE(m.find(format_bytes(p.peak())), std::string::npos) << m;
  EXPECT_NE(m.find(format_bytes(avail)), std::string::npos) << m;
  EXPECT_NE(m.find("--kv-cache-tokens"), std::string::npos) << m;
  // The suggested size really fits.
  const auto at = m.find("--kv-cache-tokens ") + 18;
  PlanFlags g = f;
  g.kv_cache_tokens = std::stoll(m.substr(at));
  EXPECT_LE(make_memory_plan(c, t, g, 0).peak(), avail);
  EXPECT_GE(g.kv_cache_tokens, (1 << 19) - 64 * 64);
}

TEST(MemoryPlan, MisfitSuggestsMoreRanksWhenExpertsDominate) {
  ModelConfig c = kTiny;
  c.moe_intermediate_size = 8192;  // experts: 2 layers x 8 x 3 x 8192 x 64 x 2 bytes = 50 MB
  c.validate();
  const auto t = plan_tensors_for_init(c, DType::BF16);
  PlanFlags f = flags(1);
  const auto p1 = make_memory_plan(c, t, f, 0);
  PlanFlags f2 = f, f4 = f;
  f2.ranks = 2;
  f4.ranks = 4;
  const auto p2 = make_memory_plan(c, t, f2, 0), p4 = make_memory_plan(c, t, f4, 0);
  const uint64_t avail = (p2.peak() + p4.peak()) / 2;  // 4 ranks fit, 1 and 2 do not
  ASSERT_GT(p2.peak(), avail);
  f.ranks_per_host = 1;
  const std::string m = memory_misfit_message(c, t, f, p1, avail, "host h");
  EXPECT_NE(m.find("-np 4 (1 per host on 4 hosts: 2 experts per rank)"), std::string::npos) << m;
}

TEST(MemoryPlan, DtypesFromTheModelFileMetadata) {
  const fs::path dir = fs::temp_directory_path() / ("dpep_test_plan_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  InitOptions o;
  o.dtype = DType::F8E4M3;
  const std::string path = (dir / "tiny-fp8.h5").string();
  write_random_model(kTiny, o, path);
  WeightsReader file(path);
  const auto from_file = plan_tensors_from_file(file);
  const auto expected = plan_tensors_for_init(kTiny, DType::F8E4M3);
  ASSERT_EQ(from_file.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(from_file[i].spec.name, expected[i].spec.name);
    EXPECT_EQ(from_file[i].dtype, expected[i].dtype) << expected[i].spec.name;
  }
  fs::remove_all(dir);
}

TEST(HostMemory, Parsers) {
  EXPECT_EQ(parse_meminfo_available("MemTotal: 100 kB\nMemFree: 5 kB\nMemAvailable:   2048 kB\n"),
            2048u * 1024);
  EXPECT_EQ(parse_meminfo_available("MemTotal: 100 kB\n"), 0u);
  EXPECT_FALSE(cgroup_headroom("max\n", "100", "").has_value());
  EXPECT_FALSE(cgroup_headroom("9223372036854771712\n", "100", "").has_value());  // v1 no limit
  EXPECT_FALSE(cgroup_headroom("", "", "").has_value());
  // limit 1000, used 600 of which 200 inactive file pages: 1000 - 400.
  EXPECT_EQ(*cgroup_headroom("1000\n", "600\n", "anon 400\ninactive_file 200\n"), 600u);
  EXPECT_EQ(*cgroup_headroom("1000", "600", "total_inactive_file 100\ninactive_file 5\n"), 500u);
  EXPECT_EQ(*cgroup_headroom("500", "900", ""), 0u);
  EXPECT_EQ(parse_byte_size("123"), 123u);
  EXPECT_EQ(parse_byte_size("64K"), 65536u);
  EXPECT_EQ(parse_byte_size("1.5G"), 1610612736u);
  for (const char* bad : {"", "G", "12X", "-1", "1e30", "abc"})
    EXPECT_THROW(parse_byte_size(bad), std::invalid_argument) << bad;
}

TEST(MemoryPlan, AutoPrefillTokensIsTheLargestThatFits) {
  const ModelConfig c = ModelConfig::preset("small");
  const auto t = plan_tensors_for_init(c, DType::BF16);
  PlanFlags f = flags(2);
  f.ranks_per_host = 2;
  auto peak_at = [&](int n) {
    PlanFlags g = f;
    g.max_prefill_tokens = n;
    return make_memory_plan(c, t, g, 0).peak();
  };
  ASSERT_LT(peak_at(2048), peak_at(4096));  // activations grow with the prefill rows
  // Room for two ranks at 2048 rows but not at 4096: 2048.
  const uint64_t between = peak_at(2048) * 2 + (peak_at(4096) - peak_at(2048));
  EXPECT_EQ(auto_max_prefill_tokens(c, t, f, between), 2048);
  EXPECT_EQ(auto_max_prefill_tokens(c, t, f, peak_at(8192) * 2), 8192);
  EXPECT_EQ(auto_max_prefill_tokens(c, t, f, peak_at(256) * 2), 256);
  // Nothing fits: 8192, and the plan's misfit message speaks.
  EXPECT_EQ(auto_max_prefill_tokens(c, t, f, peak_at(256)), 8192);
  // The plan records the rows it planned for.
  f.max_prefill_tokens = 512;
  EXPECT_EQ(make_memory_plan(c, t, f, 0).max_prefill_tokens, 512);
}

TEST(MemoryPlan, AutoPrefillTokensKeepsV3WidthActivationsUnderTheCap) {
  ModelConfig c = ModelConfig::preset("v3");
  c.set_field("num_hidden_layers", "3");
  c.set_field("first_k_dense_replace", "1");
  c.set_field("n_routed_experts", "64");
  c.set_field("num_nextn_predict_layers", "0");
  c.validate();
  const auto t = plan_tensors_for_init(c, DType::F8E4M3);
  PlanFlags f;
  f.ranks = 2;
  f.ranks_per_host = 2;
  f.kv_cache_tokens = 4096;
  f.threads = 1;
  const uint64_t huge = 1ull << 50;
  const int n = auto_max_prefill_tokens(c, t, f, huge);
  auto activations_at = [&](int rows) {
    PlanFlags g = f;
    g.max_prefill_tokens = rows;
    return make_memory_plan(c, t, g, huge).activations;
  };
  EXPECT_LE(activations_at(n), kAutoActivationBytes);
  EXPECT_GT(activations_at(2 * n), kAutoActivationBytes);
  EXPECT_GE(n, 512);  // still enough rows per step to keep the GEMMs compute-bound
}
