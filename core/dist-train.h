/* strata — data-parallel training over MPI ranks (dist.h): each rank runs
 * its part of every batch, gradients are summed over the ranks, and every
 * rank takes the same optimiser step. */
#pragma once

#include <strata/strata.h>

#include "pipeline.h"
#include "train-options.h"

G_BEGIN_DECLS

/* This rank's part of a batch of *count samples from *start: parts of
 * whole samples differing by at most one, the larger to the lower ranks
 * (so rank 0's is never empty).  Returns the part's share of the batch,
 * by which its mean gradient is weighed; a rank left without samples runs
 * the batch's first one with a share of 0. */
double   st_dist_batch_part (int *start, int *count);
/* The batch's loss and correct count summed over the ranks (a rank with a
 * share of 0 adds nothing); the logits' gradient, a mean over this
 * rank's part, weighed by its share. */
void     st_dist_batch_sums (double *loss, int *correct, StTensor *logits_grad, double share);
/* After backward: every trainable weight's gradient summed over the
 * ranks; the other weights (running statistics) made rank 0's, as
 * PyTorch's DistributedDataParallel broadcasts its buffers. */
void     st_dist_sum_gradients (GPtrArray *weights);
/* The gradients summed in buckets while backward still runs, as
 * PyTorch's DistributedDataParallel does: the stages' trainable weights,
 * from the last stage's to the first's, are cut into buckets of about
 * STRATA_BUCKET_KB kilobytes (256 by default; 0: one sum after backward,
 * st_dist_sum_gradients).  The cuts depend on the weights alone, and each
 * bucket's sum is started as soon as backward has passed the stages of
 * its weights.  NULL when alone. */
typedef struct StGradBuckets StGradBuckets;

StGradBuckets *st_grad_buckets_new (StPipeline *p, GPtrArray *weights);
void     st_grad_buckets_free (StGradBuckets *buckets);
/* st_pipeline_set_backward_hook's hook: backward is done with stage and
 * every stage after it. */
void     st_grad_buckets_stage_done (int stage, gpointer buckets);
/* After backward: every bucket's sum (started now if not yet), as
 * st_dist_sum_gradients leaves the weights. */
void     st_grad_buckets_finish (StGradBuckets *buckets);
/* Only rank 0 writes the weights, log and plot: the others forget
 * their names. */
void     st_dist_train_outputs (StTrainOptions *opt);
/* Before the first step: every rank must start from rank 0's number of
 * training samples and weights (fresh from the seed, or a checkpoint's),
 * or a machine holding another copy of the data or the pipeline would
 * train apart unseen.  FALSE with error set, on every rank, when not. */
gboolean st_dist_check_start (GPtrArray *weights, int n_samples, GError **error);
/* With STRATA_CHECK_REPLICAS set: compares a hash of every weight across
 * the ranks after an epoch; FALSE with error set when one differs. */
gboolean st_dist_check_replicas (GPtrArray *weights, int epoch, GError **error);

G_END_DECLS
