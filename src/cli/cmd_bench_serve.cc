// `mlaserve bench serve`: a client that replays a workload against a running server
// (`mlaserve serve`, or any OpenAI-compatible one) over streamed /v1/completions, at a fixed
// Poisson request rate and/or a fixed concurrency, and reports TTFT, TPOT, ITL and end-to-end
// latency (mean, median, p90, p99) with request and token throughput: a table on stdout, JSON
// (date, command, server, model, options, results) under --results-dir. --sweep-rates runs the
// workload once per rate and, when python3 has matplotlib, plots the sweep
// (tools/plot_bench_serve.py, which can also be run by hand on the JSON).
//   mlaserve bench serve --port 8000 --num-prompts 200 --random-input-len 128 --random-output-len 32 --request-rate 8
//   mlaserve bench serve --port 8000 --dataset prompts.jsonl --max-concurrency 16
//   mlaserve bench serve --port 8000 --sweep-rates 1,2,4,8,inf
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>

#include "cli/cmd_bench.h"
#include "cli/commands.h"
#include "core/error.h"
#include "loadgen/load_runner.h"
#include "loadgen/workload.h"

namespace mlaserve::cli {
namespace {

struct ServeBenchArgs {
  loadgen::ServerAddress server;
  std::string endpoint = "/v1/completions";
  std::string model;  // empty: the first model the server lists
  std::string dataset;
  loadgen::RandomWorkloadOptions random;
  std::string request_rate = "inf";
  std::vector<std::string> sweep_rates;
  int64_t max_concurrency = 0;
  double request_timeout_s = 600;
  std::string card = "server";
  std::string results_dir = "bench/results";
  bool no_plot = false;
};

double parse_rate(const std::string& text) {
  if (text == "inf") return std::numeric_limits<double>::infinity();
  size_t used = 0;
  double rate = 0;
  try {
    rate = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  MLA_CHECK(used == text.size() && rate > 0 && std::isfinite(rate),
            "request rate must be a positive number or inf, got '{}'", text);
  return rate;
}

// The id of the first model in GET /v1/models.
std::string served_model(const loadgen::ServerAddress& server) {
  const std::string body = loadgen::http_get(server, "/v1/models");
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  MLA_CHECK(!j.is_discarded() && j.contains("data") && j["data"].is_array() && !j["data"].empty() &&
                j["data"][0].contains("id") && j["data"][0]["id"].is_string(),
            "GET /v1/models: no model listed: {}", body.substr(0, 200));
  return j["data"][0]["id"].get<std::string>();
}

// Plots a sweep with tools/plot_bench_serve.py when python3 and matplotlib are there.
void plot_sweep(const std::string& json_path) {
  const std::filesystem::path script = std::filesystem::path(MLASERVE_SOURCE_DIR) / "tools" / "plot_bench_serve.py";
  if (!std::filesystem::exists(script) ||
      std::system("python3 -c 'import matplotlib' >/dev/null 2>&1") != 0) {
    std::printf("no plot (needs python3 with matplotlib): %s %s\n", script.c_str(), json_path.c_str());
    return;
  }
  const std::string command = "python3 '" + script.string() + "' '" + json_path + "'";
  std::fflush(stdout);  // the script's output comes after ours
  if (std::system(command.c_str()) != 0) std::printf("plotting failed: %s\n", command.c_str());
}

void run_bench_serve(const ServeBenchArgs& a) {
  const std::string model = a.model.empty() ? served_model(a.server) : a.model;
  const std::vector<loadgen::LoadRequest> requests =
      a.dataset.empty() ? loadgen::random_workload(a.random) : loadgen::load_dataset(a.dataset);
  std::vector<std::string> rates = a.sweep_rates.empty() ? std::vector<std::string>{a.request_rate} : a.sweep_rates;
  std::vector<double> parsed;
  for (const std::string& r : rates) parsed.push_back(parse_rate(r));  // all checked before the first run

  const std::string address = a.server.host + ":" + std::to_string(a.server.port);
  nlohmann::json doc = {{"benchmark", "serve"},
                        {"card", a.card},
                        {"date", utc_now("%Y-%m-%dT%H:%M:%SZ")},
                        {"command", command_line()},
                        {"server", address},
                        {"model", model},
                        {"options",
                         {{"endpoint", a.endpoint},
                          {"dataset", a.dataset.empty() ? "random" : a.dataset},
                          {"num_prompts", requests.size()},
                          {"max_concurrency", a.max_concurrency},
                          {"seed", a.random.seed}}}};
  if (a.dataset.empty()) {
    doc["options"]["random_input_len"] = a.random.input_len;
    doc["options"]["random_output_len"] = a.random.output_len;
    doc["options"]["random_range_ratio"] = a.random.range_ratio;
    doc["options"]["random_vocab"] = a.random.vocab;
  }
  nlohmann::json runs = nlohmann::json::array();
  for (size_t i = 0; i < rates.size(); ++i) {
    loadgen::LoadOptions options;
    options.server = a.server;
    options.model = model;
    options.target = a.endpoint;
    options.request_rate = parsed[i];
    options.max_concurrency = a.max_concurrency;
    options.seed = a.random.seed;
    options.idle_timeout_s = a.request_timeout_s;
    std::printf("== %s at %s: %zu requests, request rate %s, max concurrency %s\n", model.c_str(), address.c_str(),
                requests.size(), rates[i].c_str(),
                a.max_concurrency > 0 ? std::to_string(a.max_concurrency).c_str() : "none");
    std::fflush(stdout);
    const loadgen::LoadResult result = loadgen::run_load(requests, options);
    const loadgen::BenchMetrics m = loadgen::aggregate(result.records, result.duration_s);
    std::printf("%s", loadgen::format_table(m).c_str());
    for (const std::string& e : m.errors) std::printf("  failed: %s\n", e.c_str());
    if (m.failed > 0) exit_code() = 1;
    nlohmann::json run = loadgen::to_json(m);
    run["request_rate"] = rates[i];
    runs.push_back(run);
  }
  doc["results"] = runs.size() == 1 ? runs[0] : nlohmann::json{{"runs", runs}};
  const std::string path = write_result(doc, a.results_dir);
  if (rates.size() > 1 && !a.no_plot) plot_sweep(path);
}

}  // namespace

void register_bench_serve(CLI::App& bench) {
  auto args = std::make_shared<ServeBenchArgs>();
  auto* cmd = bench.add_subcommand("serve", "Replay a workload against a running server: TTFT, TPOT, ITL, throughput");
  ServeBenchArgs& a = *args;
  cmd->add_option("--host", a.server.host, "Server host");
  cmd->add_option("--port", a.server.port, "Server port");
  cmd->add_option("--endpoint", a.endpoint, "Streaming completions route");
  cmd->add_option("--model", a.model, "The requests' model field (default: the first one in /v1/models)");
  cmd->add_option("--dataset", a.dataset,
                  "JSONL workload, one {\"prompt\" or \"prompt_ids\", \"max_tokens\"} per line (default: random)");
  cmd->add_option("--num-prompts", a.random.num_requests, "Random requests")->check(CLI::PositiveNumber);
  cmd->add_option("--random-input-len", a.random.input_len, "Mean prompt tokens")->check(CLI::PositiveNumber);
  cmd->add_option("--random-output-len", a.random.output_len, "Mean output tokens")->check(CLI::PositiveNumber);
  cmd->add_option("--random-range-ratio", a.random.range_ratio,
                  "Lengths uniform in mean * [1 - r, 1 + r]")->check(CLI::Range(0.0, 0.999));
  cmd->add_option("--random-vocab", a.random.vocab, "Random prompt ids lie in [0, this)")->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a.random.seed, "Seed of the random workload and of the arrival times");
  cmd->add_option("--request-rate", a.request_rate, "Requests per second (Poisson arrivals), or inf: all at once");
  cmd->add_option("--sweep-rates", a.sweep_rates, "Run once per rate (e.g. 1,2,4,inf) and plot the sweep")
      ->delimiter(',');
  cmd->add_option("--max-concurrency", a.max_concurrency, "Requests in flight at most (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--request-timeout", a.request_timeout_s, "Seconds a connection may stay silent")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--card", a.card, "The server's GPU, for the result file's name");
  cmd->add_option("--results-dir", a.results_dir, "Where the JSON result goes");
  cmd->add_flag("--no-plot", a.no_plot, "Do not plot a sweep");
  cmd->callback([args] { run_bench_serve(*args); });
}

}  // namespace mlaserve::cli
