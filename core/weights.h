/* strata — a pipeline's parameters as a safetensors file. */
#pragma once

#include "pipeline.h"
#include "safetensors.h"
#include "stage.h"

G_BEGIN_DECLS

/* A named tensor (g_free it) borrowing name and value, with weight's
 * declared dims: how a parameter, or optimiser state shaped like it, is
 * stored. */
StNamedTensor *st_named_tensor_borrow (const char *name, const StWeight *weight, StTensor *value);
/* Writes p's parameters (st_pipeline_weights, under their names and
 * declared dims), then the extra StNamedTensor* (may be NULL), with
 * metadata and "strata.pipeline". */
gboolean st_weights_write (StPipeline *p, const char *path, GPtrArray *extra,
                           GHashTable *metadata, GError **error);
/* Checks file holds every tensor of weights (StWeight*) with its declared
 * shape, and no other tensor except those whose names start with
 * extra_prefix (may be NULL).  The error names path and the tensor. */
gboolean st_weights_check (GPtrArray *weights, const StTensorFile *file, const char *path,
                           const char *extra_prefix, GError **error);
/* Copies the file's values into weights (after st_weights_check). */
void     st_weights_copy (GPtrArray *weights, const StTensorFile *file);

/* Every parameter of every stage of p, named "<stage>.<name>" with the
 * dims it was declared with (a PyTorch state_dict's names and shapes). */
gboolean st_pipeline_save_weights (StPipeline *p, const char *path,
                                   GHashTable *metadata, GError **error);
/* Loads a file into p's parameters: a missing or extra tensor, one whose
 * shape differs, or one holding NaN or infinity is refused with a message
 * naming it, and p is unchanged.  When p has no labels=, the class names
 * stored by training (__metadata__ "strata.labels") become its labels. */
gboolean st_pipeline_load_weights (StPipeline *p, const char *path, GError **error);

G_END_DECLS
