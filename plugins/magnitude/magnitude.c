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

static gboolean magnitude_infer (StStage *stage, GError **error);
static gboolean magnitude_forward (StStage *stage, const StRunContext *ctx,
                                   const StTensor *const *inputs,
                                   StTensor *output, GError **error);

static const StKind magnitude_kind = {
  ST_KIND_HEADER,
  .name = "magnitude",
  .summary = "sqrt of the sum of squares of inputs of one shape (e.g. Sobel x and y)",
  .category = ST_CATEGORY_PLUMBING,
  .rank = 0,
  .min_inputs = 1,
  .max_inputs = -1,
  .params = NULL,
  .n_params = 0,
  .config_size = 0,
  .infer = magnitude_infer,
  .forward = magnitude_forward,
};

ST_PLUGIN_DEFINE (&magnitude_kind)

/* ---- Implementation ------------------------------------------------------- */

static gboolean
magnitude_infer (StStage *stage, GError **error)
{
  StShape s0 = stage->in_shapes[0];
  for (int i = 1; i < stage->n_inputs; i++)
    if (!st_shape_equal (stage->in_shapes[i], s0))
      {
        char a[64], b[64];
        g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                     "input %d is %s but input 1 is %s; all inputs must have one shape",
                     i + 1, st_shape_format (stage->in_shapes[i], a, sizeof a),
                     st_shape_format (s0, b, sizeof b));
        return FALSE;
      }
  stage->out_shape = s0;
  stage->halo = 0;
  stage->macs = (double) st_shape_numel (s0) * stage->n_inputs;
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
