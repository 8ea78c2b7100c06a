/* strata — a pipeline's parameters as a safetensors file. */
#pragma once

#include "pipeline.h"
#include "safetensors.h"

G_BEGIN_DECLS

/* Every parameter of every stage of p, named "<stage>.<param>" with the
 * dims it was declared with (a PyTorch state_dict's names and shapes). */
gboolean st_pipeline_save_weights (StPipeline *p, const char *path,
                                   GHashTable *metadata, GError **error);
/* Loads a file into p's parameters: a missing or extra tensor, one whose
 * shape differs, or one holding NaN or infinity is refused with a message
 * naming it, and p is unchanged.  When p has no labels=, the class names
 * stored by training (__metadata__ "strata.labels") become its labels. */
gboolean st_pipeline_load_weights (StPipeline *p, const char *path, GError **error);

G_END_DECLS
