// The rendezvous and the step plan with real processes over loopback TCP (no GPU): rank 0
// hands its blob (the NCCL id in production) to every rank, broadcasts step messages that each
// rank decodes to the same ForwardBatch, and gathers one reply per rank. Forked ranks report
// through their exit status. Also: step messages round-trip, and corrupt ones are refused; the
// watchdog (dist/watchdog.h) carries a rank's failure to every rank over the connections.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "core/error.h"
#include "dist/control_channel.h"
#include "dist/micro_batch.h"
#include "dist/step_message.h"
#include "dist/watchdog.h"
#include "free_port.h"

namespace mlaserve::dist {
namespace {

ForwardBatch sample_batch(int salt) {
  ForwardBatch b;
  b.token_ids = {1 + salt, 2, 3, 4, 5};
  b.positions = {0, 1, 2, 7, 9};
  b.slot_mapping = {64, 65, 66, 135, int64_t{1} << 40};
  b.sequences = {SequenceSlice{0, 3, 0, {1, 7}}, SequenceSlice{3, 1, 7, {2}}, SequenceSlice{4, 1, 9, {3, 4, 5}}};
  b.logit_rows = {2, 3, 4};
  return b;
}

bool same(const ForwardBatch& a, const ForwardBatch& b) {
  if (a.token_ids != b.token_ids || a.positions != b.positions || a.slot_mapping != b.slot_mapping ||
      a.logit_rows != b.logit_rows || a.sequences.size() != b.sequences.size()) {
    return false;
  }
  for (size_t i = 0; i < a.sequences.size(); ++i) {
    const SequenceSlice &x = a.sequences[i], &y = b.sequences[i];
    if (x.query_start != y.query_start || x.query_len != y.query_len || x.context_len != y.context_len ||
        x.block_table != y.block_table) {
      return false;
    }
  }
  return true;
}

TEST(StepMessage, RoundTripsAndRefusesCorruptMessages) {
  const ForwardBatch b = sample_batch(0);
  const std::string m = encode_step(b, 24);
  const StepMessage back = decode_message(m);
  ASSERT_EQ(back.kind, StepMessage::Kind::kStep);
  EXPECT_TRUE(same(back.batch, b));
  EXPECT_EQ(back.graph_batch, 24);
  EXPECT_EQ(decode_message(encode_step(b)).graph_batch, 0);
  EXPECT_THROW(decode_message(encode_step(b, -1)), Error);
  EXPECT_EQ(decode_message(encode_stop()).kind, StepMessage::Kind::kStop);
  const std::string handle("ring\0handle", 11);
  const StepMessage ring = decode_message(encode_ring(handle));
  ASSERT_EQ(ring.kind, StepMessage::Kind::kRing);
  EXPECT_EQ(ring.ring, handle);
  for (size_t cut : {size_t{0}, size_t{1}, size_t{9}, m.size() / 2, m.size() - 1}) {
    EXPECT_THROW(decode_message(m.substr(0, cut)), Error) << "cut at " << cut;
  }
  EXPECT_THROW(decode_message(m + "x"), Error);
  EXPECT_THROW(decode_message(encode_stop() + "x"), Error);
  std::string huge = m;
  huge[1 + 8 + 7] = '\x7f';  // after the graph size: a token count far past the message
  EXPECT_THROW(decode_message(huge), Error);
  EXPECT_THROW(decode_message("Z"), Error);
}

// Child ranks: rendezvous, check the blob and three step messages, answer, exit 0 on success.
int follower(int rank, int world, int port) {
  try {
    std::string blob;
    ControlChannel ch = ControlChannel::rendezvous(RendezvousOptions{"127.0.0.1", port, world, rank, 30.0}, blob);
    if (blob != "the-nccl-id\0x" + std::to_string(world)) return 2;
    for (int step = 0; step < 3; ++step) {
      const StepMessage m = decode_message(ch.receive());
      if (m.kind != StepMessage::Kind::kStep || !same(m.batch, sample_batch(step))) return 3;
    }
    if (decode_message(ch.receive()).kind != StepMessage::Kind::kStop) return 4;
    ch.send_to_leader("rank " + std::to_string(rank));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
    return 1;
  }
}

TEST(ControlChannel, RendezvousAndStepPlanAcrossProcesses) {
  const int world = 4, port = mlaserve::testing::free_tcp_port();
  std::vector<pid_t> children;
  for (int r = 1; r < world; ++r) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) _exit(follower(r, world, port));
    children.push_back(pid);
  }
  std::string blob = "the-nccl-id\0x" + std::to_string(world);
  ControlChannel ch = ControlChannel::rendezvous(RendezvousOptions{"127.0.0.1", port, world, 0, 30.0}, blob);
  for (int step = 0; step < 3; ++step) ch.broadcast(encode_step(sample_batch(step)));
  ch.broadcast(encode_stop());
  EXPECT_EQ(ch.gather(), (std::vector<std::string>{"rank 1", "rank 2", "rank 3"}));
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a rank failed with status " << status;
  }
}

