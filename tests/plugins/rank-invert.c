/* A second provider of the stage kind 'invert' with a higher rank than the
 * bundled one: test-sdk.sh checks that strata picks it, and says where the
 * other one is.  Its output is a constant, so a run shows which one ran. */
#include <strata/strata.h>

static gboolean
flat_infer (StStage *stage, GError **error)
{
  stage->out_shape = stage->in_shapes[0];
  return TRUE;
}

static gboolean
flat_forward (StStage *stage, const StRunContext *ctx, const StTensor *const *inputs,
              StTensor *output, GError **error)
{
  for (gsize i = 0; i < st_tensor_numel (output); i++)
    output->data[i] = 0.25f;
  return TRUE;
}

static const StKind flat_kind = {
  ST_KIND_HEADER,
  .name = "invert",
  .summary = "test stand-in: every value 0.25",
  .category = ST_CATEGORY_PLUMBING,
  .rank = 10,
  .min_inputs = 1,
  .max_inputs = 1,
  .infer = flat_infer,
  .forward = flat_forward,
};

ST_PLUGIN_DEFINE (&flat_kind)
