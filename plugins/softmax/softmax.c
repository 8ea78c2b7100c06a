/* strata — softmax over channels, as PyTorch's Softmax(dim=1).
 *
 *     out(n, c, y, x) = exp(in(n, c, y, x) − m) / Σ_c' exp(in(n, c', y, x) − m)
 *
 * with m the pixel's largest value, which changes nothing mathematically
 * but keeps exp from overflowing (inputs of 1000 are fine); the SDK's
 * st_softmax_channels() computes it, as for training's fused loss.  Each pixel is
 * independent, so a class-score vector [N, classes, 1, 1] and a per-pixel
 * segmentation map [N, classes, H, W] are the same code. */
#include <strata/strata.h>

#include <math.h>

/* ---- Metadata ----------------------------------------------------------- */

ST_DECLARE_FORWARD (softmax);
ST_DECLARE_BACKWARD (softmax);

static const StKind softmax_kind = {
  ST_KIND_HEADER,
  .name = "softmax",
  .summary = "softmax over channels at every pixel: class scores to probabilities",
  .category = ST_CATEGORY_LAYER,
  .min_inputs = 1,
  .max_inputs = 1,
  .infer = softmax_infer,
  .forward = softmax_forward,
  .backward = softmax_backward,
  .flags = ST_KIND_OUTPUTS_PROBABILITIES | ST_KIND_WRITES_ALL,
};

ST_PLUGIN_DEFINE (&softmax_kind)

/* ---- Implementation ------------------------------------------------------- */

static gboolean
softmax_infer (StStage *stage, GError **error)
{
  stage->out_shape = stage->in_shapes[0];
  stage->halo = 0;             /* per pixel: only the channels are mixed */
  stage->macs = 3.0 * (double) st_shape_numel (stage->out_shape);
  return TRUE;
}

/* dinp = out ⊙ (dout − Σ_c dout·out); [N, C, HW]. */
static void
softmax_backward_pixels (float *dinp, const float *dout, const float *out, int C, gsize hw,
                         gsize begin, gsize end)
{
  for (gsize px = begin; px < end; px++)
    {
      gsize base = (px / hw) * C * hw + px % hw;
      const float *y = out + base, *g = dout + base;
      float *d = dinp + base;
      double dot = 0.0;
      for (int c = 0; c < C; c++)
        dot += (double) g[c * hw] * y[c * hw];
      for (int c = 0; c < C; c++)
        d[c * hw] = y[c * hw] * (float) (g[c * hw] - dot);
    }
}

typedef struct {
  float *dst;
  const float *src;            /* inp, or dout */
  const float *out;            /* backward only */
  int C;
  gsize hw;
} Job;

/* Pixels [begin, end) of the N·HW, each over its C channels. */
static void
forward_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  for (gsize px = begin; px < end; px++)
    {
      gsize base = (px / j->hw) * j->C * j->hw + px % j->hw;
      st_softmax_channels (j->src + base, j->dst + base, j->C, j->hw);
    }
}

static void
backward_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  softmax_backward_pixels (j->dst, j->src, j->out, j->C, j->hw, begin, end);
}

static gboolean
softmax_forward (StStage *stage, const StRunContext *ctx,
                 const StTensor *const *inputs, StTensor *output, GError **error)
{
  StShape s = output->shape;
  Job j = { output->data, inputs[0]->data, NULL, s.c, (gsize) s.h * s.w };
  st_parallel_for (ctx, (gsize) s.n * j.hw, forward_range, &j);
  return TRUE;
}

static gboolean
softmax_backward (StStage *stage, const StRunContext *ctx,
                  const StTensor *const *inputs, const StTensor *output,
                  const StTensor *grad_output, StTensor *const *grad_inputs,
                  GError **error)
{
  if (!grad_inputs[0])
    return TRUE;
  StShape s = output->shape;
  Job j = { grad_inputs[0]->data, grad_output->data, output->data, s.c, (gsize) s.h * s.w };
  st_parallel_for (ctx, (gsize) s.n * j.hw, backward_range, &j);
  return TRUE;
}
