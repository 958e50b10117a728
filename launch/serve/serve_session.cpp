#include "launch/serve/serve_session.h"

namespace dpep {

GenerationSession::GenerationSession(ServeSource& source, const ApiRequest& req,
                                     const ServeLimits& lim, bool reasoning)
    : source_(source), prompt_tokens_(static_cast<int>(req.request.prompt.size())) {
  if (lim.tokenizer) detok_.emplace(*lim.tokenizer, req.skip_special_tokens);
  if (!req.stop.empty()) stops_.emplace(req.stop);
  if (reasoning) reasoning_.emplace(true);
  ch_ = source_.submit(req.request);
}

GenerationSession::~GenerationSession() {
  if (!finished_) source_.cancel(ch_->id());
}

void GenerationSession::cancel() {
  if (!finished_) source_.cancel(ch_->id());
}

void GenerationSession::add_text(SessionUpdate& u, const std::string& piece) {
  if (piece.empty()) return;
  if (reasoning_) {
    auto d = reasoning_->push(piece);
    u.reasoning += d.reasoning;
    u.text += d.content;
  } else {
    u.text += piece;
  }
}

void GenerationSession::finish_text(SessionUpdate& u) {
  if (detok_) {
    std::string rest = detok_->flush();
    if (stops_) {
      auto r = stops_->push(rest);
      rest = std::move(r.text);
      if (!r.stopped) rest += stops_->flush();
    }
    add_text(u, rest);
  }
  if (reasoning_) {
    auto d = reasoning_->flush();
    u.reasoning += d.reasoning;
    u.text += d.content;
  }
}

bool GenerationSession::next(SessionUpdate& u, std::chrono::milliseconds timeout) {
  u = SessionUpdate{};
  if (finished_) return false;
  std::vector<RequestEvent> events;
  if (!ch_->wait(events, timeout)) return false;
  for (auto& e : events) {
    for (size_t i = 0; i < e.new_tokens.size() && !finished_; ++i) {
      const int t = e.new_tokens[i];
      u.ids.push_back(t);
      if (i < e.new_logprobs.size()) u.logprobs.push_back(e.new_logprobs[i]);
      completion_tokens_++;
      if (!detok_) continue;
      std::string piece = detok_->push(t);
      if (stops_) {
        auto r = stops_->push(piece);
        add_text(u, r.text);
        if (r.stopped) {  // ours, not the engine's: stop it there and drop what follows
          source_.cancel(ch_->id());
          finished_ = true;
          u.finish = FinishReason::Stop;
          if (reasoning_) {
            auto d = reasoning_->flush();
            u.reasoning += d.reasoning;
            u.text += d.content;
          }
        }
      } else {
        add_text(u, piece);
      }
    }
    if (finished_) break;
    if (e.finish != FinishReason::None) {
      finished_ = true;
      u.finish = e.finish;
      u.error = e.error;
      u.error_before_output = e.finish == FinishReason::Error && completion_tokens_ == 0;
      finish_text(u);
      break;
    }
  }
  return true;
}

}  // namespace dpep
