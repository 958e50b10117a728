// One generation request seen from its HTTP handler thread: submits it to the ServeSource and
// turns its token events into text (streaming detokeniser, stop strings, optional R1 reasoning
// split). A stop string ends the request: the engine is told to abort it and the rest of its
// tokens are dropped. The destructor cancels an unfinished request (client gone), so the
// owning rank frees its KV pages.
// Thread safety: one session belongs to one HTTP thread.
#pragma once
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "launch/serve/serve_api.h"
#include "launch/serve/serve_source.h"
#include "runtime/tokenizer/detokenizer.h"
#include "runtime/tokenizer/reasoning_parser.h"
#include "runtime/tokenizer/stop_strings.h"

namespace dpep {

struct SessionUpdate {
  std::vector<int> ids;                 // tokens of this update (none after a stop string)
  std::vector<TokenLogprobs> logprobs;  // one per id when asked
  std::string text;                     // new text (content when the reasoning parser is on)
  std::string reasoning;                // new reasoning text (reasoning parser only)
  FinishReason finish = FinishReason::None;
  std::string error;                 // finish == Error
  bool error_before_output = false;  // the engine refused it: a request error (400)
};

class GenerationSession {
 public:
  // Throws ApiError (429 / 503) from the source. reasoning: split <think> ... </think>.
  GenerationSession(ServeSource& source, const ApiRequest& req, const ServeLimits& lim,
                    bool reasoning);
  ~GenerationSession();
  GenerationSession(const GenerationSession&) = delete;
  GenerationSession& operator=(const GenerationSession&) = delete;

  // Waits up to `timeout` for events and folds them into `u` (which is cleared first); false
  // when nothing came. After the finishing update, returns false at once.
  bool next(SessionUpdate& u, std::chrono::milliseconds timeout);
  bool finished() const { return finished_; }
  void cancel();  // no-op once finished

  int64_t id() const { return ch_->id(); }
  int prompt_tokens() const { return prompt_tokens_; }
  int completion_tokens() const { return completion_tokens_; }

 private:
  void add_text(SessionUpdate& u, const std::string& piece);
  void finish_text(SessionUpdate& u);

  ServeSource& source_;
  std::shared_ptr<RequestChannel> ch_;
  std::optional<text::IncrementalDetokenizer> detok_;
  std::optional<text::StopStringMatcher> stops_;
  std::optional<text::ReasoningParser> reasoning_;
  int prompt_tokens_ = 0, completion_tokens_ = 0;
  bool finished_ = false;
};

}  // namespace dpep
