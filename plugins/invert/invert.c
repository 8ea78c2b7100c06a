/* strata — invert: y = 1 − x on every channel.
 *
 * Fashion-MNIST items are light on a dark ground, photographs of objects
 * usually dark on a light one: invert bridges the two.  The backward
 * (dx = −dy) is free, so the stage may sit anywhere in a trainable net. */
#include <strata/strata.h>

/* ---- Metadata ----------------------------------------------------------- */

ST_DECLARE_FORWARD (invert);
ST_DECLARE_BACKWARD (invert);

static const StKind invert_kind = {
  ST_KIND_HEADER,
  .name = "invert",
  .summary = "1 - x: light on dark becomes dark on light",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 1,
  .max_inputs = 1,
  .infer = invert_infer,
  .forward = invert_forward,
  .backward = invert_backward,
};

ST_PLUGIN_DEFINE (&invert_kind)

/* ---- Implementation ------------------------------------------------------- */

static gboolean
invert_infer (StStage *stage, GError **error)
{
  stage->out_shape = stage->in_shapes[0];
  stage->halo = 0;
  stage->macs = 0;
  return TRUE;
}

/* Elements per work item: large enough that scheduling costs nothing. */
#define CHUNK 16384

typedef struct {
  const float *src;
  float *dst;
  gsize numel;
  float offset;                /* 1 forward, 0 backward: dst = offset − src */
} Job;

static void
invert_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  gsize lo = begin * CHUNK, hi = MIN (end * CHUNK, j->numel);
  const float *restrict x = j->src;
  float *restrict y = j->dst;
  for (gsize i = lo; i < hi; i++)
    y[i] = j->offset - x[i];
}

static void
run (const StRunContext *ctx, const StTensor *src, StTensor *dst, float offset)
{
  Job j = { src->data, dst->data, st_tensor_numel (src), offset };
  st_parallel_for (ctx, (j.numel + CHUNK - 1) / CHUNK, invert_range, &j);
}

static gboolean
invert_forward (StStage *stage, const StRunContext *ctx,
                const StTensor *const *inputs, StTensor *output, GError **error)
{
  run (ctx, inputs[0], output, 1.0f);
  return TRUE;
}

static gboolean
invert_backward (StStage *stage, const StRunContext *ctx,
                 const StTensor *const *inputs, const StTensor *output,
                 const StTensor *grad_output, StTensor *const *grad_inputs,
                 GError **error)
{
  if (grad_inputs[0])
    run (ctx, grad_output, grad_inputs[0], 0.0f);
  return TRUE;
}
