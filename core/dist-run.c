/* strata — a folder run shared among MPI ranks; see dist-run.h. */
#include "dist-run.h"
#include "dist.h"

#include <string.h>

static GQuark
echo_error_quark (void)
{
  return g_quark_from_static_string ("st-dist-echo-error-quark");
}

gboolean
st_dist_error_echoed (const GError *error)
{
  return error && error->domain == echo_error_quark ();
}

/* The plan as bytes: counts, then each job's input and output (each with
 * its terminating NUL), format and whether it is skipped. */
static GByteArray *
pack_plan (const StJobPlan *plan)
{
  GByteArray *bytes = g_byte_array_new ();
  guint32 head[3] = { plan->jobs->len, plan->failed, plan->ignored };
  g_byte_array_append (bytes, (const guint8 *) head, sizeof head);
  for (guint i = 0; i < plan->jobs->len; i++)
    {
      const StJob *job = plan->jobs->pdata[i];
      gint32 tail[2] = { job->format, job->skip };
      g_byte_array_append (bytes, (const guint8 *) job->input, strlen (job->input) + 1);
      g_byte_array_append (bytes, (const guint8 *) job->output, strlen (job->output) + 1);
      g_byte_array_append (bytes, (const guint8 *) tail, sizeof tail);
    }
  return bytes;
}

static void
unpack_plan (const guint8 *bytes, StJobPlan *plan)
{
  guint32 head[3];
  memcpy (head, bytes, sizeof head);
  const guint8 *at = bytes + sizeof head;
  plan->jobs = g_ptr_array_new_full (head[0], st_job_free);
  plan->failed = head[1];
  plan->ignored = head[2];
  /* Only rank 0 writes the predictions. */
  plan->predictions = NULL;
  for (guint i = 0; i < head[0]; i++)
    {
      StJob *job = g_new0 (StJob, 1);
      job->input = g_strdup ((const char *) at);
      at += strlen (job->input) + 1;
      job->output = g_strdup ((const char *) at);
      at += strlen (job->output) + 1;
      gint32 tail[2];
      memcpy (tail, at, sizeof tail);
      at += sizeof tail;
      job->format = tail[0];
      job->skip = tail[1];
      g_ptr_array_add (plan->jobs, job);
    }
}

/* Standard input and output belong to one process: mpirun gives rank 0
 * the terminal's input, and images on several outputs would interleave. */
static gboolean
check_streams (const char *const *inputs, const StRunOptions *opt, gboolean classify,
               GError **error)
{
  for (const char *const *in = inputs; *in; in++)
    if (strcmp (*in, "-") == 0)
      {
        g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                     "input -: standard input cannot be shared among %d MPI ranks "
                     "(run without mpirun, or name files)", st_dist_size ());
        return FALSE;
      }
  if (!classify && opt->output && strcmp (opt->output, "-") == 0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                   "-o -: an image on standard output cannot come from %d MPI ranks "
                   "(run without mpirun, or name a file)", st_dist_size ());
      return FALSE;
    }
  return TRUE;
}

gboolean
st_dist_plan_jobs (const char *const *inputs, const StRunOptions *opt, gboolean classify,
                   StJobPlan *plan, GError **error)
{
  if (!st_dist_active ())
    return st_plan_jobs (inputs, opt, classify, plan, error);

  /* Rank 0 alone looks at the files and makes the output folder, so that
   * every check of a single run holds once, before any rank reads. */
  g_autoptr (GError) local = NULL;
  gint32 head[2] = { 1, 0 };   /* planned; the error's code */
  g_autofree char *message = NULL;
  g_autoptr (GByteArray) bytes = NULL;
  if (st_dist_rank () == 0)
    {
      if (!check_streams (inputs, opt, classify, &local)
          || !st_plan_jobs (inputs, opt, classify, plan, &local))
        head[0] = 0, head[1] = local->code;
      else
        bytes = pack_plan (plan);
    }
  st_dist_broadcast (head, sizeof head);
  if (!head[0])
    {
      message = st_dist_broadcast_string (local ? local->message : NULL);
      st_dist_agreed ();
      if (st_dist_rank () == 0)
        g_propagate_error (error, g_steal_pointer (&local));
      else
        g_set_error_literal (error, echo_error_quark (), head[1], message);
      return FALSE;
    }
  guint64 length = bytes ? bytes->len : 0;
  st_dist_broadcast (&length, sizeof length);
  if (st_dist_rank () != 0)
    bytes = g_byte_array_set_size (g_byte_array_new (), length);
  st_dist_broadcast (bytes->data, length);
  if (st_dist_rank () != 0)
    unpack_plan (bytes->data, plan);
  if (plan->jobs->len == 0)
    st_dist_agreed ();
  return TRUE;
}

void
st_dist_merge_jobs (GPtrArray *jobs, int n_classes)
{
  if (!st_dist_active ())
    return;
  /* A job ran on one rank and is pending (0) on the others: the largest
   * value is its outcome.  Probabilities are 0 where a job did not run,
   * so their sum is exactly the running rank's. */
  const guint n = jobs->len;
  g_autofree gint64 *states = g_new (gint64, 2 * (gsize) n);
  for (guint i = 0; i < n; i++)
    {
      const StJob *job = jobs->pdata[i];
      states[i] = job->outcome;
      states[n + i] = job->in_strips;
    }
  st_dist_allreduce_ints (states, 2 * (gsize) n, ST_DIST_MAX);
  g_autofree float *probabilities = n_classes > 0 ? g_new0 (float, (gsize) n * n_classes) : NULL;
  for (guint i = 0; probabilities && i < n; i++)
    {
      const StJob *job = jobs->pdata[i];
      if (job->probabilities)
        memcpy (probabilities + (gsize) i * n_classes, job->probabilities,
                sizeof (float) * n_classes);
    }
  if (probabilities)
    st_dist_allreduce_floats (probabilities, (gsize) n * n_classes, ST_DIST_SUM);
  st_dist_agreed ();
  for (guint i = 0; i < n; i++)
    {
      StJob *job = jobs->pdata[i];
      job->outcome = states[i];
      job->in_strips = states[n + i];
      if (probabilities && job->outcome == ST_JOB_WRITTEN && !job->probabilities)
        job->probabilities = g_memdup2 (probabilities + (gsize) i * n_classes,
                                        sizeof (float) * n_classes);
    }
}
