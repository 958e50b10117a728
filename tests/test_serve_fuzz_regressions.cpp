// Regressions found by tests/fuzz/fuzz_http_request.cpp (inputs kept in
// tests/fuzz/corpus/http_request/regress_*).
#include <gtest/gtest.h>

#include "launch/serve/serve_api.h"

using dpep::ApiError;
using dpep::parse_json_body;

// A number too large for a double made nlohmann throw out_of_range, not parse_error: it escaped
// parse_json_body (an uncaught exception in the fuzzer; a 500 instead of 400 in the server).
TEST(ServeFuzzRegression, NumberOverflowIs400) {
  for (const char* body :
       {R"({"prompt": [1], "max_tokens": 1e999})", R"({"a": -1E400})", "[1e99999]"}) {
    try {
      parse_json_body(body);
      ADD_FAILURE() << body << " was accepted";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status(), 400) << body;
      EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos) << e.what();
    }
  }
}
