// ControlChannel: the TCP connections between rank 0 and every other rank, made by the
// engine's own rendezvous and kept for the whole run.
//
// Rendezvous: rank 0 listens on master_addr:master_port; every other rank connects (retrying
// until rank 0 is up, or the timeout) and says hello: a magic string, its rank and its
// fingerprint (the settings every rank must share); rank 0 answers each with the same blob (the
// NCCL unique id, which NCCL needs on every rank before its communicators exist). A connection
// that brings no hello within 10 s (a port probe, a load balancer's health check, an HTTP
// client at the wrong port) is dropped and rank 0 waits on; a rank with another fingerprint ends
// the rendezvous with an error that shows both. Once made, the connections have no timeout
// (the watchdog, dist/watchdog.h, bounds a step; a slow rank may take long to load its weights).
//
// After that the sockets carry the step plan: rank 0 alone schedules, and each step it sends
// the ForwardBatch (dist/step_message.h) to every rank, which runs its share of the same step.
// Why TCP and not an NCCL broadcast: the batch is host data that every rank needs on the host
// (to build its step metadata), so a device broadcast would add a copy to the GPU, a copy back
// and a stream synchronisation to every step on every rank; a few kilobytes on a socket cost
// tens of microseconds, work the same across machines on plain Ethernet, and need no GPU (the
// CPU tests run the whole protocol with local processes).
//
// Messages are length-prefixed (8 bytes, little-endian) byte strings.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mlaserve::dist {

struct RendezvousOptions {
  std::string master_addr = "127.0.0.1";  // rank 0's address (IPv4 or a host name)
  int master_port = 29500;
  int world_size = 1;
  int rank = 0;
  double timeout_s = 300;  // how long to wait for the other ranks
  std::string fingerprint;  // what every rank must agree on (DistContext: the launch's settings)
};

class ControlChannel {
 public:
  // Rank 0 passes the blob to hand out; the others get it back in `blob`.
  static ControlChannel rendezvous(const RendezvousOptions& options, std::string& blob);

  ControlChannel(ControlChannel&& other) noexcept;
  ControlChannel& operator=(ControlChannel&&) = delete;
  ~ControlChannel();

  int rank() const { return rank_; }
  // Rank 0: the same message to every other rank.
  void broadcast(std::string_view message);
  // Rank 0: one message from each other rank, in rank order.
  std::vector<std::string> gather();
  // Other ranks: the next message from rank 0, and one to rank 0.
  std::string receive();
  void send_to_leader(std::string_view message);

  // For dist/watchdog.h, from any thread. The rank of a peer whose connection has hung up
  // (closed, or its process ended), waiting up to timeout_ms for one; -1 if none.
  int hung_up_peer(int timeout_ms) const;
  // Shuts every connection down (both ways), so that the peers see a hang-up and this rank's
  // own blocked sends and receives fail. The sockets stay open until the destructor.
  void close();

 private:
  ControlChannel(int rank, std::vector<int> sockets) : rank_(rank), sockets_(std::move(sockets)) {}
  int rank_;
  std::vector<int> sockets_;  // rank 0: one per other rank, in rank order; others: the one to rank 0
};

}  // namespace mlaserve::dist
