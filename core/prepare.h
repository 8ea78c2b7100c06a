/* strata — a dataset prepared for a pipeline: IDX files or a folder of
 * class folders, through the pipeline's preparation stages (grayscale,
 * resize, ...), checked against the shape its learnable stages take. */
#pragma once

#include "dataset.h"
#include "pipeline.h"

G_BEGIN_DECLS

/* Samples ready for the part of p after its cached stages: dir holds
 * IDX files (st_dataset_is_idx_dir: the training or, with test_set, the
 * test set) or class folders (st_dataset_load_folder, with p's labels as
 * the classes).  limit > 0 keeps only the first limit samples.  An IDX
 * set whose images do not fit p's input is refused from its header, before
 * its data is read; images with alpha give their colour only.  message
 * (when not NULL) is told each file skipped, and their count. */
StDataset *st_dataset_prepare (StPipeline *p, const char *dir, gboolean test_set, int limit,
                               int threads, guint64 max_pixels, StMessageFunc message,
                               gpointer user_data, GError **error);

/* The leading stages whose output a prepared dataset holds: the
 * preparation prefix (st_pipeline_prefix_length) up to its first random
 * stage (ST_KIND_RANDOM), which must draw anew every epoch.  Training and
 * evaluation run the stages from there on. */
int st_dataset_cached_stages (StPipeline *p);

/* Applies the cached stages (st_dataset_cached_stages) to every sample of
 * ds in place, so that training batches only the rest. */
gboolean st_dataset_apply_prefix (StDataset *ds, StPipeline *p, int threads, GError **error);

G_END_DECLS
