/* strata — the runner behind `strata run`: workers taking the planned jobs
 * (plan.c) one image at a time, whole or in strips (strips.c), signals,
 * and a classifier's predictions table. */
#include "runner.h"
#include "atomic.h"
#include "context.h"
#include "classifier.h"
#include "dist.h"
#include "dist-run.h"
#include "jsontext.h"
#include "param.h"
#include "plan.h"
#include "progress.h"
#include "strips.h"

#include <signal.h>
#include <string.h>

/* One run: the jobs, handed out in order, and what is said meanwhile. */
typedef struct {
  GMutex lock;
  GCond gate;                  /* workers wait here until every one has started */
  gboolean go, abandon;
  StProgress *progress;
  StDealer *dealer;            /* hands out job indices, over every MPI rank */
  guint finished;              /* jobs this process has finished */
  GPtrArray *jobs;
  const StRunOptions *opt;
  gboolean classify;
} Run;

/* ---- Interruption ----------------------------------------------------------
 * SIGINT or SIGTERM during a run stops the handing out of images; each
 * worker finishes or abandons the image it holds (a strip run checks between
 * strips), an abandoned output is discarded (see atomic.h: unfinished files
 * have no name), and the run returns with the rest counted as interrupted.
 * A second signal has its default effect. */

static volatile sig_atomic_t interrupted;
/* The run's options->interrupted and user_data, for the handler. */
static void (*volatile on_interrupt_func) (gpointer user_data);
static gpointer volatile on_interrupt_data;

static void
on_interrupt (int sig)
{
  (void) sig;
  interrupted = 1;
  if (on_interrupt_func)
    on_interrupt_func (on_interrupt_data);
}

static gboolean
check_interrupted (const StJob *job, GError **error)
{
  if (!interrupted)
    return FALSE;
  g_set_error (error, ST_ERROR, ST_ERROR_INTERRUPTED, "%s: interrupted", st_job_name (job));
  return TRUE;
}

/* ---- One image --------------------------------------------------------- */

static StTensor *
join_alpha (StTensor *colour, const StTensor *alpha)
{
  gsize plane = (gsize) colour->shape.h * colour->shape.w;
  StTensor *out = st_tensor_new0 (1, colour->shape.c + 1, colour->shape.h, colour->shape.w);
  memcpy (out->data, colour->data, plane * colour->shape.c * sizeof (float));
  memcpy (out->data + plane * colour->shape.c, alpha->data, plane * sizeof (float));
  return out;
}

static gboolean
classify_one (StPipeline *p, StRunContext *ctx, StJob *job, StTensor *image, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (StTensor) scores = st_pipeline_forward (p, ctx, image, FALSE, &local);
  if (!scores)
    {
      g_set_error (error, ST_ERROR, local->code, "%s: %s", st_job_name (job), local->message);
      return FALSE;
    }
  st_scores_to_probabilities (p, scores);
  job->probabilities = g_memdup2 (scores->data, sizeof (float) * scores->shape.c);
  return TRUE;
}


