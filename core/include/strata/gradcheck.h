/* strata — checking a stage's backward pass against finite differences.
 *
 * Plugin authors test their backward the way strata tests its own: build a
 * stage of their kind with some parameters, run it on random inputs, and
 * compare every input and parameter gradient with central differences of
 * the scalar loss sum(output * R) for a fixed random R. */
#pragma once

#include <strata/plugin.h>

G_BEGIN_DECLS

typedef struct {
  double max_rel_error;        /* worst relative error over every gradient checked */
  char worst[160];             /* which tensor and element it was */
  int n_checked;               /* gradient elements compared */
} StGradcheckResult;

/* Builds a stage of kind with the given parameters (keys/values as in a
 * pipeline file), infers it for in_shapes, fills inputs and parameters with
 * values from seed, and compares kind->backward with central differences
 * (step eps, loss accumulated in double).  Returns TRUE when every relative
 * error |a - n| / max(|a|, |n|, 1e-2) is at most tolerance; result (may be
 * NULL) says how close.  training selects the run mode (dropout, batchnorm).
 * Errors: a stage that cannot be built, or a kind without backward. */
gboolean st_gradcheck (const StKind *kind, const char *const *keys,
                       const char *const *values, int n_keys,
                       const StShape *in_shapes, int n_inputs,
                       gboolean training, guint64 seed, double eps,
                       double tolerance, StGradcheckResult *result,
                       GError **error);

G_END_DECLS
