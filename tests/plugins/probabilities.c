/* Two test kinds computing a softmax over channels under other names:
 * 'normexp' says so (ST_KIND_OUTPUTS_PROBABILITIES), 'plainexp' does not.
 * test-kinds checks that the core treats normexp as it treats softmax
 * (fused with the loss in training, its output taken as probabilities)
 * from the flag alone, and plainexp as any other stage. */
#include <strata/strata.h>

static gboolean
exp_infer (StStage *stage, G_GNUC_UNUSED GError **error)
{
  stage->out_shape = stage->in_shapes[0];
  return TRUE;
}

static gboolean
exp_forward (G_GNUC_UNUSED StStage *stage, G_GNUC_UNUSED const StRunContext *ctx,
             const StTensor *const *inputs, StTensor *output, G_GNUC_UNUSED GError **error)
{
  StShape s = output->shape;
  gsize hw = (gsize) s.h * s.w;
  for (gsize px = 0; px < (gsize) s.n * hw; px++)
    {
      gsize base = (px / hw) * s.c * hw + px % hw;
      st_softmax_channels (inputs[0]->data + base, output->data + base, s.c, hw);
    }
  return TRUE;
}

/* dinp = out ⊙ (dout − Σ_c dout·out) at every pixel. */
static gboolean
exp_backward (G_GNUC_UNUSED StStage *stage, G_GNUC_UNUSED const StRunContext *ctx,
              G_GNUC_UNUSED const StTensor *const *inputs, const StTensor *output,
              const StTensor *grad_output, StTensor *const *grad_inputs,
              G_GNUC_UNUSED GError **error)
{
  if (!grad_inputs[0])
    return TRUE;
  StShape s = output->shape;
  gsize hw = (gsize) s.h * s.w;
  for (gsize px = 0; px < (gsize) s.n * hw; px++)
    {
      gsize base = (px / hw) * s.c * hw + px % hw;
      const float *y = output->data + base, *g = grad_output->data + base;
      double dot = 0.0;
      for (int c = 0; c < s.c; c++)
        dot += (double) g[c * hw] * y[c * hw];
      for (int c = 0; c < s.c; c++)
        grad_inputs[0]->data[base + c * hw] = y[c * hw] * (float) (g[c * hw] - dot);
    }
  return TRUE;
}

static const StKind normexp_kind = {
  ST_KIND_HEADER,
  .name = "normexp",
  .summary = "test stage: softmax over channels, flagged as probabilities",
  .category = ST_CATEGORY_LAYER,
  .min_inputs = 1,
  .max_inputs = 1,
  .infer = exp_infer,
  .forward = exp_forward,
  .backward = exp_backward,
  .flags = ST_KIND_OUTPUTS_PROBABILITIES,
};

static const StKind plainexp_kind = {
  ST_KIND_HEADER,
  .name = "plainexp",
  .summary = "test stage: softmax over channels, not flagged",
  .category = ST_CATEGORY_LAYER,
  .min_inputs = 1,
  .max_inputs = 1,
  .infer = exp_infer,
  .forward = exp_forward,
  .backward = exp_backward,
};

ST_PLUGIN_DEFINE (&normexp_kind, &plainexp_kind)
