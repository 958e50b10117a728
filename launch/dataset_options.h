// The datasets of dpep bench and dpep offline, one set of flags for both: random,
// generated-shared-prefix and sharegpt (SGLang bench_serving's names and flags).
#pragma once
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "launch/dataset_random.h"
#include "launch/dataset_shared_prefix.h"
#include "launch/dataset_sharegpt.h"

namespace dpep {

struct DatasetOptions {
  std::string name = "random";
  RandomDatasetArgs random;  // its num_prompts and seed serve every dataset
  SharedPrefixDatasetArgs gsp;
  ShareGptDatasetArgs sharegpt;
  void add_to(boost::program_options::options_description& d);
  void validate() const;  // throws std::invalid_argument on an unknown name
  // Token ids are drawn from [0, vocab) minus `excluded`; sharegpt needs `tokenizer`.
  std::vector<Request> make(int vocab, const std::vector<int>& excluded,
                            const text::Tokenizer* tokenizer) const;
  void describe(nlohmann::json& j) const;  // the dataset's arguments, for --result-file
};

}  // namespace dpep
