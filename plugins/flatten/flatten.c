/* strata — flatten: NxCxHxW to Nx(C·H·W)x1x1, as PyTorch's Flatten().
 *
 * In NCHW the order PyTorch flattens in (channel, row, column) is already
 * the memory order, so both passes are copies; a dense layer after it sees
 * the same feature order as in PyTorch, and its weights load unchanged. */
#include <strata/strata.h>

#include <string.h>

/* ---- Metadata ----------------------------------------------------------- */

ST_DECLARE_FORWARD (flatten);
ST_DECLARE_BACKWARD (flatten);

static const StKind flatten_kind = {
  ST_KIND_HEADER,
  .name = "flatten",
  .summary = "NxCxHxW to Nx(C*H*W)x1x1, in PyTorch's order, for a dense layer",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 1,
  .max_inputs = 1,
  .infer = flatten_infer,
  .forward = flatten_forward,
  .backward = flatten_backward,
  .flags = ST_KIND_WRITES_ALL,
};

ST_PLUGIN_DEFINE (&flatten_kind)

/* ---- Implementation ------------------------------------------------------- */

static gboolean
flatten_infer (StStage *stage, GError **error)
{
  StShape in = stage->in_shapes[0];
  gint64 features = (gint64) in.c * in.h * in.w;
  if (features > G_MAXINT)
    {
      char buf[64];
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                   "input %s has %" G_GINT64_FORMAT " features, more than a tensor dimension holds",
                   st_shape_format (in, buf, sizeof buf), features);
      return FALSE;
    }
  stage->out_shape = (StShape) { in.n, (int) features, 1, 1 };
  stage->halo = ST_HALO_WHOLE;
  stage->macs = 0;
  return TRUE;
}

static gboolean
flatten_forward (StStage *stage, const StRunContext *ctx,
                 const StTensor *const *inputs, StTensor *output, GError **error)
{
  memcpy (output->data, inputs[0]->data, st_tensor_numel (output) * sizeof (float));
  return TRUE;
}

static gboolean
flatten_backward (StStage *stage, const StRunContext *ctx,
                  const StTensor *const *inputs, const StTensor *output,
                  const StTensor *grad_output, StTensor *const *grad_inputs,
                  GError **error)
{
  if (grad_inputs[0])
    memcpy (grad_inputs[0]->data, grad_output->data,
            st_tensor_numel (grad_output) * sizeof (float));
  return TRUE;
}
