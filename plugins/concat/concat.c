/* strata — concat: inputs of one height and width stacked along channels,
 * as torch.cat (dim=1), for Inception-style branches and dense blocks.
 *
 *     out[n, C1 + ... + C(i-1) + c, y, x] = in_i[n, c, y, x]
 *
 * Both passes are copies of whole channel planes: forward copies each
 * input's planes into its band of the output, backward copies the band of
 * the output gradient back to each input. */
#include <strata/strata.h>

#include <string.h>

/* ---- Metadata ----------------------------------------------------------- */

ST_DECLARE_FORWARD (concat);
ST_DECLARE_BACKWARD (concat);

static const StKind concat_kind = {
  ST_KIND_HEADER,
  .name = "concat",
  .summary = "inputs of one height and width stacked along channels, in input order "
             "(input=a,b,...): C1+C2+... channels, as torch.cat(dim=1)",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 2,
  .max_inputs = -1,
  .infer = concat_infer,
  .forward = concat_forward,
  .backward = concat_backward,
};

ST_PLUGIN_DEFINE (&concat_kind)

/* ---- Implementation ------------------------------------------------------- */

static gboolean
concat_infer (StStage *stage, GError **error)
{
  StShape s0 = stage->in_shapes[0];
  gint64 channels = 0;
  for (int i = 0; i < stage->n_inputs; i++)
    {
      StShape s = stage->in_shapes[i];
      if (s.n != s0.n || s.h != s0.h || s.w != s0.w)
        {
          char a[64], b[64];
          g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                       "input %d is %s but input 1 is %s; all inputs must have one batch size, "
                       "height and width (only channels may differ)",
                       i + 1, st_shape_format (s, a, sizeof a), st_shape_format (s0, b, sizeof b));
          return FALSE;
        }
      channels += s.c;
    }
  if (channels > G_MAXINT)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                   "the inputs have %" G_GINT64_FORMAT " channels together, more than a tensor "
                   "dimension holds", channels);
      return FALSE;
    }
  stage->out_shape = (StShape) { s0.n, (int) channels, s0.h, s0.w };
  stage->halo = 0;
  stage->macs = 0;
  return TRUE;
}

typedef struct {
  StStage *stage;
  float *const *parts;         /* n_inputs tensors' data: the inputs, or their gradients */
  float *whole;                /* the output, or its gradient */
  gboolean to_whole;           /* forward: parts into whole; backward: back */
} Job;

/* One item per (sample, input): its C_i planes are one contiguous block
 * in both tensors. */
static void
copy_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  const StStage *stage = j->stage;
  StShape out = stage->out_shape;
  gsize plane = (gsize) out.h * out.w;
  for (gsize item = begin; item < end; item++)
    {
      int n = (int) (item / stage->n_inputs), i = (int) (item % stage->n_inputs);
      if (!j->parts[i])
        continue;
      gsize first = 0;
      for (int k = 0; k < i; k++)
        first += stage->in_shapes[k].c;
      gsize block = (gsize) stage->in_shapes[i].c * plane;
      float *whole = j->whole + ((gsize) n * out.c + first) * plane;
      float *part = j->parts[i] + (gsize) n * block;
      if (j->to_whole)
        memcpy (whole, part, block * sizeof (float));
      else
        memcpy (part, whole, block * sizeof (float));
    }
}

static gboolean
concat_forward (StStage *stage, const StRunContext *ctx,
                const StTensor *const *inputs, StTensor *output, GError **error)
{
  g_autofree float **parts = g_new (float *, stage->n_inputs);
  for (int i = 0; i < stage->n_inputs; i++)
    parts[i] = inputs[i]->data;
  Job j = { stage, parts, output->data, TRUE };
  st_parallel_for (ctx, (gsize) output->shape.n * stage->n_inputs, copy_range, &j);
  return TRUE;
}

static gboolean
concat_backward (StStage *stage, const StRunContext *ctx,
                 const StTensor *const *inputs, const StTensor *output,
                 const StTensor *grad_output, StTensor *const *grad_inputs,
                 GError **error)
{
  g_autofree float **parts = g_new (float *, stage->n_inputs);
  for (int i = 0; i < stage->n_inputs; i++)
    parts[i] = grad_inputs[i] ? grad_inputs[i]->data : NULL;
  Job j = { stage, parts, grad_output->data, FALSE };
  st_parallel_for (ctx, (gsize) grad_output->shape.n * stage->n_inputs, copy_range, &j);
  return TRUE;
}
