// The dimension legend used in every shape comment across kvlab.
//
//   L      layers                      T    tokens (rows) in the current call
//   C      model width (hidden_size)   H    query heads
//   H_kv   KV heads                    D    head dimension
//   F      MLP width (intermediate)    V    vocabulary size
//   N      prompt length               B    budget of a KV bank, in tokens
//
// Buffers crossing module boundaries are plain, contiguous, row-major arrays; a comment on each
// argument gives its shape, e.g. `// (T, H_kv*D)`.
#pragma once