TEST(ControlChannel, RankThatCannotReachRankZeroFailsWithAMessage) {
  std::string blob;
  try {
    ControlChannel::rendezvous(RendezvousOptions{"127.0.0.1", 1, 2, 1, 0.2}, blob);  // nobody on port 1
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("could not reach rank 0 at 127.0.0.1:1"), std::string::npos) << e.what();
  }
}

// Connects to 127.0.0.1:port (retrying while nobody listens), sends `bytes`, and closes after
// `linger`: what a port probe or a client at the wrong port does.
void stray_client(int port, const std::string& bytes, std::chrono::milliseconds linger) {
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      if (!bytes.empty()) (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      std::this_thread::sleep_for(linger);
      close(fd);
      return;
    }
    close(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// Connections that are not ranks (a probe that closes at once, an HTTP request, a length
// prefix of 2^62) are dropped, and the rendezvous goes on: they once ended rank 0's start-up
// ("the peer closed the connection", "a message of 7018130145941931335 bytes").
TEST(ControlChannel, StrayConnectionsDuringTheRendezvousAreDropped) {
  const int port = mlaserve::testing::free_tcp_port();
  std::thread probes([port] {
    stray_client(port, "", std::chrono::milliseconds(0));
    stray_client(port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", std::chrono::milliseconds(200));
    stray_client(port, std::string("\0\0\0\0\0\0\0\x40", 8), std::chrono::milliseconds(200));
  });
  std::string follower_blob;
  std::thread rank1([&] {
    probes.join();
    ControlChannel ch = ControlChannel::rendezvous(RendezvousOptions{"127.0.0.1", port, 2, 1, 30.0, "same"},
                                                   follower_blob);
    ch.send_to_leader("joined");
  });
  std::string blob = "id";
  ControlChannel ch = ControlChannel::rendezvous(RendezvousOptions{"127.0.0.1", port, 2, 0, 30.0, "same"}, blob);
  EXPECT_EQ(ch.gather(), std::vector<std::string>{"joined"});
  rank1.join();
  EXPECT_EQ(follower_blob, "id");
}

// A rank started with other settings ends the rendezvous on both sides with a message that shows
// both (it once hung in NCCL, or computed steps of another shape).
TEST(ControlChannel, ARankWithOtherSettingsIsRefusedShowingBoth) {
  const int port = mlaserve::testing::free_tcp_port();
  std::string follower_error;
  std::thread rank1([&] {
    std::string blob;
    try {
      ControlChannel::rendezvous(RendezvousOptions{"127.0.0.1", port, 2, 1, 30.0, "tp 2 pp 1; max-num-seqs 64"}, blob);
    } catch (const Error& e) {
      follower_error = e.what();
    }
  });
  std::string blob = "id";
  try {
    ControlChannel::rendezvous(RendezvousOptions{"127.0.0.1", port, 2, 0, 30.0, "tp 2 pp 1; max-num-seqs 256"}, blob);
    ADD_FAILURE() << "rank 0 accepted another rank's settings";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("rank 1 was started with other settings"), std::string::npos) << what;
    EXPECT_NE(what.find("rank 0: tp 2 pp 1; max-num-seqs 256"), std::string::npos) << what;
    EXPECT_NE(what.find("rank 1: tp 2 pp 1; max-num-seqs 64"), std::string::npos) << what;
  }
  rank1.join();
  EXPECT_NE(follower_error.find("got no answer from rank 0"), std::string::npos) << follower_error;
}

// The connections keep no timeout once made: a rank may take longer than the rendezvous's
// timeout to load its weights before it answers (they inherited a 300 s receive timeout).
TEST(ControlChannel, ConnectionsKeepNoTimeoutAfterTheRendezvous) {
  const int port = mlaserve::testing::free_tcp_port();
  std::thread rank1([port] {
    std::string blob;
    ControlChannel ch = ControlChannel::rendezvous(RendezvousOptions{"127.0.0.1", port, 2, 1, 0.5}, blob);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    ch.send_to_leader("loaded");
    EXPECT_EQ(ch.receive(), "go");
  });
  std::string blob = "id";
  ControlChannel ch = ControlChannel::rendezvous(RendezvousOptions{"127.0.0.1", port, 2, 0, 0.5}, blob);
  EXPECT_EQ(ch.gather(), std::vector<std::string>{"loaded"});
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ch.broadcast("go");
  rank1.join();
}

// Waits up to 10 s for `flag` to leave -1.
int wait_for(const std::atomic<int>& flag) {
  for (int i = 0; i < 200 && flag < 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return flag;
}

int exit_status(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + status;
}

// Rank 1 is "blocked inside a step" (as in an NCCL collective that will never complete) with its
// watchdog armed; rank 2's step fails and its process ends. Rank 0's armed watchdog sees rank
// 2's hang-up and closes rank 0's connections (as DistContext does after aborting NCCL); rank
// 1's watchdog then sees rank 0's hang-up and ends rank 1 (exit status 0 here means "it was
// told"). Every rank ends, none waits for ever.
TEST(PeerWatchdog, ARankThatLeavesMidStepEndsTheRunOnEveryRank) {
  const int world = 3, port = mlaserve::testing::free_tcp_port();
  std::vector<pid_t> children;
  for (int r = 1; r < world; ++r) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      try {
        std::string blob;
        ControlChannel ch = ControlChannel::rendezvous(RendezvousOptions{"127.0.0.1", port, world, r, 30.0}, blob);
        if (r == 2) _exit(0);  // its step failed: the process ends and its connection closes
        std::atomic<int> lost{-1};
        PeerWatchdog w(ch, [&](int rank) { lost = rank; });
        w.arm();  // inside a step
        _exit(wait_for(lost) == 0 ? 0 : 5);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: %s\n", r, e.what());
        _exit(1);
      }
    }
    children.push_back(pid);
  }
  std::string blob = "id";
  ControlChannel ch = ControlChannel::rendezvous(RendezvousOptions{"127.0.0.1", port, world, 0, 30.0}, blob);
  std::atomic<int> lost{-1};
  PeerWatchdog w(ch, [&](int rank) {
    lost = rank;
    ch.close();
  });
  w.arm();  // rank 0 while steps run
  EXPECT_EQ(wait_for(lost), 2);
  EXPECT_TRUE(w.fired());
  EXPECT_EQ(exit_status(children[0]), 0) << "rank 1 was not told that the run ended";
  EXPECT_EQ(exit_status(children[1]), 0);
  EXPECT_THROW(ch.gather(), Error);  // the connections are shut down
}

// Rank 0 of a run of two whose rank 1, a forked process, stays connected until rank 0 closes
// (every rank still there: the stall tests). close() then expects rank 1 to end cleanly.
struct RunOfTwoWithIdlePeer {
  explicit RunOfTwoWithIdlePeer(int port) : peer(fork_peer(port)), channel(connect(port)) {}
  void close() {
    channel.close();
    EXPECT_EQ(exit_status(peer), 0);
  }

  static pid_t fork_peer(int port) {
    const pid_t pid = fork();
    if (pid == 0) {
      try {
        std::string blob;
        ControlChannel ch = ControlChannel::rendezvous(RendezvousOptions{"127.0.0.1", port, 2, 1, 30.0}, blob);
        while (ch.hung_up_peer(100) < 0) {
        }
        _exit(0);
      } catch (const std::exception&) {
        _exit(1);
      }
    }
    return pid;
  }
  static ControlChannel connect(int port) {
    std::string blob = "id";
    return ControlChannel::rendezvous(RendezvousOptions{"127.0.0.1", port, 2, 0, 30.0}, blob);
  }

  pid_t peer;
  ControlChannel channel;
};

// Every rank still there, a step queued and none ending (NCCL hung without an error): after the
// stall limit the watchdog reports once, with the seconds waited.
TEST(PeerWatchdog, AStepThatNeverEndsIsReportedAfterTheLimit) {
  RunOfTwoWithIdlePeer run(mlaserve::testing::free_tcp_port());
  std::atomic<int> lost{-1};
  std::atomic<int> stalled_ms{-1};
  const auto t0 = std::chrono::steady_clock::now();
  {
    PeerWatchdog w(run.channel, [&](int rank) { lost = rank; },
                   [&](double s) { stalled_ms = static_cast<int>(1000 * s); }, /*stall_limit_s=*/0.3);
    w.arm();
    w.begin_step();
    EXPECT_GE(wait_for(stalled_ms), 300);
    EXPECT_TRUE(w.fired());
  }
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(300));
  EXPECT_EQ(lost, -1);
  run.close();
}

