/* strata — helpers shared by the fuzz harnesses (see fuzz.h). */
#define _GNU_SOURCE
#include "fuzz.h"

#include "context.h"

#include <gio/gio.h>
#include <sys/mman.h>
#include <unistd.h>

/* The pipeline memory bound while fuzzing: enough for every seed (the
 * bundled filters on the 3x256x256 probe a pipeline is checked with), and
 * small enough that the parameters a fuzzed network may declare are quick
 * to initialise. */
#define FUZZ_MEMORY_LIMIT (16u << 20)

#define N_SLOTS 4

void
fuzz_init (void)
{
  static gsize done = 0;
  if (g_once_init_enter (&done))
    {
      g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
      st_set_memory_limit (FUZZ_MEMORY_LIMIT);
      g_once_init_leave (&done, 1);
    }
}

const char *
fuzz_bytes_path (int slot, const uint8_t *data, size_t size)
{
  static int fds[N_SLOTS] = { -1, -1, -1, -1 };
  static char paths[N_SLOTS][64];
  g_assert (slot >= 0 && slot < N_SLOTS);
  if (fds[slot] < 0)
    {
      /* No name on disk, so nothing is left behind, and no disk I/O. */
      fds[slot] = memfd_create ("strata-fuzz", MFD_CLOEXEC);
      g_assert (fds[slot] >= 0);
      g_snprintf (paths[slot], sizeof paths[slot], "/proc/self/fd/%d", fds[slot]);
    }
  g_assert (ftruncate (fds[slot], 0) == 0);
  for (size_t done = 0; done < size;)
    {
      ssize_t n = pwrite (fds[slot], data + done, size - done, (off_t) done);
      g_assert (n > 0);
      done += (size_t) n;
    }
  return paths[slot];
}

GBytes *
fuzz_gzip (const uint8_t *data, size_t size)
{
  g_autoptr (GZlibCompressor) z = g_zlib_compressor_new (G_ZLIB_COMPRESSOR_FORMAT_GZIP, 1);
  g_autoptr (GOutputStream) mem = g_memory_output_stream_new_resizable ();
  g_autoptr (GOutputStream) out = g_converter_output_stream_new (mem, G_CONVERTER (z));
  g_assert (g_output_stream_write_all (out, data, size, NULL, NULL, NULL));
  g_assert (g_output_stream_close (out, NULL, NULL));
  return g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (mem));
}
