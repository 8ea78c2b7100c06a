/* strata — what the core alone does with tensors: blocks kept for another
 * shape, and filling, copying and adding over the run's threads. */
#pragma once

#include <strata/tensor.h>
#include <strata/plugin.h>

G_BEGIN_DECLS

/* The bytes t's data block holds: its shape's, rounded up to whole
 * ST_TENSOR_ALIGN blocks, or more once st_tensor_reshape_within() gave it
 * a smaller shape. */
gsize    st_tensor_capacity (const StTensor *t);
/* Gives t `shape` when its block holds that many floats (the values are
 * left as they were); FALSE, t unchanged, when it does not. */
gboolean st_tensor_reshape_within (StTensor *t, StShape shape);

/* The same as st_tensor_zero(), memcpy and an elementwise dst += src, in
 * pieces over ctx's threads: each element depends on itself alone, so the
 * result is the same with any thread count. */
void     st_tensor_zero_parallel (const StRunContext *ctx, StTensor *t);
void     st_tensor_copy_into (const StRunContext *ctx, StTensor *dst, const StTensor *src);
void     st_tensor_add_into (const StRunContext *ctx, StTensor *dst, const StTensor *src);

G_END_DECLS
