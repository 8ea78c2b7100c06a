/* strata — tensors: float data in NCHW layout, 64-byte aligned.
 *
 * Every tensor is four-dimensional.  A vector of class scores for a batch
 * is [N, classes, 1, 1]; a dense layer's input is [N, features, 1, 1].
 * Keeping one rank means every stage sees the same struct and the same
 * indexing: element (n, c, y, x) is data[((n * c_dim + c) * h + y) * w + x].
 *
 * Images decode to values in [0, 1]; writing an image clamps to [0, 1] and
 * rounds to the file's bit depth, so a filter stage works in [0, 1] too.
 *
 * Memory: whoever creates a tensor frees it.  A plugin never frees the
 * tensors the core hands it (inputs, output, gradients, parameters) and
 * never keeps a pointer to them past the call that received them.
 *
 * Threads: these functions keep no global state; they may be called from
 * any thread, including inside st_parallel_for(), on tensors that thread
 * owns or only reads. */
#pragma once

#include <glib.h>
#include <stddef.h>

G_BEGIN_DECLS

/* Alignment of StTensor.data in bytes: whole AVX-512 vectors. */
#define ST_TENSOR_ALIGN 64

/* A tensor's dimensions.  Every dimension of a real tensor is at least 1. */
typedef struct {
  int n,                       /* batch: images (or samples) */
      c,                       /* channels: 1 gray, 3 RGB; features or classes for dense layers */
      h,                       /* rows */
      w;                       /* columns: rows are contiguous */
} StShape;

typedef struct {
  StShape shape;               /* fixed for the tensor's life */
  /* n·c·h·w floats, ST_TENSOR_ALIGN-aligned, owned by the tensor (freed by
   * st_tensor_free(), never by free()).  The allocation is rounded up to
   * whole 64-byte blocks, so a full vector read at the end stays inside
   * it; the padding holds no data. */
  float *data;
} StTensor;

/* n·c·h·w, in gsize.  No overflow check: shapes the core hands out (and
 * any from st_tensor_new()) are known to fit; st_shape_bytes() checks one
 * that is not known yet. */
static inline gsize
st_shape_numel (StShape s)
{
  return (gsize) s.n * (gsize) s.c * (gsize) s.h * (gsize) s.w;
}

static inline gboolean
st_shape_equal (StShape a, StShape b)
{
  return a.n == b.n && a.c == b.c && a.h == b.h && a.w == b.w;
}

/* The bytes of a tensor of this shape's data in *bytes (may be NULL):
 * FALSE when a dimension is below 1 or n·c·h·w·sizeof (float) overflows. */
gboolean st_shape_bytes (StShape shape, guint64 *bytes);

/* Formats "NxCxHxW" into buf, which holds size bytes (64 is always enough),
 * and returns buf: for error messages. */
const char *st_shape_format (StShape shape, char *buf, gsize size);

/* A new tensor, zero-filled, owned by the caller (free with
 * st_tensor_free()).  Returns NULL with an ST_ERROR_SHAPE error when a
 * dimension is below 1 or the size overflows, and with ST_ERROR_MEMORY
 * when the memory cannot be had. */
StTensor *st_tensor_new (StShape shape, GError **error);
/* The same, aborting on an invalid shape or when memory runs out, as GLib
 * does: for callers whose shape is known good and small. */
StTensor *st_tensor_new0 (int n, int c, int h, int w);
/* A new tensor with src's shape and values, owned by the caller. */
StTensor *st_tensor_copy (const StTensor *src);
/* Frees t and its data; NULL is allowed. */
void      st_tensor_free (StTensor *t);
/* Sets every element to 0. */
void      st_tensor_zero (StTensor *t);
/* st_shape_numel (t->shape). */
gsize     st_tensor_numel (const StTensor *t);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (StTensor, st_tensor_free)

G_END_DECLS
