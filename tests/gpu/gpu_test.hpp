// Shared by the gpu-labelled suites: skip (not fail) when no CUDA device answers.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "gpu/device_info.hpp"

// Use at the top of a test body that needs a device. cudaGetDeviceCount returns an error (no
// driver) or zero devices on a machine without a GPU; either way the test is skipped with the
// reason.
#define KVLAB_REQUIRE_CUDA_DEVICE()                     \
  do {                                                  \
    std::string kvlab_why_;                             \
    if (!::kvlab::gpu::cuda_available(&kvlab_why_))     \
      GTEST_SKIP() << "no CUDA device: " << kvlab_why_; \
  } while (0)
