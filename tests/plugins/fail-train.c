/* A stage kind 'fail-in-training' that passes its input through when a
 * pipeline runs and fails, with the generic error code, when it trains:
 * test-train checks that such a failure is reported, not taken for an
 * interruption. */
#include <strata/strata.h>

#include <string.h>

static gboolean
pass_infer (StStage *stage, GError **error)
{
  stage->out_shape = stage->in_shapes[0];
  return TRUE;
}

static gboolean
pass_forward (StStage *stage, const StRunContext *ctx, const StTensor *const *inputs,
              StTensor *output, GError **error)
{
  if (ctx->training)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_FAILED, "refuses to train (a test stage)");
      return FALSE;
    }
  memcpy (output->data, inputs[0]->data, st_tensor_numel (output) * sizeof (float));
  return TRUE;
}

static gboolean
pass_backward (StStage *stage, const StRunContext *ctx, const StTensor *const *inputs,
               const StTensor *output, const StTensor *grad_output,
               StTensor *const *grad_inputs, GError **error)
{
  if (grad_inputs[0])
    memcpy (grad_inputs[0]->data, grad_output->data, st_tensor_numel (grad_output) * sizeof (float));
  return TRUE;
}

static const StKind fail_kind = {
  ST_KIND_HEADER,
  .name = "fail-in-training",
  .summary = "test stage: passes its input through, fails when training",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 1,
  .max_inputs = 1,
  .infer = pass_infer,
  .forward = pass_forward,
  .backward = pass_backward,
};

ST_PLUGIN_DEFINE (&fail_kind)
