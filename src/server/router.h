// The routes: method + path -> a handler, behind the API key check. Independent of the HTTP
// library (http_session.h feeds it), so every route is unit-tested without a socket.
//
//   GET  /health                200 {"status": "ok"}; 503 while draining. Never needs the key.
//   GET  /metrics               Prometheus text (metrics.h)
//   GET  /v1/models             {"object": "list", "data": [{"id": <model>, ...}]}
//   GET  /v1/models/{id}        one of them, or 404
//   POST /v1/completions        completion_routes.h
//   POST /v1/chat/completions   completion_routes.h
//   POST /tokenize              {"prompt": str, "add_special_tokens": true} or {"messages": [...],
//                               "add_generation_prompt": true} -> {"tokens", "count", "max_model_len"}
//   POST /detokenize            {"tokens": [ids]} -> {"prompt": text}
// Unknown paths answer 404, known paths with another method 405 (with Allow). Every failure is
// an OpenAI error body; an exception that is not an ApiError becomes a 400 (mlaserve::Error:
// bad input that reached a lower layer) or a 500.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "server/api_error.h"
#include "server/generation_task.h"
#include "server/serving_state.h"

namespace mlaserve::server {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query
  std::string body;
  std::string authorization;  // the Authorization header ("" if absent)
};

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// What a request turns into: a reply now, or a generation task for the connection to run.
struct Routed {
  std::string route;  // the metrics label: the path, or "other"
  std::optional<HttpReply> reply;
  std::shared_ptr<GenerationTask> task;
};

Routed route_request(ServingState& state, const HttpRequest& request);

HttpReply json_reply(int status, const Json& body);
HttpReply error_reply(const ApiError& error);

}  // namespace mlaserve::server
