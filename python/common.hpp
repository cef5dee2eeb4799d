// Shared by the binding files of the `_kvlab` extension: numpy arrays over owned buffers, the
// interruptible runner (work on a worker thread, the GIL released, Ctrl-C polled), and the
// session box that Session and Recorder objects share.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/telemetry.hpp"
#include "session/session.hpp"

namespace kvlab::python {

namespace py = pybind11;

// A numpy array that owns `v` (moved onto the heap; freed when the array goes): no copy.
template <typename T>
py::array_t<T> to_numpy(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
  auto* owned = new std::vector<T>(std::move(v));
  py::capsule base(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, owned->data(), base);
}
template <typename T>
py::array_t<T> to_numpy(std::vector<T>&& v) {
  const auto n = static_cast<py::ssize_t>(v.size());
  return to_numpy(std::move(v), {n});
}
// A read-only numpy view of `data` inside an object `owner` keeps alive (a bound event, a
// result): no copy.
template <typename T>
py::array_t<T> view(const T* data, std::vector<py::ssize_t> shape, py::handle owner) {
  py::array_t<T> a(shape, data, owner);
  py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return a;
}
template <typename T>
py::array_t<T> view(const std::vector<T>& v, py::handle owner) {
  return view(v.data(), {static_cast<py::ssize_t>(v.size())}, owner);
}

// Thrown inside the worker when the caller asked it to stop (Ctrl-C): never reaches Python.
struct Cancelled {};

// Stops engine work between steps: subscribed to the cheap step and pass events for the length
// of one call, it throws Cancelled from the first event after the flag is set (the step that
// emitted it is complete, so the engine is left consistent; the caller resets the sequence).
class StopObserver : public Observer {
 public:
  explicit StopObserver(const std::atomic<bool>& stop) : stop_(stop) {}
  void on_step_summary(const StepSummaryEvent&) override { check(); }
  void on_prefill_pass(const PrefillPassEvent&) override { check(); }
  void check() const {
    if (stop_.load(std::memory_order_relaxed)) throw Cancelled{};
  }

 private:
  const std::atomic<bool>& stop_;
};

// Runs fn(stop) on a worker thread with the GIL released, waking every 20 ms to run Python's
// signal handlers (CPython runs them on the main thread only). When a handler raises (Ctrl-C:
// KeyboardInterrupt), it sets `stop`, waits for the worker to notice, calls on_cancel (with the
// GIL released) and re-raises the Python exception. Engine errors re-raise as kvlab.Error.
template <typename Fn>
auto run_interruptible(Fn&& fn, const std::function<void()>& on_cancel = {})
    -> decltype(fn(std::declval<const std::atomic<bool>&>())) {
  using R = decltype(fn(std::declval<const std::atomic<bool>&>()));
  std::atomic<bool> stop{false};
  std::packaged_task<R()> task([&] { return fn(stop); });
  std::future<R> done = task.get_future();
  bool interrupted = false;
  {
    py::gil_scoped_release release;
    std::thread worker(std::move(task));
    while (done.wait_for(std::chrono::milliseconds(20)) != std::future_status::ready) {
      py::gil_scoped_acquire acquire;
      if (PyErr_CheckSignals() != 0) {  // the handler's exception stays set on this thread
        interrupted = true;
        stop = true;
        break;
      }
    }
    worker.join();
    if (interrupted && on_cancel) on_cancel();
  }
  if (interrupted) {
    try {
      done.get();
    } catch (const Cancelled&) {
    } catch (...) {
    }
    throw py::error_already_set();
  }
  try {
    return done.get();
  } catch (const Cancelled&) {
    throw Error("interrupted");
  }
}

class Recorder;

// What a Python Session object holds: the session (empty once closed) and the recorders
// subscribed to it (kept alive while subscribed).
struct SessionBox {
  std::optional<Session> session;
  std::vector<std::shared_ptr<Recorder>> recorders;
  Session& get() {
    if (!session) fail("session", "(closed)", "the session was closed; open a new kvlab.Session");
    return *session;
  }
};

// Parses telemetry kind names ("attention", "default", "all", ...) into a mask; kvlab.Error
// naming `kinds` for an unknown one.
EventMask parse_kinds(const std::vector<std::string>& names);

void bind_plan(py::module_& m);
void bind_telemetry(py::module_& m);
void bind_session(py::module_& m);
void bind_train(py::module_& m);

}  // namespace kvlab::python
