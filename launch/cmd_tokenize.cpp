// dpep tokenize: JSONL in, JSONL out, one output line per input line, in order.
//   in:  {"text": "..."}  or  {"messages": [...], "add_generation_prompt": true|false}
//   out: {"ids": [...], "decoded": "..."}  (+ "text": the rendered chat template, for messages)
//        or {"error": "line N: ..."} for a line that cannot be answered.
// Plain text gets BOS only with --add-special-tokens; chat text carries the template's own BOS
// and is encoded without adding special tokens (as transformers' apply_chat_template does).
#include <fmt/format.h>

#include <boost/program_options.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "launch/command.h"
#include "launch/run_options.h"
#include "model/io/weights_file.h"
#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/tokenizer.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using dpep::text::ChatTemplate;
using dpep::text::Tokenizer;

namespace {

Tokenizer load_tokenizer(std::string path) {
  if (fs::is_regular_file(path) && fs::path(path).filename() == "tokenizer.json") {
    path = fs::path(path).parent_path().string();  // the file itself: use its folder
  }
  if (fs::is_directory(path)) {
    if (!fs::exists(fs::path(path) / "tokenizer.json")) {
      throw std::runtime_error("no tokenizer.json in " + path);
    }
    return Tokenizer::from_directory(path);
  }
  if (fs::is_regular_file(path) && fs::path(path).extension() == ".h5") {
    // dpep model file: convert/init-model store the two files as text blobs.
    const dpep::WeightsReader file(path);
    const auto json = file.read_text("tokenizer/tokenizer.json");
    if (!json) throw std::runtime_error(path + " carries no tokenizer/tokenizer.json");
    return Tokenizer::from_json(*json,
                                file.read_text("tokenizer/tokenizer_config.json").value_or(""));
  }
  throw std::runtime_error(path + " is not a directory holding tokenizer.json");
}

nlohmann::ordered_json answer(const Tokenizer& tok, const std::optional<ChatTemplate>& chat,
                              const std::string& line, bool add_special) {
  const auto in = nlohmann::json::parse(line);
  if (!in.is_object()) throw std::runtime_error("expected a JSON object");
  nlohmann::ordered_json out;
  std::string chat_text;
  std::vector<int> ids;
  if (in.contains("text")) {
    if (!in["text"].is_string()) throw std::runtime_error("\"text\" must be a string");
    ids = tok.encode(in["text"].get_ref<const std::string&>(), add_special);
  } else if (in.contains("messages")) {
    if (!chat) throw std::runtime_error("the tokenizer has no DeepSeek chat template");
    auto p = dpep::text::encode_chat(tok, *chat, in["messages"],
                                     in.value("add_generation_prompt", false));
    chat_text = std::move(p.text);
    ids = std::move(p.ids);
  } else {
    throw std::runtime_error("expected \"text\" or \"messages\"");
  }
  out["ids"] = ids;
  out["decoded"] = tok.decode(ids, false);
  if (in.contains("messages")) out["text"] = chat_text;
  return out;
}

int run_tokenize(int argc, char** argv) {
  std::string tokenizer_path, input, output;
  bool add_special = false;
  const std::string usage =
      "usage: dpep tokenize --tokenizer PATH --input-file IN.jsonl --output-file OUT.jsonl "
      "[--add-special-tokens]";
  po::options_description desc("options");
  desc.add_options()(
      "tokenizer", po::value(&tokenizer_path)->required(),
      "directory holding tokenizer.json (and tokenizer_config.json for chat messages), or a "
      "dpep model file (.h5) carrying them")(
      "input-file", po::value(&input)->required(),
      "JSONL: {\"text\": ...} or {\"messages\": [...], \"add_generation_prompt\": bool}")(
      "output-file", po::value(&output)->required(),
      "JSONL: {\"ids\", \"decoded\"[, \"text\"]} or {\"error\"} per input line")(
      "add-special-tokens", po::bool_switch(&add_special),
      "add BOS to plain text (tokenizer_config add_bos_token); chat text has its own");
  po::variables_map vm;
  if (!dpep::parse_command_line(argc, argv, desc, vm, usage)) return 0;

  const Tokenizer tok = load_tokenizer(tokenizer_path);
  const auto chat = ChatTemplate::from_tokenizer(tok);
  std::ifstream in(input, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + input);
  std::ofstream out(output, std::ios::binary);
  if (!out) throw std::runtime_error("cannot create " + output);

  std::string line;
  size_t line_no = 0, errors = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    nlohmann::ordered_json result;
    try {
      if (line.find_first_not_of(" \t") == std::string::npos) {
        throw std::runtime_error("empty line");
      }
      result = answer(tok, chat, line, add_special);
    } catch (const std::exception& e) {
      ++errors;
      result = {{"error", fmt::format("line {}: {}", line_no, e.what())}};
    }
    out << result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  }
  if (!out.flush()) throw std::runtime_error("cannot write " + output);
  fmt::print(stderr, "tokenized {} lines into {} ({} with errors)\n", line_no, output, errors);
  return 0;
}

dpep::RegisterCommand reg("tokenize", "encode JSONL text or chat messages with a tokenizer",
                          run_tokenize);

}  // namespace
