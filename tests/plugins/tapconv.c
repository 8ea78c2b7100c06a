/* A test convolution under another name, 'tapconv': valid padding, stride
 * 1, no bias, weight [filters, in, size, size] as the SDK lays a
 * convolution out.  test-kinds checks that `strata inspect
 * --weights-image` draws its filters, knowing it only by that 4-D weight. */
#include <strata/strata.h>

#include <stddef.h>

typedef struct {
  int filters;
  int size;
} TapConfig;

static const StParamSpec tap_params[] = {
  { .name = "filters", .type = ST_PARAM_INT, .default_value = "2",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 1, .max = 64,
    .help = "output channels", .offset = offsetof (TapConfig, filters) },
  { .name = "size", .type = ST_PARAM_INT, .default_value = "3",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 1, .max = 9,
    .help = "kernel height and width", .offset = offsetof (TapConfig, size) },
};

static gboolean
tap_infer (StStage *stage, GError **error)
{
  const TapConfig *cfg = stage->config;
  StShape in = stage->in_shapes[0];
  if (in.h < cfg->size || in.w < cfg->size)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE, "input smaller than the kernel");
      return FALSE;
    }
  int dims[4] = { cfg->filters, in.c, cfg->size, cfg->size };
  if (st_stage_declare_param (stage, "weight", dims, 4, ST_INIT_HE_UNIFORM, 0, TRUE, error) < 0)
    return FALSE;
  stage->out_shape = (StShape) { in.n, cfg->filters, in.h - cfg->size + 1, in.w - cfg->size + 1 };
  return TRUE;
}

static gboolean
tap_forward (StStage *stage, G_GNUC_UNUSED const StRunContext *ctx,
             const StTensor *const *inputs, StTensor *output, G_GNUC_UNUSED GError **error)
{
  const TapConfig *cfg = stage->config;
  const StTensor *w = st_stage_param (stage, 0);
  StShape in = inputs[0]->shape, out = output->shape;
  int k = cfg->size;
  for (int n = 0; n < out.n; n++)
    for (int f = 0; f < out.c; f++)
      for (int y = 0; y < out.h; y++)
        for (int x = 0; x < out.w; x++)
          {
            float sum = 0;
            for (int c = 0; c < in.c; c++)
              for (int i = 0; i < k; i++)
                for (int j = 0; j < k; j++)
                  sum += w->data[((f * in.c + c) * k + i) * k + j]
                         * inputs[0]->data[((n * in.c + c) * in.h + y + i) * in.w + x + j];
            output->data[((n * out.c + f) * out.h + y) * out.w + x] = sum;
          }
  return TRUE;
}

static const StKind tap_kind = {
  ST_KIND_HEADER,
  .name = "tapconv",
  .summary = "test stage: a plain convolution under another name",
  .category = ST_CATEGORY_LAYER,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = tap_params,
  .n_params = G_N_ELEMENTS (tap_params),
  .config_size = sizeof (TapConfig),
  .infer = tap_infer,
  .forward = tap_forward,
};

ST_PLUGIN_DEFINE (&tap_kind)
