// A backend whose memory the host cannot read: the proof that the engine keeps its floating data
// in its backend's memory (backend.hpp) and only passes it to backend operations, as a device
// backend needs. It decorates CpuBackend: every array it allocates lies in one arena of pages kept
// PROT_NONE (mprotect) except while one of its own operations runs, so a host dereference of
// backend memory by the engine (or anything else) faults; the fault handler names the address
// and aborts. Results equal CpuBackend's bit for bit: the same operations on 64-byte-aligned
// (here page-aligned) arrays.
#pragma once

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>

#include "reference/cpu_backend.hpp"

namespace kvlab::test {

// The arena: one reservation of address space; allocations are whole pages from a free list
// (best fit) or the top. Freed pages are dropped (MADV_DONTNEED), so they read as zero again.
class GuardArena {
 public:
  static GuardArena& instance() {
    static GuardArena a;
    return a;
  }
  void* allocate(std::size_t bytes) {
    const std::size_t len = (bytes + page_ - 1) / page_ * page_;
    auto it = free_.lower_bound(len);
    char* p = nullptr;
    std::size_t got = len;
    if (it != free_.end()) {
      got = it->first;
      p = it->second;
      free_.erase(it);
    } else {
      if (top_ + len > size_) throw std::runtime_error("guard arena: out of address space");
      p = base_ + top_;
      top_ += len;
    }
    live_[p] = got;
    return p;
  }
  void release(void* ptr) {
    auto it = live_.find(static_cast<char*>(ptr));
    if (it == live_.end()) std::abort();
    madvise(it->first, it->second, MADV_DONTNEED);  // zeros when reused
    free_.emplace(it->second, it->first);
    live_.erase(it);
  }
  // Readable and writable while depth > 0 (nested operations).
  void open() {
    if (depth_++ == 0) protect(PROT_READ | PROT_WRITE);
  }
  void close() {
    if (--depth_ == 0) protect(PROT_NONE);
  }
  bool contains(const void* p) const {
    const char* c = static_cast<const char*>(p);
    return c >= base_ && c < base_ + size_;
  }
  std::int64_t opens() const { return opens_; }

 private:
  GuardArena() {
    page_ = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    size_ = std::size_t{8} << 30;  // address space only (MAP_NORESERVE)
    void* p = mmap(nullptr, size_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("guard arena: mmap failed");
    base_ = static_cast<char*>(p);
    install_handler();
  }
  void protect(int prot) {
    ++opens_;
    if (top_ > 0 && mprotect(base_, top_, prot) != 0) std::abort();
  }
  static void on_fault(int sig, siginfo_t* info, void*) {
    GuardArena& a = instance();
    if (a.contains(info->si_addr)) {
      char msg[160];
      const int n = std::snprintf(msg, sizeof msg,
                                  "\nguarded backend: the host touched backend memory at %p "
                                  "outside a backend operation\n",
                                  info->si_addr);
      if (n > 0) (void)!write(2, msg, static_cast<std::size_t>(n));
    }
    signal(sig, SIG_DFL);
    raise(sig);
  }
  static void install_handler() {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = &GuardArena::on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, nullptr);
  }

  char* base_ = nullptr;
  std::size_t size_ = 0, top_ = 0, page_ = 4096;
  std::multimap<std::size_t, char*> free_;  // length -> start
  std::map<char*, std::size_t> live_;
  int depth_ = 0;
  std::int64_t opens_ = 0;
};

template <typename S>
class GuardedBackend final : public ref::Backend<S> {
 public:
  explicit GuardedBackend(int threads = 1) : cpu_(threads) {}
  ~GuardedBackend() override {
    for (auto& [host, mem] : resident_) arena().release(mem);
  }
  std::string name() const override { return "guarded-" + cpu_.name(); }

  S* allocate(long n) override {
    return static_cast<S*>(arena().allocate(static_cast<std::size_t>(n) * sizeof(S)));
  }
  void deallocate(S* p, long) noexcept override { arena().release(p); }
  void upload(S* dst, const S* host, long n) override {
    if (n <= 0) return;  // an empty array's pointer may be null
    Open o;
    std::memcpy(dst, host, static_cast<std::size_t>(n) * sizeof(S));
  }
  void download(S* host, const S* src, long n) override {
    if (n <= 0) return;  // an empty array's pointer may be null
    Open o;
    std::memcpy(host, src, static_cast<std::size_t>(n) * sizeof(S));
  }
  void copy(S* dst, const S* src, long n) override {
    if (n <= 0) return;  // an empty array's pointer may be null
    Open o;
    std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(S));
  }
  const S* resident(const S* host, long n) override {
    auto it = resident_.find(host);
    if (it != resident_.end()) return it->second;
    S* mem = allocate(n);
    upload(mem, host, n);
    resident_[host] = mem;
    return mem;
  }

  void embed(S* x, const S* t, const int* tok, int T, int C) override {
    Open o;
    cpu_.embed(x, t, tok, T, C);
  }
  void rmsnorm(S* out, const S* x, const S* w, int T, int C, double eps) override {
    Open o;
    cpu_.rmsnorm(out, x, w, T, C, eps);
  }
  void linear(S* out, const S* x, const S* w, int T, int K, int N) override {
    Open o;
    cpu_.linear(out, x, w, T, K, N);
  }
  void linears(const ref::LinearOut<S>* outs, int n, const S* x, int T, int K) override {
    Open o;
    cpu_.linears(outs, n, x, T, K);
  }
  void rope(S* x, const int* pos, int T, int heads, int D, double theta,
            ref::RopePairing pairing) override {
    Open o;
    cpu_.rope(x, pos, T, heads, D, theta, pairing);
  }
  void attention(const ref::AttentionArgs<S>& a) override {
    Open o;
    cpu_.attention(a);
  }
  void swiglu(S* gate, const S* up, long n) override {
    Open o;
    cpu_.swiglu(gate, up, n);
  }
  void add(S* x, const S* y, long n) override {
    Open o;
    cpu_.add(x, y, n);
  }
  void row_cosines(double* out, const S* a, const S* b, int T, int C) override {
    Open o;
    cpu_.row_cosines(out, a, b, T, C);
  }
  void round_to_dtype(S* x, long n, Dtype d) override {
    Open o;
    cpu_.round_to_dtype(x, n, d);
  }
  void h2o_scores(double* score, const S* probs, int H, int T, int N, int H_kv) override {
    Open o;
    cpu_.h2o_scores(score, probs, H, T, N, H_kv);
  }
  void diff_stats(double* out, const S* a, const S* b, long n) override {
    Open o;
    cpu_.diff_stats(out, a, b, n);
  }

  static GuardArena& arena() { return GuardArena::instance(); }

 private:
  struct Open {
    Open() { arena().open(); }
    ~Open() { arena().close(); }
  };
  ref::CpuBackend<S> cpu_;
  std::map<const S*, S*> resident_;
};

}  // namespace kvlab::test
