/* strata — choosing the vector path of strata/maxpool.h, for tests that
 * hold every path to the scalar one. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  ST_MAXPOOL_SCALAR,
  ST_MAXPOOL_SSE2,
  ST_MAXPOOL_AVX512,
} StMaxpoolPath;

/* Runs path from now on in this process; FALSE (nothing changed) where
 * the CPU or the build lacks it.  Not thread-safe: call between runs. */
gboolean st_maxpool_force_path (StMaxpoolPath path);

/* Back to the widest path the CPU runs. */
void st_maxpool_unforce_path (void);

G_END_DECLS
