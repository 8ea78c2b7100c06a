/* strata — running a pipeline over files and folders. */
#pragma once

#include "pipeline.h"
#include "image.h"

G_BEGIN_DECLS

typedef struct {
  const char *output;          /* -o: a file (one input image) or a folder */
  StImageFormat format;        /* ST_FORMAT_UNKNOWN keeps each input's format */
  int jpeg_quality;            /* 1-100 */
  int jobs;                    /* threads in all; <= 0: one per core */
  gboolean overwrite;
  gboolean quiet;              /* no progress bar and no summary */
  guint64 max_pixels;
  /* Classifiers (pipelines ending in class scores) write predictions to
   * output ("-" or NULL: standard output) instead of images. */
  gboolean jsonl;              /* JSON lines instead of CSV */
  int top_k;                   /* labels listed per image; <= 0: 5 */
  /* An image of more than strip_min_pixels pixels runs in strips of
   * strip_rows output rows when every stage is local (DESIGN.md, halo);
   * 0 picks the defaults (64K pixels; 32 rows or more), G_MAXUINT64 keeps
   * every image whole. */
  int strip_rows;
  guint64 strip_min_pixels;
} StRunOptions;

typedef struct {
  guint written, skipped, failed;
  guint in_strips;             /* of those written, how many ran in strips */
} StRunSummary;

/* Whether p ends in class scores (Cx1x1) rather than an image. */
gboolean st_pipeline_is_classifier (const StPipeline *p);

/* Runs p on every image named by inputs (files, or folders searched
 * recursively for .png, .jpg and .jpeg).  Each failing image is reported on
 * stderr as "path: reason" and counted; the others still run.  Returns FALSE
 * with error set only for problems that stop the whole run (no images, a bad
 * output path). */
gboolean st_run_images (StPipeline *p, const char *const *inputs,
                        const StRunOptions *options, StRunSummary *summary,
                        GError **error);

G_END_DECLS
