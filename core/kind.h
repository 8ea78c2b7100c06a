/* strata — one stage kind on its own, outside any pipeline: what the SDK
 * offers to use or test a kind (st_kind_flags, st_stage_check_same_shapes,
 * st_stage_run_forward in the public headers) and the stage building they
 * share with st_gradcheck. */
#pragma once

#include <strata/strata.h>

G_BEGIN_DECLS

/* A stage of kind named after it, with keys/values validated as a
 * pipeline file's, inferred for in_shapes; NULL with error set when it
 * cannot be built.  Free with st_stage_free(). */
StStage *st_stage_new_inferred (const StKind *kind, const char *const *keys,
                                const char *const *values, int n_keys,
                                const StShape *in_shapes, int n_inputs,
                                GError **error);

G_END_DECLS
