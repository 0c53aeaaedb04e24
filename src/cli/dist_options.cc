#include "cli/dist_options.h"

#include <map>
#include <string>

namespace mlaserve::cli {

void add_dist_options(CLI::App& cmd, dist::LaunchOptions& o) {
  cmd.add_option("--tensor-parallel-size", o.tp_size, "GPUs that split every layer (heads, MLP channels, experts, vocabulary)")
      ->check(CLI::PositiveNumber);
  cmd.add_option("--pipeline-parallel-size", o.pp_size, "Pipeline stages (contiguous layer ranges)")
      ->check(CLI::PositiveNumber);
  cmd.add_option("--expert-split", o.expert_split,
                 "How tensor-parallel ranks share the routed experts: 'experts' (a share of them held whole) or "
                 "'channels' (a share of every expert's channels: the same bytes on every rank, so none waits for "
                 "a busier one; faster single-sequence decode)")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, dist::ExpertSplit>{{"experts", dist::ExpertSplit::kExperts},
                                                   {"channels", dist::ExpertSplit::kChannels}},
          CLI::ignore_case))
      ->option_text("experts|channels");
  cmd.add_option("--nnodes", o.nnodes, "Machines taking part (each started with its --node-rank)")
      ->check(CLI::PositiveNumber);
  cmd.add_option("--node-rank", o.node_rank, "This machine's index in [0, nnodes)")->check(CLI::NonNegativeNumber);
  cmd.add_option("--master-addr", o.master_addr, "Address of node 0, where rank 0 waits for the others");
  cmd.add_option("--master-port", o.master_port, "TCP port of the rendezvous on node 0")->check(CLI::Range(1, 65535));
  cmd.add_option("--pipeline-micro-batches", o.micro_batches,
                 "Micro-batches each step is cut into across pipeline stages (each re-reads a stage's weights)")
      ->check(CLI::PositiveNumber);
  cmd.add_option("--pipeline-steps-in-flight", o.steps_in_flight,
                 "Steps of other sequences queued at once across pipeline stages (0: one per stage)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--step-timeout", o.step_timeout_s,
                 "Seconds a split run may go without a step ending while steps are queued before it ends "
                 "with an error (a hung NCCL transfer or kernel; 0: never)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--peer-all-reduce-max-kib", o.peer_all_reduce_max_kib,
                 "Tensor-parallel all-reduces of up to this many KiB go through the GPUs' memory of each other "
                 "within one machine instead of NCCL (0: always NCCL)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
}

}  // namespace mlaserve::cli
