#include "server/router.h"

#include <ctime>

#include <fmt/format.h>

#include "core/error.h"
#include "core/logging.h"
#include "server/completion_routes.h"
#include "server/response_json.h"

namespace mlaserve::server {
namespace {

using Clock = std::chrono::steady_clock;

struct Route {
  const char* path;
  const char* method;
};

constexpr Route kRoutes[] = {
    {"/health", "GET"},           {"/metrics", "GET"},       {"/v1/models", "GET"},
    {"/v1/completions", "POST"},  {"/v1/chat/completions", "POST"},
    {"/tokenize", "POST"},        {"/detokenize", "POST"},
};

// A path segment with its %XX escapes decoded (clients encode a model id's '/' as %2F); a
// malformed escape is a 400.
std::string percent_decoded(std::string_view segment) {
  auto hex = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
  };
  std::string out;
  for (size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] != '%') {
      out += segment[i];
      continue;
    }
    const int hi = i + 2 < segment.size() ? hex(segment[i + 1]) : -1, lo = hi >= 0 ? hex(segment[i + 2]) : -1;
    if (lo < 0) throw ApiError(400, "malformed percent-encoding in the request path", "invalid_request_error");
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

// Compares without leaking the key's content through timing.
bool same_key(const std::string& given, const std::string& expected) {
  unsigned diff = given.size() != expected.size() ? 1u : 0u;
  for (size_t i = 0; i < given.size(); ++i) diff |= static_cast<unsigned>(given[i] ^ expected[i % expected.size()]);
  return diff == 0;
}

void check_api_key(const ServingState& state, const HttpRequest& req) {
  const std::string& key = state.options().api_key;
  if (key.empty()) return;
  static const std::string kBearer = "Bearer ";
  const bool ok = req.authorization.rfind(kBearer, 0) == 0 && same_key(req.authorization.substr(kBearer.size()), key);
  if (!ok) {
    throw ApiError(401, req.authorization.empty() ? "missing API key: send 'Authorization: Bearer <key>'"
                                                  : "incorrect API key provided",
                   "invalid_request_error", "", "invalid_api_key");
  }
}

Json model_card(ServingState& state) {
  static const int64_t created = static_cast<int64_t>(std::time(nullptr));
  return {{"id", state.options().model_name},
          {"object", "model"},
          {"created", created},
          {"owned_by", "mlaserve"},
          {"max_model_len", state.engine().max_model_len()}};
}

HttpReply handle_tokenize(ServingState& state, const Json& body) {
  if (const std::optional<std::string> model = get_string(body, "model")) check_model(state, *model);
  if (state.tokenizer() == nullptr) throw invalid_request("this server has no tokenizer");
  std::vector<int32_t> ids;
  try {
    if (field(body, "messages") != nullptr) {
      Json chat = body;
      chat["model"] = state.options().model_name;
      const ChatRequest req = parse_chat_request(chat, state.options().limits);
      ids = state.tokenizer()->encode(render_chat(state, req.messages, req.add_generation_prompt), false);
    } else {
      const std::optional<std::string> prompt = get_string(body, "prompt");
      if (!prompt) throw invalid_request("'prompt' (a string) or 'messages' is required", "prompt");
      ids = state.tokenizer()->encode(*prompt, get_bool(body, "add_special_tokens").value_or(true));
    }
  } catch (const Error& e) {
    throw invalid_request("cannot tokenize: " + client_message(e.what()), "prompt");
  }
  return json_reply(200, Json{{"tokens", ids}, {"count", ids.size()}, {"max_model_len", state.engine().max_model_len()}});
}

HttpReply handle_detokenize(ServingState& state, const Json& body) {
  if (const std::optional<std::string> model = get_string(body, "model")) check_model(state, *model);
  if (state.tokenizer() == nullptr) throw invalid_request("this server has no tokenizer");
  const std::optional<std::vector<int64_t>> tokens = get_int_array(body, "tokens", 0, INT32_MAX);
  if (!tokens) throw invalid_request("'tokens' (an array of token ids) is required", "tokens");
  std::vector<int32_t> ids;
  for (int64_t id : *tokens) {
    if (!state.tokenizer()->has_id(static_cast<int32_t>(id))) {
      throw invalid_request(fmt::format("token id {} is not in the tokenizer's vocabulary", id), "tokens");
    }
    ids.push_back(static_cast<int32_t>(id));
  }
  return json_reply(200, Json{{"prompt", state.tokenizer()->decode(ids, /*skip_special_tokens=*/false)}});
}

// The reply (or task) of an authenticated request to a known route.
Routed dispatch(ServingState& state, const std::string& path, const HttpRequest& req, const std::string& route) {
  Routed r;
  r.route = route;
  if (path == "/health") {
    const std::string broken = state.broken();
    r.reply = !broken.empty()    ? json_reply(503, Json{{"status", "failed"}, {"reason", broken}})
              : state.draining() ? json_reply(503, Json{{"status", "draining"}})
                                 : json_reply(200, Json{{"status", "ok"}});
    return r;
  }
  check_api_key(state, req);
  if (path == "/metrics") {
    r.reply = HttpReply{200, "text/plain; version=0.0.4; charset=utf-8", state.metrics().render(state.engine().stats()),
                        {}};
  } else if (path == "/v1/models") {
    r.reply = json_reply(200, Json{{"object", "list"}, {"data", Json::array({model_card(state)})}});
  } else if (path.rfind("/v1/models/", 0) == 0) {
    check_model(state, percent_decoded(std::string_view(path).substr(std::string_view("/v1/models/").size())));
    r.reply = json_reply(200, model_card(state));
  } else {
    const Json body = parse_json_object(req.body);
    if (path == "/tokenize") {
      r.reply = handle_tokenize(state, body);
    } else if (path == "/detokenize") {
      r.reply = handle_detokenize(state, body);
    } else {
      if (state.draining()) throw ApiError(503, "the server is shutting down", "service_unavailable");
      r.task = path == "/v1/completions" ? make_completion_task(state, body, Clock::now())
                                         : make_chat_task(state, body, Clock::now());
    }
  }
  return r;
}

}  // namespace

