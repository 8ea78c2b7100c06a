/* strata — planning a run: every job (input, output, format) found and
 * checked before the first image is read. */
#pragma once

#include "runner.h"

G_BEGIN_DECLS

typedef enum {
  ST_JOB_PENDING,             /* not run (yet): interrupted if still so at the end */
  ST_JOB_WRITTEN,
  ST_JOB_SKIPPED,
  ST_JOB_FAILED,
  ST_JOB_INTERRUPTED,
} StJobOutcome;

typedef struct {
  char *input;                 /* a path, or "-" for standard input */
  char *output;                /* a path, or "-" for standard output */
  StImageFormat format;        /* ST_FORMAT_UNKNOWN: the input's, once decoded */
  gboolean skip;               /* the output exists and --overwrite was not given */
  StJobOutcome outcome;
  float *probabilities;        /* classifiers: one per class, once run */
  gboolean in_strips;          /* ran in strips of rows */
} StJob;

void        st_job_free (gpointer job);
/* Says one line through options->message, when there is one. */
void        st_run_message (const StRunOptions *opt, const char *fmt, ...) G_GNUC_PRINTF (2, 3);
/* How an input is named in messages. */
const char *st_job_name (const StJob *job);

typedef struct {
  GPtrArray *jobs;             /* StJob, in input order, repeats dropped */
  const char *predictions;     /* a classifier's file; NULL: standard output */
  guint failed;                /* inputs that are missing or cannot be read, reported */
  guint ignored;               /* files in folders that are not images (ignore_file) */
} StJobPlan;

/* Plans the jobs of st_run_images (see runner.h): resolves where the
 * outputs go, searches the folders, refuses outputs that would replace an
 * input or be written from several inputs, and makes sure the output
 * folder can be written.  No jobs and some failed inputs is no error. */
gboolean st_plan_jobs (const char *const *inputs, const StRunOptions *opt, gboolean classify,
                       StJobPlan *plan, GError **error);
void     st_job_plan_clear (StJobPlan *plan);

/* Creates the folder of job's output (before its first row is written). */
gboolean st_job_make_output_folder (const StJob *job, GError **error);
/* An image out has 1 or 3 channels (alpha is added back by the runner). */
gboolean st_job_check_output_channels (const StJob *job, const StTensor *out, GError **error);

G_END_DECLS
