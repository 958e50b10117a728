// runtime/sampling_json: the one reader of sampling fields, and the HTTP API built on it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "launch/serve/serve_api.h"
#include "runtime/sampling_json.h"

using dpep::RequestFieldError;
using dpep::SamplingParams;
using nlohmann::json;

namespace {

SamplingParams read(const json& j, int vocab = 100) {
  SamplingParams s;
  dpep::read_sampling_fields(j, s, vocab);
  return s;
}

std::string refused_field(const json& j, int vocab = 100) {
  try {
    read(j, vocab);
  } catch (const RequestFieldError& e) {
    return e.field();
  }
  return "";
}

}  // namespace

TEST(SamplingJson, ReadsEveryFieldAndKeepsDefaultsOfAbsentOnes) {
  SamplingParams s;
  s.temperature = 0.5f;
  s.max_tokens = 7;
  dpep::read_sampling_fields(json{{"top_p", 0.9},
                                  {"top_k", 5.0},
                                  {"min_p", 0.1},
                                  {"seed", 3},
                                  {"ignore_eos", true},
                                  {"stop_token_ids", {4, 9}},
                                  {"temperature", nullptr}},
                             s, 100);
  EXPECT_FLOAT_EQ(s.temperature, 0.5f);  // null keeps the default
  EXPECT_FLOAT_EQ(s.top_p, 0.9f);
  EXPECT_EQ(s.top_k, 5);  // an integral float is an integer
  EXPECT_FLOAT_EQ(s.min_p, 0.1f);
  EXPECT_EQ(s.seed, 3);
  EXPECT_TRUE(s.ignore_eos);
  EXPECT_EQ(s.stop_token_ids, (std::vector<int>{4, 9}));
  EXPECT_EQ(s.max_tokens, 7);  // not a sampling field here
}

TEST(SamplingJson, TopKMinusOneMeansOff) {
  EXPECT_EQ(read(json{{"top_k", -1}}).top_k, 0);
}

TEST(SamplingJson, RefusesOutOfRangeValuesNamingTheField) {
  EXPECT_EQ(refused_field(json{{"temperature", -0.1}}), "temperature");
  EXPECT_EQ(refused_field(json{{"top_p", 0}}), "top_p");
  EXPECT_EQ(refused_field(json{{"top_p", 1.5}}), "top_p");
  EXPECT_EQ(refused_field(json{{"top_k", -2}}), "top_k");
  EXPECT_EQ(refused_field(json{{"top_k", 101}}), "top_k");
  EXPECT_EQ(refused_field(json{{"top_k", 2.5}}), "top_k");
  EXPECT_EQ(refused_field(json{{"min_p", 1.5}}), "min_p");
  EXPECT_EQ(refused_field(json{{"seed", -1}}), "seed");
  EXPECT_EQ(refused_field(json{{"ignore_eos", 1}}), "ignore_eos");
  EXPECT_EQ(refused_field(json{{"stop_token_ids", {100}}}), "stop_token_ids");
  EXPECT_EQ(refused_field(json{{"stop_token_ids", {-1}}}), "stop_token_ids");
  EXPECT_EQ(refused_field(json{{"stop_token_ids", 5}}), "stop_token_ids");
  EXPECT_EQ(refused_field(json{{"temperature", "hot"}}), "temperature");
  // Without a vocabulary only the sign is checked.
  EXPECT_EQ(read(json{{"stop_token_ids", {100000}}}, 0).stop_token_ids[0], 100000);
}

// The HTTP parser applies the same rules: each value refused above is a 400 naming the field.
TEST(SamplingJson, HttpApiRefusesTheSameValues) {
  dpep::ServeLimits lim;
  lim.vocab_size = 100;
  lim.max_model_len = 64;
  lim.served_model_name = "m";
  for (const json& bad :
       {json{{"temperature", -0.1}}, json{{"top_k", -2}}, json{{"top_k", 101}}, json{{"seed", -1}},
        json{{"stop_token_ids", {100}}}, json{{"min_p", 2}}}) {
    json body = bad;
    body["prompt"] = {1, 2, 3};
    try {
      dpep::parse_completion_request(body, lim);
      ADD_FAILURE() << "accepted " << body.dump();
    } catch (const dpep::ApiError& e) {
      EXPECT_EQ(e.status(), 400) << body.dump();
      EXPECT_EQ(e.param(), bad.begin().key()) << body.dump();
    }
  }
  json ok{{"prompt", {1, 2, 3}}, {"top_k", -1}, {"seed", 0}};
  EXPECT_EQ(dpep::parse_completion_request(ok, lim).request.sampling.top_k, 0);
}
