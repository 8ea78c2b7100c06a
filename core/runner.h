/* strata — running a pipeline over files and folders. */
#pragma once

#include "classifier.h"
#include "pipeline.h"
#include "image.h"
#include "progress.h"

G_BEGIN_DECLS

typedef struct {
  /* -o: "-" (standard output: one image), a folder (one that exists, a
   * name ending in '/', or any name when there are several inputs or a
   * folder among them), or else the output image, named .png, .jpg or
   * .jpeg. */
  const char *output;
  StImageFormat format;        /* ST_FORMAT_UNKNOWN keeps each input's format */
  int jpeg_quality;            /* 1-100 */
  int jobs;                    /* threads in all, at most ST_MAX_THREADS; <= 0: st_default_threads () */
  gboolean overwrite;
  gboolean quiet;              /* no progress line (the summary is the caller's) */
  guint64 max_pixels;
  /* Classifiers (pipelines ending in class scores) write predictions to
   * output ("-" or NULL: the predictions callback below) instead of images. */
  gboolean jsonl;              /* JSON lines instead of CSV */
  int top_k;                   /* labels listed per image; <= 0: 5 */
  /* An image of more than strip_min_pixels pixels runs in strips of
   * strip_rows output rows when every stage is local (DESIGN.md, halo);
   * 0 picks the defaults (64K pixels; 32 rows or more), G_MAXUINT64 keeps
   * every image whole. */
  int strip_rows;
  guint64 strip_min_pixels;
  /* What the run has to say; the library writes nothing itself.  Each is
   * optional (NULL: not said) and gets user_data.  message: one line, no
   * newline: an input that cannot be used, a symbolic link loop, a planned
   * output refused, an image that failed ("path: reason"); called from any
   * thread, one call at a time.  progress: the progress line (progress.h);
   * not called when quiet.  interrupted: the first SIGINT or SIGTERM of
   * the run, called from the signal handler: only async-signal-safe calls
   * (write(2)) may be made there. */
  StMessageFunc message;
  StProgressFunc progress;
  void (*interrupted) (gpointer user_data);
  gpointer user_data;
  /* A classifier's whole table (CSV or JSON lines) when output is NULL or
   * "-", for the caller to write to standard output; NULL: not written. */
  void (*predictions) (const char *table, gpointer user_data);
  /* Also name, through message, each file in a folder that is ignored
   * because no image format has its extension. */
  gboolean verbose;
  /* Write no metadata (ICC profile, EXIF, XMP); otherwise each output
   * keeps what its input holds, where its format can store it. */
  gboolean strip_metadata;
  /* WebP outputs lossless; JPEG outputs refused (PNG, TIFF and PNM are
   * lossless anyway). */
  gboolean lossless;
} StRunOptions;

typedef struct {
  guint written, skipped, failed;
  guint interrupted;           /* not run, or abandoned, after SIGINT or SIGTERM */
  guint in_strips;             /* of those written, how many ran in strips */
  guint ignored;               /* files in input folders that are not images */
} StRunSummary;

/* Runs p on every image named by inputs: files ("-" is standard input)
 * and folders, searched recursively for files with an image format's
 * extension (the others counted in summary->ignored; each folder
 * once; symbolic link loops reported and not followed; the output folder
 * left out).  Every job is planned first: an output that is an input, or
 * one output of several inputs, stops the run before anything is read
 * (each named through options->message), as does an output folder that
 * cannot be written.  Each failing image is then said as "path: reason"
 * and counted; the others still run.  SIGINT and SIGTERM stop the run early
 * (summary->interrupted), leaving only complete outputs.  Returns FALSE
 * with error set only for problems that stop the whole run. */
gboolean st_run_images (StPipeline *p, const char *const *inputs,
                        const StRunOptions *options, StRunSummary *summary,
                        GError **error);

G_END_DECLS
