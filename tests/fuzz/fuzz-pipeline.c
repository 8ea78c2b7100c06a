/* strata — fuzz harness: pipeline text (core/pipeline.c, param.c, the
 * plugins' parameter specs and shape inference).
 *
 * The input is a pipeline file's text, or, after "inline:", an inline
 * chain ("grayscale ! kernel preset=emboss").  The plugins come from the
 * build tree.  A pipeline that loads is also prepared for a small odd
 * input and, when it is small enough to be quick, run forward once. */
#include "fuzz.h"

#include "context.h"
#include "pipeline.h"

#include <string.h>

#define INLINE_PREFIX "inline:"

/* Forward only what runs in well under a millisecond or so. */
#define FORWARD_MAX_VALUES 1000000.0
#define FORWARD_MAX_MACS 20000000.0

static gboolean
small_enough_to_run (StPipeline *p)
{
  double values = 0, macs = 0;
  for (int i = 0; i < st_pipeline_n_stages (p); i++)
    {
      const StStage *s = st_pipeline_stage (p, i);
      values += (double) st_shape_numel (s->out_shape);
      macs += s->macs;
    }
  return values <= FORWARD_MAX_VALUES && macs <= FORWARD_MAX_MACS;
}

static void
exercise (StPipeline *p, StRunContext *ctx)
{
  /* The accessors, so what the parser stored is read at least once. */
  (void) st_pipeline_name (p);
  (void) st_pipeline_description (p);
  (void) st_pipeline_weights_path (p);
  const char *const *labels = st_pipeline_labels (p);
  for (int i = 0; labels && labels[i]; i++)
    g_assert (labels[i] != NULL);
  for (int i = 0; i < st_pipeline_n_stages (p); i++)
    g_assert (st_pipeline_stage_inputs (p, i) != NULL);
  (void) st_pipeline_prefix_length (p);

  g_autoptr (GError) error = NULL;
  StShape input;
  if (!st_pipeline_fixed_input (p, &input))
    {
      /* Odd and small: kernels larger than the image, strides that do
       * not divide it. */
      input = (StShape) { 1, 3, 5, 7 };
      if (!st_pipeline_prepare (p, input, &error))
        return;
    }
  if (!small_enough_to_run (p))
    return;
  g_autoptr (StTensor) x = st_tensor_new (input, &error);
  g_assert (x != NULL);
  for (gsize i = 0; i < st_tensor_numel (x); i++)
    x->data[i] = (float) (i % 17) / 16.0f;
  g_autoptr (StTensor) y = st_pipeline_forward (p, ctx, x, FALSE, &error);
  if (y)
    {
      StShape out = st_pipeline_output_shape (p);
      g_assert (memcmp (&y->shape, &out, sizeof out) == 0);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static StRegistry *reg;
  static StRunContext *ctx;
  fuzz_init ();
  if (!reg)
    {
      reg = st_registry_new (NULL);
      ctx = st_run_context_new (1, 1);
    }

  g_autofree char *text = g_strndup ((const char *) data, size);
  /* st_pipeline_load_file refuses what is not UTF-8 before parsing. */
  if (!g_utf8_validate (text, -1, NULL))
    return 0;

  g_autoptr (GError) error = NULL;
  StPipeline *p;
  if (g_str_has_prefix (text, INLINE_PREFIX))
    p = st_pipeline_load_inline (reg, text + strlen (INLINE_PREFIX), &error);
  else
    p = st_pipeline_load_data (reg, text, "fuzz.ini", &error);
  g_assert ((p == NULL) == (error != NULL));
  if (!p)
    return 0;

  exercise (p, ctx);
  st_pipeline_free (p);
  return 0;
}