// Steps that keep ending, however long the run, and an idle run (nothing queued), are not
// stalls; a limit of 0 never fires.
TEST(PeerWatchdog, StepsThatEndAndIdleTimeAreNotStalls) {
  RunOfTwoWithIdlePeer run(mlaserve::testing::free_tcp_port());
  std::atomic<int> stalled{-1};
  {
    PeerWatchdog w(run.channel, [](int) {}, [&](double) { stalled = 1; }, /*stall_limit_s=*/0.3);
    w.arm();
    w.begin_step();
    w.begin_step();  // two in flight
    for (int i = 0; i < 10; ++i) {  // 1 s of steps ending every 100 ms
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      w.end_step();
      w.begin_step();
    }
    w.end_step();
    w.end_step();  // idle
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    EXPECT_FALSE(w.fired());
  }
  {
    PeerWatchdog w(run.channel, [](int) {}, [&](double) { stalled = 2; }, /*stall_limit_s=*/0);
    w.begin_step();
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    EXPECT_FALSE(w.fired());
  }
  EXPECT_EQ(stalled, -1);
  run.close();
}

// Disarmed (between steps, or a planned end), a hang-up is not a failure: the watchdog stays
// quiet and the next receive reports the closed connection.
TEST(PeerWatchdog, DisarmedItLeavesAHangUpToTheNextReceive) {
  const int world = 2, port = mlaserve::testing::free_tcp_port();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    try {
      std::string blob;
      ControlChannel::rendezvous(RendezvousOptions{"127.0.0.1", port, world, 1, 30.0}, blob);
      _exit(0);  // a planned end: the connection closes
    } catch (const std::exception&) {
      _exit(1);
    }
  }
  std::string blob = "id";
  ControlChannel ch = ControlChannel::rendezvous(RendezvousOptions{"127.0.0.1", port, world, 0, 30.0}, blob);
  EXPECT_EQ(exit_status(pid), 0);
  std::atomic<int> lost{-1};
  {
    PeerWatchdog w(ch, [&](int rank) { lost = rank; });
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    EXPECT_FALSE(w.fired());
  }
  EXPECT_EQ(lost, -1);
  EXPECT_EQ(ch.hung_up_peer(0), 1);
  try {
    ch.gather();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("closed the connection"), std::string::npos) << e.what();
  }
}

