/* A stage kind 'die-on-width-61' for test-mpi: passes its input through,
 * but the process running it is killed (SIGKILL, as by the kernel's
 * out-of-memory killer) on an image 61 pixels wide, so that a rank dies
 * in the middle of a run at a point the test chooses. */
#include <strata/strata.h>

#include <signal.h>
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
  if (inputs[0]->shape.w == 61)
    raise (SIGKILL);
  memcpy (output->data, inputs[0]->data, st_tensor_numel (output) * sizeof (float));
  return TRUE;
}

static const StKind die_kind = {
  ST_KIND_HEADER,
  .name = "die-on-width-61",
  .summary = "test stage: passes its input through; kills its process on a 61-pixel-wide image",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 1,
  .max_inputs = 1,
  .infer = pass_infer,
  .forward = pass_forward,
};

ST_PLUGIN_DEFINE (&die_kind)
