// kvlab errors: every rejected input names the field, the value and what would be valid.
#pragma once

#include <stdexcept>
#include <string>

namespace kvlab {

// Thrown for any bad input (flags, plans, configs, files). The CLI prints what() and exits 2.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// "<field> = <value> is invalid: <allowed>"
[[noreturn]] inline void fail(const std::string& field, const std::string& value,
                              const std::string& allowed) {
  throw Error(field + " = " + value + " is invalid: " + allowed);
}

}  // namespace kvlab
