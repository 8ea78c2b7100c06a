/* strata — magnitude: sqrt of the sum of squares of inputs of one shape.
 *
 *     out = sqrt (Σ_i in_i²)
 *
 * Joins gradient components: a Sobel edge map is magnitude with
 * input=sx,sy.  With one input it is the absolute value. */
#include <strata/strata.h>

#include <math.h>
#include <stddef.h>

/* ---- Metadata ----------------------------------------------------------- */

ST_DECLARE_FORWARD (magnitude);

static const StKind magnitude_kind = {
  ST_KIND_HEADER,
  .name = "magnitude",
  .summary = "sqrt of the sum of squares of inputs of one shape (e.g. Sobel x and y)",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 1,
  .max_inputs = -1,
  .infer = magnitude_infer,
  .forward = magnitude_forward,
};

ST_PLUGIN_DEFINE (&magnitude_kind)

/* ---- Implementation ------------------------------------------------------- */

static gboolean
magnitude_infer (StStage *stage, GError **error)
{
  if (!st_stage_check_same_shapes (stage, error))
    return FALSE;
  stage->halo = 0;
  stage->macs = (double) st_shape_numel (stage->out_shape) * stage->n_inputs;
  return TRUE;
}

/* Elements per work item: large enough that scheduling costs nothing. */
#define CHUNK 16384

typedef struct {
  const StTensor *const *inputs;
  int n_inputs;
  float *out;
  gsize numel;
} Job;

static void
magnitude_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  gsize lo = begin * CHUNK, hi = MIN (end * CHUNK, j->numel);
  float *restrict o = j->out + lo;
  gsize n = hi - lo;
  for (int i = 0; i < j->n_inputs; i++)
    {
      const float *restrict a = j->inputs[i]->data + lo;
      if (i == 0)
        for (gsize x = 0; x < n; x++)
          o[x] = a[x] * a[x];
      else
        for (gsize x = 0; x < n; x++)
          o[x] += a[x] * a[x];
    }
  for (gsize x = 0; x < n; x++)
    o[x] = sqrtf (o[x]);
}

static gboolean
magnitude_forward (StStage *stage, const StRunContext *ctx,
                   const StTensor *const *inputs, StTensor *output,
                   GError **error)
{
  Job j = { inputs, stage->n_inputs, output->data, st_tensor_numel (output) };
  st_parallel_for (ctx, (j.numel + CHUNK - 1) / CHUNK, magnitude_range, &j);
  return TRUE;
}
