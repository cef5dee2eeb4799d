// Atomic file writes: the file at `path` is either the old one or the complete new one, never a
// partial write.
#pragma once

#include <functional>
#include <ostream>
#include <string>

namespace kvlab {

// Calls `writer` on a stream to `<path>.tmp.<pid>` (same directory, so the rename cannot cross
// file systems), flushes, fsyncs, checks every write, then renames the temporary file over `path`
// and fsyncs the directory. On any failure (the directory is missing or unwritable, a write fails,
// `writer` throws) the temporary file is removed and a kvlab::Error naming `path` is thrown; an
// exception thrown by `writer` itself is rethrown unchanged.
void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& writer);

}  // namespace kvlab