TEST(MicroBatches, SplitBySequencesAndRebased) {
  const ForwardBatch b = sample_batch(0);  // sequences of 3, 1, 1 tokens
  const auto parts = split_micro_batches(b, 2);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].token_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(parts[0].logit_rows, (std::vector<int32_t>{2}));
  EXPECT_EQ(parts[1].token_ids, (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(parts[1].positions, (std::vector<int32_t>{7, 9}));
  EXPECT_EQ(parts[1].logit_rows, (std::vector<int32_t>{0, 1}));
  ASSERT_EQ(parts[1].sequences.size(), 2u);
  EXPECT_EQ(parts[1].sequences[0].query_start, 0);
  EXPECT_EQ(parts[1].sequences[1].query_start, 1);
  EXPECT_EQ(parts[1].sequences[1].block_table, (std::vector<int32_t>{3, 4, 5}));
  // Never more parts than sequences, never an empty one; the parts cover the batch in order.
  for (int count : {1, 2, 3, 5, 8}) {
    const auto p = split_micro_batches(b, count);
    EXPECT_LE(p.size(), std::min<size_t>(static_cast<size_t>(count), 3));
    std::vector<int32_t> tokens;
    size_t rows = 0;
    for (const ForwardBatch& x : p) {
      EXPECT_GT(x.num_tokens(), 0);
      tokens.insert(tokens.end(), x.token_ids.begin(), x.token_ids.end());
      rows += x.logit_rows.size();
    }
    EXPECT_EQ(tokens, b.token_ids);
    EXPECT_EQ(rows, b.logit_rows.size());
  }
  ForwardBatch unsorted = b;
  unsorted.logit_rows = {4, 2};
  EXPECT_THROW(split_micro_batches(unsorted, 2), Error);
}

}  // namespace
}  // namespace mlaserve::dist
