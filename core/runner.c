/* strata — the runner behind `strata run`: jobs, workers, progress. */
#include "runner.h"
#include "context.h"
#include "param.h"

#include <glib/gstdio.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  char *input;
  char *output;
  StImageFormat format;
} Job;

static void
job_free (gpointer p)
{
  Job *job = p;
  g_free (job->input);
  g_free (job->output);
  g_free (job);
}

static gboolean
is_image_name (const char *name)
{
  return st_image_format_from_name (name) != ST_FORMAT_UNKNOWN;
}

static char *
replace_extension (const char *path, StImageFormat format)
{
  const char *dot = strrchr (path, '.');
  const char *slash = strrchr (path, '/');
  gsize stem = dot && (!slash || dot > slash) ? (gsize) (dot - path) : strlen (path);
  return g_strdup_printf ("%.*s%s", (int) stem, path, format == ST_FORMAT_PNG ? ".png" : ".jpg");
}

static void
add_job (GPtrArray *jobs, const char *input, const char *output, const StRunOptions *opt)
{
  Job *job = g_new0 (Job, 1);
  job->input = g_strdup (input);
  job->format = opt->format ? opt->format : st_image_format_from_name (input);
  if (opt->format && st_image_format_from_name (output) != opt->format)
    job->output = replace_extension (output, opt->format);
  else
    job->output = g_strdup (output);
  g_ptr_array_add (jobs, job);
}

static void
collect_folder (GPtrArray *jobs, const char *dir, const char *out_dir,
                const StRunOptions *opt)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  if (!d)
    return;
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  while ((name = g_dir_read_name (d)))
    g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, st_compare_strings);
  for (guint i = 0; i < names->len; i++)
    {
      const char *n = *(char **) &names->pdata[i];
      if (n[0] == '.')
        continue;
      g_autofree char *path = g_build_filename (dir, n, NULL);
      g_autofree char *out = g_build_filename (out_dir, n, NULL);
      if (g_file_test (path, G_FILE_TEST_IS_DIR))
        collect_folder (jobs, path, out, opt);
      else if (is_image_name (n))
        add_job (jobs, path, out, opt);
    }
}

/* ---- Progress ---------------------------------------------------------- */

typedef struct {
  GMutex lock;
  guint total, done;
  StRunSummary summary;
  gint64 start_us, last_draw_us;
  gboolean show;
  guint next_job;
  GPtrArray *jobs;
  StPipeline *pipeline;
  const StRunOptions *opt;
  int threads_per_worker;
} Run;

static void
clear_line (Run *run)
{
  if (run->show)
    fputs ("\r\033[K", stderr);
}

static void
draw_progress (Run *run, gboolean force)
{
  gint64 now = g_get_monotonic_time ();
  if (!run->show || (!force && now - run->last_draw_us < 100000))
    return;
  run->last_draw_us = now;
  double elapsed = (now - run->start_us) / 1e6;
  double rate = elapsed > 0 ? run->done / elapsed : 0;
  int width = 30, filled = run->total ? (int) ((double) width * run->done / run->total) : 0;
  char bar[64];
  for (int i = 0; i < width; i++)
    bar[i] = i < filled ? '#' : '-';
  bar[width] = '\0';
  double left = rate > 0 ? (run->total - run->done) / rate : 0;
  fprintf (stderr, "\r\033[K[%s] %u/%u  %.1f img/s  %d:%02d left", bar, run->done,
           run->total, rate, (int) left / 60, (int) left % 60);
  fflush (stderr);
}

static void
report_failure (Run *run, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static void
report_failure (Run *run, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  clear_line (run);
  fprintf (stderr, "%s\n", msg);
}

/* ---- One image --------------------------------------------------------- */

static gboolean
same_file (const char *a, const char *b)
{
  GStatBuf sa, sb;
  return g_stat (a, &sa) == 0 && g_stat (b, &sb) == 0 && sa.st_dev == sb.st_dev
         && sa.st_ino == sb.st_ino;
}

/* Splits off the alpha channel so that filters see colour only. */
static StTensor *
split_alpha (StTensor **image)
{
  StTensor *in = *image;
  int c = in->shape.c - 1;
  gsize plane = (gsize) in->shape.h * in->shape.w;
  StTensor *colour = st_tensor_new0 (1, c, in->shape.h, in->shape.w);
  StTensor *alpha = st_tensor_new0 (1, 1, in->shape.h, in->shape.w);
  memcpy (colour->data, in->data, plane * c * sizeof (float));
  memcpy (alpha->data, in->data + plane * c, plane * sizeof (float));
  st_tensor_free (in);
  *image = colour;
  return alpha;
}

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
run_one (Run *run, StPipeline *p, StRunContext *ctx, Job *job, GError **error)
{
  StImageInfo info;
  g_autoptr (StTensor) image = st_image_load (job->input, run->opt->max_pixels, &info, error);
  if (!image)
    return FALSE;
  g_autoptr (StTensor) alpha = info.has_alpha ? split_alpha (&image) : NULL;

  g_autoptr (GError) local = NULL;
  g_autoptr (StTensor) out = st_pipeline_forward (p, ctx, image, FALSE, &local);
  if (!out)
    {
      g_set_error (error, ST_ERROR, local->code, "%s: %s", job->input, local->message);
      return FALSE;
    }
  if (out->shape.c != 1 && out->shape.c != 3)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                   "%s: the pipeline's output has %d channels; an image needs 1 or 3",
                   job->input, out->shape.c);
      return FALSE;
    }
  /* Alpha passes through unchanged when the picture keeps its size. */
  if (alpha && out->shape.h == alpha->shape.h && out->shape.w == alpha->shape.w)
    {
      StTensor *joined = join_alpha (out, alpha);
      st_tensor_free (out);
      out = joined;
    }

  g_autofree char *dir = g_path_get_dirname (job->output);
  if (g_mkdir_with_parents (dir, 0777) != 0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IO, "%s: cannot create folder: %s", dir,
                   g_strerror (errno));
      return FALSE;
    }
  int depth = job->format == ST_FORMAT_PNG ? info.bit_depth : 8;
  return st_image_save (out, job->output, job->format, depth, run->opt->jpeg_quality, error);
}

