/* strata — tensors: float data in NCHW layout, 64-byte aligned.
 *
 * Every tensor is four-dimensional.  A vector of class scores for a batch
 * is [N, classes, 1, 1]; a dense layer's input is [N, features, 1, 1].
 * Keeping one rank means every stage sees the same struct and the same
 * indexing: element (n, c, y, x) is data[((n * c_dim + c) * h + y) * w + x]. */
#pragma once

#include <glib.h>
#include <stddef.h>

G_BEGIN_DECLS

#define ST_TENSOR_ALIGN 64

typedef struct {
  int n, c, h, w;
} StShape;

typedef struct {
  StShape shape;
  float *data;           /* ST_TENSOR_ALIGN-aligned, owned by the tensor */
} StTensor;

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

/* Formats "NxCxHxW" into buf (at least 64 bytes) and returns buf. */
const char *st_shape_format (StShape shape, char *buf, gsize size);

/* New tensor, zero-filled.  Returns NULL (and sets error) only when the
 * shape is invalid or its size overflows. */
StTensor *st_tensor_new (StShape shape, GError **error);
/* Same, aborting on an invalid shape: for callers whose shape is known good. */
StTensor *st_tensor_new0 (int n, int c, int h, int w);
StTensor *st_tensor_copy (const StTensor *src);
void      st_tensor_free (StTensor *t);
void      st_tensor_zero (StTensor *t);
gsize     st_tensor_numel (const StTensor *t);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (StTensor, st_tensor_free)

G_END_DECLS