HttpReply json_reply(int status, const Json& body) { return HttpReply{status, "application/json", dump_json(body), {}}; }

HttpReply error_reply(const ApiError& error) { return json_reply(error.status(), error.body()); }

Routed route_request(ServingState& state, const HttpRequest& req) {
  std::string path = req.target.substr(0, req.target.find('?'));
  if (path.size() > 1 && path.back() == '/') path.pop_back();
  const bool model_path = path.rfind("/v1/models/", 0) == 0;
  const char* allowed = model_path ? "GET" : nullptr;
  for (const Route& route : kRoutes) {
    if (path == route.path) allowed = route.method;
  }
  Routed r;
  r.route = allowed == nullptr ? "other" : model_path ? "/v1/models/{id}" : path;
  try {
    if (allowed == nullptr) {
      throw ApiError(404, fmt::format("no route {} {}", req.method, path), "invalid_request_error", "", "not_found");
    }
    if (req.method != allowed && !(req.method == "HEAD" && std::string_view(allowed) == "GET")) {
      ApiError e(405, fmt::format("method {} is not allowed on {}; use {}", req.method, path, allowed),
                 "invalid_request_error", "", "method_not_allowed");
      r.reply = error_reply(e);
      r.reply->headers.emplace_back("Allow", allowed);
      return r;
    }
    return dispatch(state, path, req, r.route);
  } catch (const ApiError& e) {
    r.reply = error_reply(e);
  } catch (const nlohmann::json::exception& e) {  // a JSON value of an unexpected type deep in a request
    r.reply = error_reply(invalid_request(std::string("invalid request: ") + e.what()));
  } catch (const Error& e) {  // bad input caught by a lower layer's checks
    r.reply = error_reply(invalid_request(client_message(e.what())));
  } catch (const std::exception& e) {
    MLA_LOG_ERROR("{} {}: {}", req.method, path, e.what());
    r.reply = error_reply(ApiError(500, std::string("internal error: ") + e.what(), "internal_error"));
  }
  r.task = nullptr;
  return r;
}

}  // namespace mlaserve::server
