/* strata — what a pipeline is as a classifier, asked in one place by run,
 * train, eval and inspect: whether it ends in class scores, what its
 * classes are called, and its scores as probabilities. */
#pragma once

#include "pipeline.h"

G_BEGIN_DECLS

/* Whether p ends in class scores (Cx1x1, C >= 2) rather than an image. */
gboolean st_pipeline_is_classifier (const StPipeline *p);

/* Whether p's last stage outputs probabilities (its kind has
 * ST_KIND_OUTPUTS_PROBABILITIES): training then fuses that stage with the
 * loss, and its output needs no softmax of its own. */
gboolean st_pipeline_ends_in_probabilities (const StPipeline *p);

/* The name of each of p's C output classes (C = its output channels),
 * NULL-terminated, owned by the caller: the pipeline's labels (labels= or
 * a weights file's strata.labels), else fallback's (the data's class
 * folders; may be NULL) where it has one for that class, else the class
 * number, "0", "1", ... */
char **st_pipeline_class_names (const StPipeline *p, const char *const *fallback);

/* Softmax probabilities, in place, from the pipeline's output scores
 * [N, C, 1, 1]: unchanged when its last stage already outputs
 * probabilities. */
void st_scores_to_probabilities (const StPipeline *p, StTensor *scores);

G_END_DECLS
