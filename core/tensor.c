/* strata — tensors. */
#include <strata/tensor.h>
#include <strata/plugin.h>
#include "param.h"
#include "tensor-private.h"
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

G_DEFINE_QUARK (strata-error-quark, st_error)

const char *
st_shape_format (StShape s, char *buf, gsize size)
{
  g_snprintf (buf, size, "%dx%dx%dx%d", s.n, s.c, s.h, s.w);
  return buf;
}

gboolean
st_shape_bytes (StShape shape, guint64 *bytes)
{
  const int dims[4] = { shape.n, shape.c, shape.h, shape.w };
  guint64 total = sizeof (float);
  for (int i = 0; i < 4; i++)
    if (dims[i] <= 0 || !g_uint64_checked_mul (&total, total, (guint64) dims[i]))
      return FALSE;
  /* Room for the alignment padding st_tensor_new() adds, in a gsize. */
  if (total > G_MAXSIZE - 2 * ST_TENSOR_ALIGN - 2 * sizeof (void *))
    return FALSE;
  if (bytes)
    *bytes = total;
  return TRUE;
}

/* Large blocks (a dataset, a batch's activations) in 2 MiB pages where the
 * system allows it on request: a first touch of a 4 KiB page costs a
 * fault, which on a virtual machine takes longer than filling the page,
 * and a 60,000-image dataset is 47,000 of them. */
static void
advise_huge_pages (void *block, gsize size)
{
#ifdef MADV_HUGEPAGE
  const guintptr huge = 2u << 20;
  if (size < 4 * huge)
    return;
  guintptr begin = ((guintptr) block + huge - 1) & ~(huge - 1);
  guintptr end = ((guintptr) block + size) & ~(huge - 1);
  /* Only a hint: where the system says no, 4 KiB pages serve as before. */
  if (end > begin)
    madvise ((void *) begin, end - begin, MADV_HUGEPAGE);
#else
  (void) block;
  (void) size;
#endif
}

StTensor *
st_tensor_new (StShape shape, GError **error)
{
  guint64 data_bytes;
  if (!st_shape_bytes (shape, &data_bytes))
    {
      char buf[64];
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                   "invalid tensor shape %s", st_shape_format (shape, buf, sizeof buf));
      return NULL;
    }
  /* Round the byte size up so whole 64-byte vectors can be read at the end. */
  gsize bytes = ((gsize) data_bytes + ST_TENSOR_ALIGN - 1) & ~(gsize) (ST_TENSOR_ALIGN - 1);
  /* calloc rather than an aligned alloc and memset: large blocks come
   * straight from the kernel already zero, so the pages are first touched
   * by the stage that fills them, on its own threads, in one pass.  The
   * block's start, and its size for st_tensor_reshape_within(), are kept
   * just before the aligned data. */
  void *raw = calloc (1, bytes + ST_TENSOR_ALIGN + 2 * sizeof (void *));
  if (!raw)
    {
      char buf[64];
      g_autofree char *size = st_format_bytes (bytes);
      g_set_error (error, ST_ERROR, ST_ERROR_MEMORY, "out of memory allocating a %s tensor (%s)",
                   st_shape_format (shape, buf, sizeof buf), size);
      return NULL;
    }
  advise_huge_pages (raw, bytes + ST_TENSOR_ALIGN + 2 * sizeof (void *));
  guintptr start = (guintptr) raw + 2 * sizeof (void *);
  float *data = (float *) ((start + ST_TENSOR_ALIGN - 1) & ~(guintptr) (ST_TENSOR_ALIGN - 1));
  ((void **) data)[-1] = raw;
  ((gsize *) data)[-2] = bytes;
  StTensor *t = g_new (StTensor, 1);
  t->shape = shape;
  t->data = data;
  return t;
}

StTensor *
st_tensor_new0 (int n, int c, int h, int w)
{
  g_autoptr (GError) error = NULL;
  StTensor *t = st_tensor_new ((StShape) { n, c, h, w }, &error);
  if (!t)
    g_error ("%s", error->message);
  return t;
}

StTensor *
st_tensor_copy (const StTensor *src)
{
  StTensor *t = st_tensor_new0 (src->shape.n, src->shape.c, src->shape.h, src->shape.w);
  memcpy (t->data, src->data, st_tensor_numel (src) * sizeof (float));
  return t;
}

void
st_tensor_free (StTensor *t)
{
  if (!t)
    return;
  free (((void **) t->data)[-1]);
  g_free (t);
}

void
st_tensor_zero (StTensor *t)
{
  memset (t->data, 0, st_tensor_numel (t) * sizeof (float));
}

gsize
st_tensor_numel (const StTensor *t)
{
  return st_shape_numel (t->shape);
}

gsize
st_tensor_capacity (const StTensor *t)
{
  return ((const gsize *) t->data)[-2];
}

gboolean
st_tensor_reshape_within (StTensor *t, StShape shape)
{
  guint64 bytes;
  if (!st_shape_bytes (shape, &bytes) || bytes > st_tensor_capacity (t))
    return FALSE;
  t->shape = shape;
  return TRUE;
}

/* Floats a piece of the parallel fills and copies, and the fewest pieces
 * worth sharing: one thread fills or copies less than a megabyte in about
 * the time a hand-off to the pool and the wait for it take, and every
 * hand-off is a point where a descheduled thread holds up the others. */
#define PIECE 16384
#define PARALLEL_PIECES 16

typedef struct {
  float *dst;
  const float *src;
  gsize n;
} Pieces;

static void
zero_pieces (gsize begin, gsize end, gpointer data)
{
  const Pieces *j = data;
  gsize i0 = begin * PIECE, i1 = MIN (end * PIECE, j->n);
  memset (j->dst + i0, 0, (i1 - i0) * sizeof (float));
}

static void
copy_pieces (gsize begin, gsize end, gpointer data)
{
  const Pieces *j = data;
  gsize i0 = begin * PIECE, i1 = MIN (end * PIECE, j->n);
  memcpy (j->dst + i0, j->src + i0, (i1 - i0) * sizeof (float));
}

static void
add_pieces (gsize begin, gsize end, gpointer data)
{
  const Pieces *j = data;
  gsize i0 = begin * PIECE, i1 = MIN (end * PIECE, j->n);
  float *restrict d = j->dst;
  const float *restrict s = j->src;
  for (gsize i = i0; i < i1; i++)
    d[i] += s[i];
}

static void
run_pieces (const StRunContext *ctx, StRangeFunc fn, float *dst, const float *src, gsize n)
{
  Pieces j = { dst, src, n };
  gsize pieces = (n + PIECE - 1) / PIECE;
  if (pieces < PARALLEL_PIECES)
    fn (0, pieces, &j);
  else
    st_parallel_for (ctx, pieces, fn, &j);
}

void
st_tensor_zero_parallel (const StRunContext *ctx, StTensor *t)
{
  run_pieces (ctx, zero_pieces, t->data, NULL, st_tensor_numel (t));
}

void
st_tensor_copy_into (const StRunContext *ctx, StTensor *dst, const StTensor *src)
{
  g_return_if_fail (st_shape_numel (dst->shape) == st_shape_numel (src->shape));
  run_pieces (ctx, copy_pieces, dst->data, src->data, st_tensor_numel (src));
}

void
st_tensor_add_into (const StRunContext *ctx, StTensor *dst, const StTensor *src)
{
  g_return_if_fail (st_shape_numel (dst->shape) == st_shape_numel (src->shape));
  run_pieces (ctx, add_pieces, dst->data, src->data, st_tensor_numel (src));
}