static gboolean
run_one (Run *run, StPipeline *p, StRunContext *ctx, StStripScratch *scratch, StJob *job,
         GError **error)
{
  if (run->classify)
    {
      StImageInfo info;
      g_autoptr (StTensor) image = st_image_load (job->input, run->opt->max_pixels, &info, error);
      if (!image)
        return FALSE;
      g_autoptr (StTensor) colour = info.has_alpha ? st_image_split_alpha (image, NULL) : NULL;
      return classify_one (p, ctx, job, colour ? colour : image, error);
    }

  StImageInfo info;
  int width, height, channels;
  g_autoptr (StImageReader) reader = st_image_reader_open (job->input, run->opt->max_pixels,
                                                           &info, &width, &height, &channels,
                                                           error);
  if (!reader)
    return FALSE;
  g_autoptr (StImageMetadata) metadata = run->opt->strip_metadata
                                           ? NULL : st_image_reader_take_metadata (reader);
  const StImageWriteOptions write = { metadata, run->opt->lossless };
  /* Standard input (or a name without an image extension) to standard
   * output keeps the format it came in. */
  if (job->format == ST_FORMAT_UNKNOWN)
    job->format = st_image_output_format (info.format);
  const guint64 min_pixels = run->opt->strip_min_pixels ? run->opt->strip_min_pixels
                                                        : STRIP_MIN_PIXELS;
  if ((guint64) width * (guint64) height > min_pixels)
    {
      const int colour = info.has_alpha ? channels - 1 : channels;
      const int halo = st_strip_halo (p, (StShape) { 1, colour, height, width });
      if (halo >= 0)
        {
          const StStripOptions strips = { run->opt->strip_rows, run->opt->jpeg_quality,
                                          check_interrupted, &write };
          return st_run_strips (p, ctx, scratch, job, reader, &info, width, height, channels,
                                halo, &strips, error);
        }
    }

  g_autoptr (StTensor) image = st_image_reader_read_all (reader, error);
  if (!image)
    return FALSE;
  g_clear_pointer (&reader, st_image_reader_close);
  g_autoptr (StTensor) alpha = NULL;
  if (info.has_alpha)
    {
      StTensor *colour = st_image_split_alpha (image, &alpha);
      st_tensor_free (image);
      image = colour;
    }

  g_autoptr (GError) local = NULL;
  g_autoptr (StTensor) out = st_pipeline_forward (p, ctx, image, FALSE, &local);
  if (!out)
    {
      g_set_error (error, ST_ERROR, local->code, "%s: %s", st_job_name (job), local->message);
      return FALSE;
    }
  if (!st_job_check_output_channels (job, out, error))
    return FALSE;
  /* Alpha passes through unchanged when the picture keeps its size. */
  if (alpha && out->shape.h == alpha->shape.h && out->shape.w == alpha->shape.w)
    {
      StTensor *joined = join_alpha (out, alpha);
      st_tensor_free (out);
      out = joined;
    }

  if (check_interrupted (job, error) || !st_job_make_output_folder (job, error))
    return FALSE;
  int depth = job->format == ST_FORMAT_PNG || job->format == ST_FORMAT_TIFF
              || job->format == ST_FORMAT_PNM ? info.bit_depth : 8;
  return st_image_save_with (out, job->output, job->format, depth, run->opt->jpeg_quality,
                             &write, error);
}

/* One worker's own pipeline copy and context, made before any thread
 * starts so that a failure stops the run before any image is read. */
typedef struct {
  Run *run;
  StPipeline *pipeline;
  StRunContext *ctx;
  GThread *thread;
} Worker;

static gpointer
worker (gpointer data)
{
  st_thread_unpin ();
  Worker *self = data;
  Run *run = self->run;
  StStripScratch scratch = { { NULL } };

  g_mutex_lock (&run->lock);
  while (!run->go && !run->abandon)
    g_cond_wait (&run->gate, &run->lock);
  gboolean abandon = run->abandon;
  g_mutex_unlock (&run->lock);

  while (!abandon && !interrupted)
    {
      g_mutex_lock (&run->lock);
      guint index;
      gboolean more = st_dealer_next (run->dealer, run->finished, &index);
      g_mutex_unlock (&run->lock);
      if (!more)
        break;
      StJob *job = run->jobs->pdata[index];

      StJobOutcome outcome;
      g_autoptr (GError) local = NULL;
      if (job->skip)
        outcome = ST_JOB_SKIPPED;
      else if (run_one (run, self->pipeline, self->ctx, &scratch, job, &local))
        outcome = ST_JOB_WRITTEN;
      else if (g_error_matches (local, ST_ERROR, ST_ERROR_INTERRUPTED))
        outcome = ST_JOB_INTERRUPTED;
      else
        outcome = ST_JOB_FAILED;

      g_mutex_lock (&run->lock);
      job->outcome = outcome;
      if (outcome == ST_JOB_FAILED)
        {
          st_progress_clear (run->progress);
          st_run_message (run->opt, "%s", local->message);
        }
      st_progress_step (run->progress);
      run->finished++;
      g_mutex_unlock (&run->lock);
    }
  st_strip_scratch_clear (&scratch);
  return NULL;
}

/* Rank 0 hears of images finished on other ranks. */
static void
on_remote_done (guint n, gpointer data)
{
  Run *run = data;
  g_mutex_lock (&run->lock);
  for (guint i = 0; i < n; i++)
    st_progress_step (run->progress);
  g_mutex_unlock (&run->lock);
}

static void
workers_free (Worker *workers, int n)
{
  for (int i = 0; i < n; i++)
    {
      st_run_context_free (workers[i].ctx);
      st_pipeline_free (workers[i].pipeline);
    }
  g_free (workers);
}

/* Runs the planned jobs on n_workers workers (the calling thread is one)
 * of threads_per_worker threads each, with SIGINT and SIGTERM caught
 * meanwhile.  FALSE with error set when a worker cannot be started; no
 * image has been read then. */
