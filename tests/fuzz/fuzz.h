/* strata — what the fuzz harnesses in tests/fuzz/ share.
 *
 * Each harness is one LLVMFuzzerTestOneInput(): linked with libFuzzer
 * (-Dfuzz=true, clang) it is a fuzzer, linked with run-corpus.c it runs
 * over a folder of inputs as an ordinary test, and afl-clang-fast links it
 * with AFL++'s driver.  A harness never prints and returns 0 whatever the
 * input; only a crash, a sanitizer report, a leak or a GLib critical
 * (made fatal here) is a finding. */
#pragma once

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

G_BEGIN_DECLS

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Once per process: GLib warnings and criticals abort (a misuse the fuzzer
 * should report), and the pipeline memory bound is set low, so that an
 * input declaring a huge network is refused rather than allocated. */
void fuzz_init (void);

/* The parsers read files: this writes size bytes to an anonymous in-memory
 * file (one per slot, 0 to 3, reused by every call) and returns a path that
 * opens it, valid until the next call with that slot. */
const char *fuzz_bytes_path (int slot, const uint8_t *data, size_t size);

/* data compressed as a gzip stream (what gzip(1) writes). */
GBytes *fuzz_gzip (const uint8_t *data, size_t size);

G_END_DECLS
