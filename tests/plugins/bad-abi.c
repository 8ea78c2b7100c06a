/* A plugin built for the next plugin ABI: test-sdk.sh checks that strata
 * refuses it with a message naming both versions and loads the others.
 * Everything else about it is sound, so the version is the only reason. */
#include <strata/strata.h>

static gboolean
bad_infer (StStage *stage, G_GNUC_UNUSED GError **error)
{
  stage->out_shape = stage->in_shapes[0];
  return TRUE;
}

static gboolean
bad_forward (G_GNUC_UNUSED StStage *stage, G_GNUC_UNUSED const StRunContext *ctx,
             G_GNUC_UNUSED const StTensor *const *inputs, G_GNUC_UNUSED StTensor *output,
             G_GNUC_UNUSED GError **error)
{
  return TRUE;
}

static const StKind bad_kind = {
  .abi_version = ST_ABI_VERSION + 1,
  .struct_size = sizeof (StKind),
  .name = "bad-abi",
  .summary = "built for another plugin ABI",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 1,
  .max_inputs = 1,
  .infer = bad_infer,
  .forward = bad_forward,
};

/* Written out rather than ST_PLUGIN_DEFINE, which stamps this ABI. */
G_MODULE_EXPORT const StPluginInfo *strata_plugin_info (void);

G_MODULE_EXPORT const StPluginInfo *
strata_plugin_info (void)
{
  static const StKind *const kinds[] = { &bad_kind };
  static const StPluginInfo info = { ST_ABI_VERSION + 1, G_N_ELEMENTS (kinds), kinds };
  return &info;
}