static gboolean
run_jobs (Run *run, StPipeline *pipeline, int n_workers, int threads_per_worker,
          GError **error)
{
  Worker *workers = g_new0 (Worker, n_workers);
  for (int i = 0; i < n_workers; i++)
    {
      workers[i].run = run;
      workers[i].pipeline = st_pipeline_copy (pipeline, error);
      if (!workers[i].pipeline)
        {
          workers_free (workers, n_workers);
          return FALSE;
        }
      workers[i].ctx = st_run_context_try_new (threads_per_worker, 0, error);
      if (!workers[i].ctx)
        {
          workers_free (workers, n_workers);
          return FALSE;
        }
    }

  interrupted = 0;
  on_interrupt_func = run->opt->interrupted;
  on_interrupt_data = run->opt->user_data;
  /* SA_RESTART: a read from a pipe that the signal breaks into goes on,
   * so the image is abandoned as interrupted, not failed as unreadable. */
  struct sigaction action = { .sa_handler = on_interrupt, .sa_flags = SA_RESETHAND | SA_RESTART };
  sigemptyset (&action.sa_mask);
  struct sigaction old_int, old_term;
  sigaction (SIGINT, &action, &old_int);
  sigaction (SIGTERM, &action, &old_term);

  int started = 1;
  g_autoptr (GError) local = NULL;
  for (; started < n_workers; started++)
    {
      workers[started].thread = g_thread_try_new ("strata-run", worker, &workers[started], &local);
      if (!workers[started].thread)
        break;
    }
  g_mutex_lock (&run->lock);
  run->go = started == n_workers;
  run->abandon = !run->go;
  g_cond_broadcast (&run->gate);
  g_mutex_unlock (&run->lock);
  if (run->go)
    worker (&workers[0]);
  for (int i = 1; i < started; i++)
    g_thread_join (workers[i].thread);

  sigaction (SIGINT, &old_int, NULL);
  sigaction (SIGTERM, &old_term, NULL);
  workers_free (workers, n_workers);
  if (local)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_FAILED,
                   "cannot start worker thread %d of %d: %s (ask for fewer with -j)",
                   started + 1, n_workers, local->message);
      return FALSE;
    }
  return TRUE;
}

/* CSV fields with commas, quotes or line breaks are quoted (RFC 4180). */
static void
append_csv_field (GString *s, const char *field)
{
  if (!strpbrk (field, ",\"\r\n"))
    {
      g_string_append (s, field);
      return;
    }
  g_string_append_c (s, '"');
  for (const char *c = field; *c; c++)
    {
      if (*c == '"')
        g_string_append_c (s, '"');
      g_string_append_c (s, *c);
    }
  g_string_append_c (s, '"');
}

/* One JSON object on one line: {"path", "label", "probability", "top": [...]}. */
static void
append_json_line (GString *s, const char *path, char **names, const float *probs,
                  const int *order, int k)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "path");
  json_builder_add_string_value (b, path);
  json_builder_set_member_name (b, "label");
  json_builder_add_string_value (b, names[order[0]]);
  json_builder_set_member_name (b, "probability");
  json_builder_add_double_value (b, probs[order[0]]);
  json_builder_set_member_name (b, "top");
  json_builder_begin_array (b);
  for (int i = 0; i < k; i++)
    {
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "label");
      json_builder_add_string_value (b, names[order[i]]);
      json_builder_set_member_name (b, "probability");
      json_builder_add_double_value (b, probs[order[i]]);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
  g_autofree char *text = st_json_builder_to_text (b);
  g_string_append (s, text);
  g_string_append_c (s, '\n');
}

/* One row per image that ran, in input order: the path, the best label and
 * its probability, then the top k labels with theirs.  Where no image ran
 * (every one failed) no file is written: a table of no rows would replace
 * an earlier run's table and say nothing. */
