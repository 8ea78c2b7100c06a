/* test-scale — checks the scale stage's backward against finite
 * differences with st_gradcheck, the checker strata uses on its own layers.
 *
 * scale.c is compiled into this program, so its strata_plugin_info()
 * (declared by the SDK, defined by ST_PLUGIN_DEFINE) gives
 * the kind directly: no plugin search path, and a failure points at the
 * source.  Exits 1 when any gradient is off. */
#include <strata/strata.h>

#include <stdio.h>

/* scale is linear in each of x, weight and bias, so a large step costs no
 * truncation error and keeps float rounding in the loss small. */
#define EPS 5e-2
#define TOLERANCE 1e-3

int
main (void)
{
  const StPluginInfo *info = strata_plugin_info ();
  if (info->n_kinds != 1 || g_strcmp0 (info->kinds[0]->name, "scale") != 0)
    {
      fprintf (stderr, "expected one kind named 'scale'\n");
      return 1;
    }
  const StKind *kind = info->kinds[0];

  static const char *const keys[] = { "bias" };
  static const char *const bias_values[][1] = { { "false" }, { "true" } };
  static const StShape shapes[] = {
    { 1, 1, 5, 7 },
    { 3, 4, 6, 5 },              /* a batch: weight sums over N, H and W */
  };
  int failed = 0;
  for (gsize b = 0; b < G_N_ELEMENTS (bias_values); b++)
    for (gsize s = 0; s < G_N_ELEMENTS (shapes); s++)
      for (guint64 seed = 1; seed <= 2; seed++)
        {
          g_autoptr (GError) error = NULL;
          StGradcheckResult result;
          /* Parameters as a pipeline file gives them: keys and text values. */
          gboolean ok = st_gradcheck (kind, keys, bias_values[b], 1, &shapes[s], 1,
                                      TRUE, seed, EPS, TOLERANCE, &result, &error);
          ok = ok && result.n_checked > 0;
          printf ("%s - bias=%s %dx%dx%dx%d seed %d: %d checked, max relative error %.2e at %s\n",
                  ok ? "ok" : "FAILED", bias_values[b][0], shapes[s].n, shapes[s].c,
                  shapes[s].h, shapes[s].w, (int) seed, result.n_checked,
                  result.max_rel_error, result.worst);
          if (error)
            fprintf (stderr, "  %s\n", error->message);
          failed += !ok;
        }
  return failed ? 1 : 0;
}
