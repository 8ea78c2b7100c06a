/* strata — helpers shared by the test programs in tests/.
 *
 * One copy of what several tests need: temporary folders, running the
 * strata CLI, writing files, building and running a stage from
 * "key=value" strings, and small tensor fixtures.  Every helper asserts
 * on failure unless it says otherwise. */
#pragma once

#include "context.h"
#include "registry.h"
#include "stage.h"

G_BEGIN_DECLS

/* ---- Files and folders --------------------------------------------------- */

/* A fresh folder from a g_dir_make_tmp template ("strata-x-XXXXXX"); free
 * with g_free after tu_remove_tree. */
char *tu_make_tmpdir (const char *tmpl);

/* Removes path, and everything below it when it is a folder; quiet about
 * what is already gone. */
void tu_remove_tree (const char *path);

/* A GTest fixture holding one temporary folder: set fx->dir with
 * tu_make_tmpdir in the test's setup, pass tu_temp_dir_teardown as its
 * teardown. */
typedef struct {
  char *dir;
} TuTempDir;

/* Removes and frees fx->dir. */
void tu_temp_dir_teardown (TuTempDir *fx, gconstpointer data);

/* name inside fx->dir (newly allocated). */
char *tu_temp_path (TuTempDir *fx, const char *name);

/* Writes size bytes of data to path, replacing what was there. */
void tu_write_bytes (const char *path, const void *data, gsize size);

/* Appends v to a as four bytes, most significant first (IDX, PNG). */
void tu_put_be32 (GByteArray *a, guint32 v);

/* CRC-32 as PNG chunks (and zlib) use it. */
guint32 tu_crc32 (const guint8 *data, gsize len);

/* A syntactically sound ICC profile of size bytes (a multiple of 4, at
 * least 132) for space ("RGB " or "GRAY"): the header, no tags, then a
 * pattern, so that a round trip can be checked byte for byte. */
GBytes *tu_make_icc_profile (gsize size, const char *space);

/* An EXIF block (a TIFF structure, as a JPEG's APP1 holds it after
 * "Exif\0\0") in either byte order: Make "Canon" in IFD0, then an EXIF
 * directory with ExposureTime 1/250, DateTimeOriginal TU_EXIF_DATE and an
 * interoperability directory with InteroperabilityIndex "R98". */
#define TU_EXIF_DATE "2024:01:02 03:04:05"
GBytes *tu_make_exif (gboolean big_endian);

/* DIR/PREFIX-images-idx3-ubyte and -labels-idx1-ubyte: n 8x8 images of two
 * classes, bright on the left (label 0) or the right (label 1), with noise
 * from seed. */
void tu_write_synthetic_idx (const char *dir, const char *prefix, int n, guint32 seed);

/* ---- Running the CLI ----------------------------------------------------- */

/* What a run of the CLI gave: its exit status and what it printed; free
 * the strings with tu_result_clear. */
typedef struct {
  int status;
  char *out;
  char *err;
  int signal;                  /* what killed it (tu_run_argv_may_die), else 0 */
} TuResult;

void tu_result_clear (TuResult *r);

/* Runs exe (the strata CLI, from STRATA_EXE) with the NULL-terminated
 * args and waits; asserts that it exited (rather than crashed) and logs
 * its output with g_test_message. */
TuResult tu_run_argv (const char *exe, const char *const *args);

/* tu_run_argv for a launcher that may itself be killed while it tears a
 * failed job down (mpirun): a death by a signal is logged and given in
 * .signal (status 128 + it, as a shell reports it), not asserted against. */
TuResult tu_run_argv_may_die (const char *exe, const char *const *args);

/* tu_run_argv with the arguments given inline, ending with NULL. */
TuResult tu_run (const char *exe, const char *first, ...) G_GNUC_NULL_TERMINATED;

/* tu_run, handing stdout and stderr to *out and *err (g_free them) and
 * returning the exit status. */
int tu_run_capture (const char *exe, char **out, char **err, const char *first, ...)
  G_GNUC_NULL_TERMINATED;

/* ---- Stages -------------------------------------------------------------- */

/* keys/values from "key=value key=value" (values without spaces, at most
 * 32 pairs); free with tu_params_clear. */
typedef struct {
  int n;
  const char *keys[32], *values[32];
  char **split[32];
} TuParams;

void tu_params_parse (TuParams *p, const char *text);
void tu_params_clear (TuParams *p);

/* The kind registered as kind_name; aborts the test when no plugin
 * provides it. */
const StKind *tu_kind (StRegistry *reg, const char *kind_name);

/* A stage called name of kind kind_name with params ("key=value ..."),
 * or NULL with error set when the kind refuses them. */
StStage *tu_stage_new (StRegistry *reg, const char *kind_name, const char *name,
                       const char *params, GError **error);

/* Infers stage for the inputs' shapes and runs its forward into a new
 * tensor, or NULL with error set. */
StTensor *tu_stage_run (StStage *stage, const StTensor *const *inputs, int n_inputs,
                        StRunContext *ctx, GError **error);

/* A stage of kind_name (named after it) run on one input; asserts
 * success. */
StTensor *tu_run1 (StRegistry *reg, const char *kind_name, const char *params,
                   const StTensor *in, StRunContext *ctx);

/* ---- Tensors ------------------------------------------------------------- */

/* An n x c x h x w tensor holding a copy of values (n*c*h*w floats). */
StTensor *tu_tensor_from (int n, int c, int h, int w, const float *values);

/* An n x c x h x w tensor of uniform values in [0, 1) from rand. */
StTensor *tu_tensor_random (GRand *rand, int n, int c, int h, int w);

/* ---- HEIC and AVIF (with libheif only) ------------------------------------ */

/* Writes src (a [1, 3 or 4, H, W] tensor of values in [0, 1]) as a file
 * encoded by libheif itself: HEVC (a HEIC), or AV1 (an AVIF) when av1;
 * bits 8 or 10; orientation 1 to 8 as EXIF numbers it, stored as irot/imir
 * for the reader to apply.  FALSE when libheif has no such encoder. */
gboolean tu_write_heif (const char *path, const StTensor *src, gboolean av1, int bits,
                        int orientation);
/* tu_write_heif with an ICC profile, an EXIF block (from its TIFF header;
 * libheif adds the offset before it) and XMP, each NULL for none. */
gboolean tu_write_heif_with (const char *path, const StTensor *src, gboolean av1, int bits,
                             int orientation, GBytes *icc, GBytes *exif, GBytes *xmp);

G_END_DECLS