static gboolean
write_predictions (const StPipeline *p, GPtrArray *jobs, const StRunOptions *opt,
                   const char *path, GError **error)
{
  int n_classes = st_pipeline_output_shape (p).c;
  int k = MIN (opt->top_k > 0 ? opt->top_k : 5, n_classes);
  g_auto (GStrv) names = st_pipeline_class_names (p, NULL);
  g_autoptr (GString) out = g_string_new (NULL);
  if (!opt->jsonl)
    {
      g_string_append (out, "path,label,probability");
      for (int i = 2; i <= k; i++)
        g_string_append_printf (out, ",label_%d,probability_%d", i, i);
      g_string_append_c (out, '\n');
    }
  g_autofree int *order = g_new (int, n_classes);
  guint rows = 0;
  for (guint j = 0; j < jobs->len; j++)
    {
      StJob *job = jobs->pdata[j];
      if (!job->probabilities)
        continue;
      rows++;
      for (int c = 0; c < n_classes; c++)
        order[c] = c;
      /* Top k by probability; ties keep class order. */
      for (int a = 0; a < k; a++)
        for (int b = a + 1; b < n_classes; b++)
          if (job->probabilities[order[b]] > job->probabilities[order[a]])
            {
              int t = order[a];
              order[a] = order[b];
              order[b] = t;
            }
      if (opt->jsonl)
        append_json_line (out, job->input, names, job->probabilities, order, k);
      else
        {
          append_csv_field (out, job->input);
          for (int i = 0; i < k; i++)
            {
              g_string_append_c (out, ',');
              append_csv_field (out, names[order[i]]);
              g_string_append_printf (out, ",%.6f", job->probabilities[order[i]]);
            }
          g_string_append_c (out, '\n');
        }
    }
  if (!path)
    {
      if (opt->predictions)
        opt->predictions (out->str, opt->user_data);
      return TRUE;
    }
  if (rows == 0)
    return TRUE;
  StAtomicFile *file = st_atomic_file_new (path, ST_ERROR_IO, ST_ATOMIC_FILE_SYNC, error);
  if (!file)
    return FALSE;
  /* A short write leaves the stream's error indicator set: commit reports it. */
  fwrite (out->str, 1, out->len, st_atomic_file_stream (file));
  return st_atomic_file_commit (file, error);
}

gboolean
st_run_images (StPipeline *pipeline, const char *const *inputs,
               const StRunOptions *opt, StRunSummary *summary, GError **error)
{
  memset (summary, 0, sizeof *summary);
  const gboolean classify = st_pipeline_is_classifier (pipeline);
  const int n_inputs = inputs ? g_strv_length ((char **) inputs) : 0;
  if (n_inputs == 0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE, "no input images given");
      return FALSE;
    }
  if (opt->jobs > ST_MAX_THREADS)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE, "%d threads asked for; at most %d are allowed",
                   opt->jobs, ST_MAX_THREADS);
      return FALSE;
    }

  StJobPlan plan = { 0 };
  if (!st_dist_plan_jobs (inputs, opt, classify, &plan, error))
    return FALSE;
  g_autoptr (GPtrArray) jobs = g_steal_pointer (&plan.jobs);
  const char *predictions = plan.predictions;
  if (jobs->len == 0)
    {
      summary->failed = plan.failed;
      summary->ignored = plan.ignored;
      return TRUE;
    }

  int threads = opt->jobs > 0 ? opt->jobs : st_default_threads ();
  int workers = MAX (1, MIN (threads, (int) jobs->len));
  /* Several MPI ranks: one progress line, rank 0's, counting every rank's. */
  g_autoptr (StProgress) progress = st_progress_new (jobs->len, "img",
                                                     opt->quiet || st_dist_rank () != 0
                                                     ? NULL : opt->progress,
                                                     opt->user_data);
  Run run = {
    .jobs = jobs,
    .opt = opt,
    .progress = progress,
    .classify = classify,
  };
  g_mutex_init (&run.lock);
  g_cond_init (&run.gate);
  /* Runs of a few images at a time: ranks ask rank 0 seldom, yet the
   * last images still spread over the ranks. */
  guint deal = CLAMP (jobs->len / (4u * workers * st_dist_size ()), 1, 16);
  run.dealer = st_dealer_new (jobs->len, st_dist_active () ? deal : 1, on_remote_done, &run);
  /* Fewer images than threads: the spare threads work inside each image. */
  gboolean ok = run_jobs (&run, pipeline, workers, MAX (1, threads / workers), error);
  st_dealer_free (run.dealer, run.finished);
  if (ok)
    st_dist_merge_jobs (jobs, classify ? st_pipeline_output_shape (pipeline).c : 0);
  g_mutex_clear (&run.lock);
  g_cond_clear (&run.gate);
  if (!ok)
    return FALSE;
  st_progress_finish (progress);

  for (guint i = 0; i < jobs->len; i++)
    {
      const StJob *job = jobs->pdata[i];
      switch (job->outcome)
        {
        case ST_JOB_WRITTEN:
          summary->written++;
          summary->in_strips += job->in_strips;
          break;
        case ST_JOB_SKIPPED:
          summary->skipped++;
          break;
        case ST_JOB_FAILED:
          summary->failed++;
          break;
        case ST_JOB_PENDING:
        case ST_JOB_INTERRUPTED:
          summary->interrupted++;
          break;
        }
    }
  summary->failed += plan.failed;
  summary->ignored = plan.ignored;
  /* Predictions of an interrupted run are not written: a table that
   * looks complete would mislead. */
  if (classify && !summary->interrupted && st_dist_rank () == 0)
    return write_predictions (pipeline, jobs, opt, predictions, error);
  return TRUE;
}
