/* strata — checking a stage's backward pass against finite differences.
 *
 * Plugin authors test their backward the way strata tests its own: build a
 * stage of their kind with some parameters, run it on random inputs, and
 * compare every input and parameter gradient with central differences of
 * the scalar loss sum(output * R) for a fixed random R.
 *
 * A test program gets the kind from the plugin itself: compile the plugin's
 * source into the program and call its strata_plugin_info() (declare it:
 * `const StPluginInfo *strata_plugin_info (void);`), then link with
 * `pkg-config --libs strata`.  examples/plugins/scale/test-scale.c does
 * this. */
#pragma once

#include <strata/plugin.h>

G_BEGIN_DECLS

typedef struct {
  double max_rel_error;        /* worst relative error over every gradient checked */
  char worst[160];             /* which tensor and element it was, with both values */
  int n_checked;               /* gradient elements compared */
} StGradcheckResult;

/* Builds a stage of kind with the given parameters (keys/values as in a
 * pipeline file), infers it for in_shapes, fills inputs and parameters with
 * values from seed, and compares kind->backward with central differences
 * (step eps, loss accumulated in double).  Returns TRUE when every relative
 * error |a - n| / max(|a|, |n|, 1e-2) is at most tolerance; result (may be
 * NULL) says how close.  training selects the run mode (dropout, batchnorm).
 * Errors: a stage that cannot be built, or a kind without backward.
 *
 * keys and values: n_keys strings each (NULL when n_keys is 0), validated
 * like a pipeline file's.  The stage is named after the kind, so its
 * parameters are "<kind>.<param>" in messages.  in_shapes: n_inputs
 * shapes.  Inputs are spread over [-1, 1], trainable parameters drawn from
 * it; non-trainable ones keep their initial values and are not checked.
 * At most 200 elements per tensor are compared.
 *
 * eps: float rounding in the loss grows as 1/eps, truncation error as
 * eps²: about 5e-2 suits stages linear in each value, 1e-2 smooth ones,
 * 2e-3 ones with kinks (relu, max).  tolerance: 1e-3 is what strata's own
 * tests use.  A mismatch returns FALSE with an ST_ERROR_FAILED error naming
 * the worst element.
 *
 * What it cannot see: a forward that is wrong but consistent with its
 * backward (test forward against known answers too), and a backward that
 * overwrites parameter gradients instead of adding to them (they start at
 * zero here).  It runs the stage on its own four-thread pool, so the
 * parallel paths are the ones checked; call it from any thread.  The
 * kind's callbacks are called directly: the kind need not be installed or
 * on the plugin path. */
gboolean st_gradcheck (const StKind *kind, const char *const *keys,
                       const char *const *values, int n_keys,
                       const StShape *in_shapes, int n_inputs,
                       gboolean training, guint64 seed, double eps,
                       double tolerance, StGradcheckResult *result,
                       GError **error);

/* Runs one stage of kind on its own, as a unit test of its forward does:
 * builds it with keys/values (as st_gradcheck), infers it for the inputs'
 * shapes and runs forward once into a new tensor, which the caller frees.
 * Parameters keep the values they are declared with (initialisers are
 * seeded with the stage name, which is the kind's name, so they repeat);
 * seed seeds the run's generator (dropout); training as for st_gradcheck.
 * Returns NULL with error set when the stage cannot be built or forward
 * fails.  Like st_gradcheck, it calls the kind's callbacks directly. */
StTensor *st_stage_run_forward (const StKind *kind, const char *const *keys,
                                const char *const *values, int n_keys,
                                const StTensor *const *inputs, int n_inputs,
                                gboolean training, guint64 seed, GError **error);

G_END_DECLS
