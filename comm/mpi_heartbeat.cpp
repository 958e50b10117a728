#include "comm/mpi_heartbeat.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <random>

namespace dpep::comm {
namespace {

struct Packet {
  uint64_t token;
  Beat beat;
};

std::string processor_name() {
  char name[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  MPI_Get_processor_name(name, &len);
  return std::string(name, len);
}

// The root's IPv4 addresses as a rank elsewhere may reach it: those of its host name if it
// resolves, then every non-loopback interface address of the root (at most 8 in all).
std::vector<uint32_t> local_ipv4_addresses() {
  std::vector<uint32_t> out;
  ifaddrs* ifs = nullptr;
  if (getifaddrs(&ifs) != 0) return out;
  for (ifaddrs* i = ifs; i && out.size() < 8; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK))
      continue;
    out.push_back(reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr);
  }
  freeifaddrs(ifs);
  return out;
}

uint32_t resolve_ipv4(const std::string& host) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || !res) return 0;
  const uint32_t a = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr.s_addr;
  freeaddrinfo(res);
  return a;
}

}  // namespace

std::unique_ptr<Heartbeat> Heartbeat::create(MPI_Comm comm, int root) {
  std::unique_ptr<Heartbeat> hb(new Heartbeat());
  MPI_Comm_rank(comm, &hb->rank_);
  MPI_Comm_size(comm, &hb->size_);
  hb->root_ = root;
  // Root: a UDP socket on any port; {port, token} go to everyone with the root's host name.
  int64_t hdr[2] = {0, 0};
  if (hb->is_root()) {
    hb->fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    socklen_t len = sizeof(addr);
    if (hb->fd_ >= 0 && bind(hb->fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        getsockname(hb->fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      hdr[0] = ntohs(addr.sin_port);
      hdr[1] =
          static_cast<int64_t>(std::random_device{}() ^ (uint64_t(std::random_device{}()) << 32));
    } else if (hb->fd_ >= 0) {
      close(hb->fd_);
      hb->fd_ = -1;
    }
  }
  MPI_Bcast(hdr, 2, MPI_INT64_T, root, comm);
  hb->token_ = static_cast<uint64_t>(hdr[1]);
  // The root's interface addresses, for ranks on other hosts: [count, addr...].
  uint32_t root_addrs[9] = {};
  if (hb->is_root()) {
    const auto a = local_ipv4_addresses();
    root_addrs[0] = static_cast<uint32_t>(a.size());
    std::copy(a.begin(), a.end(), root_addrs + 1);
  }
  MPI_Bcast(root_addrs, 9, MPI_UINT32_T, root, comm);
  // Every rank's host name to every rank (small; the root needs all, the others the root's).
  const std::string me = processor_name();
  char mine[MPI_MAX_PROCESSOR_NAME] = {};
  std::memcpy(mine, me.data(), std::min<size_t>(me.size(), MPI_MAX_PROCESSOR_NAME - 1));
  std::vector<char> all(static_cast<size_t>(hb->size_) * MPI_MAX_PROCESSOR_NAME);
  MPI_Allgather(mine, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all.data(), MPI_MAX_PROCESSOR_NAME,
                MPI_CHAR, comm);
  for (int r = 0; r < hb->size_; ++r) hb->hosts_.emplace_back(&all[r * MPI_MAX_PROCESSOR_NAME]);
  hb->seen_.resize(hb->size_);
  hb->addr_.resize(hb->size_);
  if (!hb->is_root() && hdr[0] > 0) {
    // Same host: loopback. Elsewhere: every address the root may be reached at (beats to the
    // wrong ones are lost, which is harmless; the root answers whichever arrive).
    std::vector<uint32_t> to;
    const std::string& root_host = hb->hosts_[root];
    if (root_host == me) {
      to.push_back(htonl(INADDR_LOOPBACK));
    } else {
      if (const uint32_t a = resolve_ipv4(root_host)) to.push_back(a);
      for (uint32_t k = 0; k < std::min<uint32_t>(root_addrs[0], 8); ++k)
        if (std::find(to.begin(), to.end(), root_addrs[1 + k]) == to.end())
          to.push_back(root_addrs[1 + k]);
    }
    for (uint32_t a : to) {
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(static_cast<uint16_t>(hdr[0]));
      sa.sin_addr.s_addr = a;
      hb->targets_.push_back(sa);
    }
    if (!to.empty()) hb->fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  }
  return hb;
}

void Heartbeat::send_to_root(const void* data, size_t n) {
  for (const auto& sa : targets_)
    (void)!::sendto(fd_, data, n, MSG_DONTWAIT | MSG_NOSIGNAL,
                    reinterpret_cast<const sockaddr*>(&sa), sizeof(sa));
}

Heartbeat::~Heartbeat() {
  if (fd_ >= 0) close(fd_);
}

void Heartbeat::send(const Beat& b) {
  if (fd_ < 0 || is_root()) return;
  Packet p{token_, b};
  p.beat.rank = rank_;
  send_to_root(&p, sizeof(p));
}

void Heartbeat::receive() {
  if (fd_ < 0) return;
  Packet p;
  for (;;) {
    sockaddr_storage from{};
    socklen_t len = sizeof(from);
    const ssize_t n =
        ::recvfrom(fd_, &p, sizeof(p), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) return;
    if (n != static_cast<ssize_t>(sizeof(p)) || p.token != token_) continue;
    const int r = p.beat.rank;
    if (r < 0 || r >= size_) continue;
    p.beat.what[sizeof(p.beat.what) - 1] = 0;
    if (!is_root()) {  // the root's answer or goodbye
      if (r != root_) continue;
      seen_[r].any = true;
      seen_[r].gone = seen_[r].gone || p.beat.kind == 2;
      seen_[r].at = Clock::now();
      continue;
    }
    if (r == root_) continue;
    const bool gone = seen_[r].gone || p.beat.kind == 2;
    seen_[r] = Seen{true, gone, p.beat, Clock::now()};
    addr_[r].assign(reinterpret_cast<uint8_t*>(&from), reinterpret_cast<uint8_t*>(&from) + len);
    Packet answer{token_, Beat{}};
    answer.beat.rank = root_;
    answer.beat.kind = 1;
    (void)!::sendto(fd_, &answer, sizeof(answer), MSG_DONTWAIT | MSG_NOSIGNAL,
                    reinterpret_cast<sockaddr*>(&from), len);
  }
}

int Heartbeat::silent_peer(std::chrono::milliseconds limit, double& quiet_s) const {
  if (fd_ < 0) return -1;
  const auto now = Clock::now();
  for (int r = 0; r < size_; ++r) {
    if (r == rank_ || (!is_root() && r != root_)) continue;
    const Seen& s = seen_[r];
    if (!s.any || s.gone || now - s.at < limit) continue;
    quiet_s = std::chrono::duration<double>(now - s.at).count();
    return r;
  }
  return -1;
}

void Heartbeat::say_goodbye() {
  if (fd_ < 0) return;
  Packet p{token_, Beat{}};
  p.beat.rank = rank_;
  p.beat.kind = 2;
  if (!is_root()) {
    send_to_root(&p, sizeof(p));
    return;
  }
  for (const auto& a : addr_)
    if (!a.empty())
      (void)!::sendto(fd_, &p, sizeof(p), MSG_DONTWAIT | MSG_NOSIGNAL,
                      reinterpret_cast<const sockaddr*>(a.data()),
                      static_cast<socklen_t>(a.size()));
}

std::string Heartbeat::diagnose(std::chrono::milliseconds silent_ms, int64_t my_step) const {
  if (!is_root()) return "";
  if (fd_ < 0) return "";  // no beats on this job
  const auto now = Clock::now();
  std::string out;
  auto add = [&](const std::string& s) { out += (out.empty() ? "" : "; ") + s; };
  for (int r = 0; r < size_; ++r) {
    if (r == root_) continue;
    const Seen& s = seen_[r];
    const std::string who = fmt::format("rank {} (host {})", r, hosts_[r]);
    if (!s.any) {
      const double up = std::chrono::duration<double>(now - created_).count();
      add(fmt::format("{} sent no heartbeat in {:.1f} s (stopped, frozen, dead or unreachable?)",
                      who, up));
      continue;
    }
    const double quiet = std::chrono::duration<double>(now - s.at).count();
    if (quiet * 1000 >= silent_ms.count()) {
      add(fmt::format("{} sent no heartbeat for {:.1f} s (stopped, frozen or dead?)", who, quiet));
      continue;
    }
    const Beat& b = s.last;
    if (b.step_age_ms >= 0 && b.collective_age_ms < 0)
      add(fmt::format("{} is still computing step {} outside any collective ({:.1f} s into it)",
                      who, b.step, b.step_age_ms / 1000.0));
    else if (b.step < my_step)
      add(fmt::format("{} is behind, at step {}{}", who, b.step,
                      b.what[0] ? fmt::format(" in '{}'", b.what) : std::string()));
  }
  return out;
}

}  // namespace dpep::comm
