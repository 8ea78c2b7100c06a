/* strata — one stage kind on its own: its flags, helpers for its infer, and
 * running one stage outside a pipeline (see kind.h). */
#include "kind.h"
#include "context.h"
#include "stage.h"

guint32
st_kind_flags (const StKind *kind)
{
  /* A plugin built before the field was appended has a shorter struct. */
  if (kind->struct_size < G_STRUCT_OFFSET (StKind, flags) + sizeof kind->flags)
    return 0;
  return kind->flags;
}

gboolean
st_stage_check_same_shapes (StStage *stage, GError **error)
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
  return TRUE;
}

StStage *
st_stage_new_inferred (const StKind *kind, const char *const *keys,
                       const char *const *values, int n_keys,
                       const StShape *in_shapes, int n_inputs, GError **error)
{
  StStage *stage = st_stage_new (kind, kind->name, keys, values, n_keys, error);
  if (stage && !st_stage_infer (stage, in_shapes, n_inputs, error))
    g_clear_pointer (&stage, st_stage_free);
  return stage;
}

StTensor *
st_stage_run_forward (const StKind *kind, const char *const *keys,
                      const char *const *values, int n_keys,
                      const StTensor *const *inputs, int n_inputs,
                      gboolean training, guint64 seed, GError **error)
{
  g_return_val_if_fail (kind && (inputs || n_inputs == 0), NULL);
  g_autofree StShape *shapes = g_new (StShape, MAX (n_inputs, 1));
  for (int i = 0; i < n_inputs; i++)
    shapes[i] = inputs[i]->shape;
  StStage *stage = st_stage_new_inferred (kind, keys, values, n_keys, shapes, n_inputs, error);
  if (!stage)
    return NULL;
  g_autoptr (StRunContext) ctx = st_run_context_try_new (0, seed, error);
  if (ctx)
    ctx->training = training;
  StTensor *output = ctx ? st_tensor_new (stage->out_shape, error) : NULL;
  if (output && !kind->forward (stage, ctx, inputs, output, error))
    g_clear_pointer (&output, st_tensor_free);
  st_stage_free (stage);
  return output;
}