static gpointer
worker (gpointer data)
{
  Run *run = data;
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_copy (run->pipeline, &error);
  StRunContext *ctx = st_run_context_new (run->threads_per_worker, 0);

  for (;;)
    {
      g_mutex_lock (&run->lock);
      guint index = run->next_job++;
      g_mutex_unlock (&run->lock);
      if (index >= run->jobs->len)
        break;
      Job *job = run->jobs->pdata[index];

      int outcome;  /* 0 written, 1 skipped, 2 failed */
      g_autoptr (GError) local = NULL;
      if (!p)
        {
          outcome = 2;
          local = g_error_copy (error);
        }
      else if (same_file (job->input, job->output))
        {
          outcome = 2;
          g_set_error (&local, ST_ERROR, ST_ERROR_IO,
                       "%s: refusing to overwrite the input image", job->input);
        }
      else if (!run->opt->overwrite && g_file_test (job->output, G_FILE_TEST_EXISTS))
        outcome = 1;
      else
        outcome = run_one (run, p, ctx, job, &local) ? 0 : 2;

      g_mutex_lock (&run->lock);
      run->done++;
      if (outcome == 0)
        run->summary.written++;
      else if (outcome == 1)
        run->summary.skipped++;
      else
        {
          run->summary.failed++;
          report_failure (run, "%s", local->message);
        }
      draw_progress (run, FALSE);
      g_mutex_unlock (&run->lock);
    }
  st_run_context_free (ctx);
  st_pipeline_free (p);
  return NULL;
}

gboolean
st_run_images (StPipeline *pipeline, const char *const *inputs,
               const StRunOptions *opt, StRunSummary *summary, GError **error)
{
  memset (summary, 0, sizeof *summary);
  if (!opt->output)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE, "no output given (expected -o FILE or -o FOLDER)");
      return FALSE;
    }
  int n_inputs = inputs ? g_strv_length ((char **) inputs) : 0;
  if (n_inputs == 0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE, "no input images given");
      return FALSE;
    }

  /* One image file in, and -o is not a folder: -o names the output file. */
  gboolean single = n_inputs == 1 && g_file_test (inputs[0], G_FILE_TEST_IS_REGULAR)
                    && !g_file_test (opt->output, G_FILE_TEST_IS_DIR)
                    && is_image_name (opt->output);
  g_autoptr (GPtrArray) jobs = g_ptr_array_new_with_free_func (job_free);
  guint missing = 0;
  for (int i = 0; i < n_inputs; i++)
    {
      if (g_file_test (inputs[i], G_FILE_TEST_IS_DIR))
        collect_folder (jobs, inputs[i], opt->output, opt);
      else if (g_file_test (inputs[i], G_FILE_TEST_IS_REGULAR))
        {
          g_autofree char *base = g_path_get_basename (inputs[i]);
          g_autofree char *out = single ? g_strdup (opt->output)
                                        : g_build_filename (opt->output, base, NULL);
          add_job (jobs, inputs[i], out, opt);
          if (single && !opt->format)
            ((Job *) jobs->pdata[jobs->len - 1])->format = st_image_format_from_name (out);
        }
      else
        {
          fprintf (stderr, "%s: no such file or folder\n", inputs[i]);
          missing++;
        }
    }
  if (jobs->len == 0)
    {
      summary->failed = missing;
      if (missing)
        return TRUE;
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                   "no images found (expected .png, .jpg or .jpeg files)");
      return FALSE;
    }

  int threads = opt->jobs > 0 ? opt->jobs : (int) g_get_num_processors ();
  int workers = MIN (threads, (int) jobs->len);
  Run run = {
    .total = jobs->len,
    .jobs = jobs,
    .pipeline = pipeline,
    .opt = opt,
    .show = !opt->quiet && isatty (STDERR_FILENO),
    .start_us = g_get_monotonic_time (),
    /* Fewer images than threads: the spare threads work inside each image. */
    .threads_per_worker = MAX (1, threads / workers),
  };
  g_mutex_init (&run.lock);
  GThread **threads_v = g_new (GThread *, workers);
  for (int i = 1; i < workers; i++)
    threads_v[i] = g_thread_new ("strata-run", worker, &run);
  worker (&run);
  for (int i = 1; i < workers; i++)
    g_thread_join (threads_v[i]);
  g_free (threads_v);
  g_mutex_clear (&run.lock);
  draw_progress (&run, TRUE);
  clear_line (&run);

  *summary = run.summary;
  summary->failed += missing;
  return TRUE;
}
