/* strata — pipelines: stages wired into a graph from a pipeline file. */
#pragma once

#include <strata/strata.h>
#include "registry.h"

G_BEGIN_DECLS

typedef struct _StPipeline StPipeline;

/* PIPELINE as the command line takes it: an existing file, an installed
 * pipeline's name ("sharpen"), or an inline chain ("grayscale ! kernel
 * preset=emboss").  Everything is checked, shapes included, before return;
 * every error names the file (or "inline pipeline"), the stage and the key. */
StPipeline *st_pipeline_load (StRegistry *reg, const char *spec, GError **error);
StPipeline *st_pipeline_load_file (StRegistry *reg, const char *path, GError **error);
/* The installed pipelines' names (NAME.ini on the search path that
 * st_pipeline_load uses for a name), sorted, each once (char*; the
 * caller's, g_ptr_array_unref). */
GPtrArray  *st_pipeline_installed_names (void);
/* The file of the installed pipeline name, or NULL. */
char       *st_pipeline_find_installed (const char *name);
/* A key file given as text; display_name stands for the file in errors. */
StPipeline *st_pipeline_load_data (StRegistry *reg, const char *data,
                                   const char *display_name, GError **error);
StPipeline *st_pipeline_load_inline (StRegistry *reg, const char *chain, GError **error);
/* A fresh, independent copy (for another worker thread). */
StPipeline *st_pipeline_copy (const StPipeline *p, GError **error);
void        st_pipeline_free (StPipeline *p);

const char *st_pipeline_name (const StPipeline *p);         /* file or "inline pipeline" */
const char *st_pipeline_description (const StPipeline *p);  /* may be NULL */
/* The fixed input [1, C, H, W] from "input=", FALSE when the pipeline takes any image. */
gboolean    st_pipeline_fixed_input (const StPipeline *p, StShape *shape);
const char *const *st_pipeline_labels (const StPipeline *p); /* NULL-terminated or NULL */
/* Replaces the labels (copied; NULL for none): a weights file's class names. */
void        st_pipeline_set_labels (StPipeline *p, const char *const *labels);
const char *st_pipeline_weights_path (const StPipeline *p); /* resolved, or NULL */

int       st_pipeline_n_stages (const StPipeline *p);
StStage  *st_pipeline_stage (const StPipeline *p, int index);   /* in run order */
/* Names of a stage's inputs ("image" for the pipeline input). */
const char *const *st_pipeline_stage_inputs (const StPipeline *p, int index);

/* Every stage's weights (StWeight*: name, value, gradient,
 * trainable), stages in run order and each stage's in declaration order:
 * the one list that training, the optimiser, checkpoints, weights files,
 * drawing and inspect walk.  The array is the caller's (g_ptr_array_unref);
 * the tensors stay the stages'. */
GPtrArray *st_pipeline_weights (const StPipeline *p);

/* Infers every stage's shape for this input shape ([N, C, H, W], the batch
 * included) and checks its working memory against st_memory_limit(): the
 * input, the parameters, and each stage's output beside those still to be
 * read.  Fails with ST_ERROR_MEMORY naming the stage and the bytes, before
 * anything is allocated.  When the pipeline has a fixed input (input=) and
 * its stages do not take this other shape, the ST_ERROR_SHAPE message says
 * both shapes and how to convert, rather than what the stage found. */
gboolean  st_pipeline_prepare (StPipeline *p, StShape input, GError **error);
/* Shape inference alone, without the memory bound: for a caller that
 * looks at the shapes to decide how to cut the input (into strips), and
 * then prepares the parts it runs. */
gboolean  st_pipeline_infer_shapes (StPipeline *p, StShape input, GError **error);
StShape   st_pipeline_output_shape (const StPipeline *p);

/* Runs the graph on input and returns the last stage's output.  With
 * keep_activations the per-stage outputs stay available for backward and
 * st_pipeline_activation(); all of them together are then bounded by
 * st_memory_limit() (ST_ERROR_MEMORY). */
StTensor *st_pipeline_forward (StPipeline *p, const StRunContext *ctx,
                               const StTensor *input, gboolean keep_activations,
                               GError **error);
/* Back-propagates grad_output through the last forward (which must have kept
 * its activations), accumulating parameter gradients. */
gboolean  st_pipeline_backward (StPipeline *p, const StRunContext *ctx,
                                const StTensor *grad_output, GError **error);
const StTensor *st_pipeline_activation (const StPipeline *p, int index);

/* The number of leading stages (in run order) that only prepare the input:
 * no parameters, one input, and nothing after them reads anything but the
 * last of them.  Training runs them once per sample and batches the rest. */
int       st_pipeline_prefix_length (const StPipeline *p);
/* Stages first..last alone, input standing for the output of stage
 * first - 1 (the image when first is 0). */
gboolean  st_pipeline_prepare_range (StPipeline *p, StShape input, int first, int last,
                                     GError **error);
StTensor *st_pipeline_forward_range (StPipeline *p, const StRunContext *ctx,
                                     const StTensor *input, int first, int last,
                                     gboolean keep_activations, GError **error);
/* Called by backward once it is done with stage and every stage after
 * it (so their weights' gradients are final), from the last stage down;
 * NULL for none. */
typedef void (*StBackwardHook) (int stage, gpointer user_data);
void      st_pipeline_set_backward_hook (StPipeline *p, StBackwardHook hook, gpointer user_data);
/* Back-propagates from stage last (within the last forward's range). */
gboolean  st_pipeline_backward_range (StPipeline *p, const StRunContext *ctx,
                                      const StTensor *grad_output, int last, GError **error);

G_END_DECLS
