/* strata — several processes (MPI ranks) as one run; see dist.h. */
#include "config.h"
#include "context.h"
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef ST_HAVE_MPI
#include <mpi.h>
#endif

static int rank, size = 1;
static gboolean agreed;

gboolean
st_dist_built (void)
{
#ifdef ST_HAVE_MPI
  return TRUE;
#else
  return FALSE;
#endif
}

int
st_dist_rank (void)
{
  return rank;
}

int
st_dist_size (void)
{
  return size;
}

gboolean
st_dist_active (void)
{
  return size > 1;
}

void
st_dist_agreed (void)
{
  agreed = TRUE;
}

void
st_dist_share (gint64 n, gint64 block, gint64 *start, gint64 *end)
{
  gint64 blocks = (n + block - 1) / block;
  *start = MIN (n, blocks * rank / size * block);
  *end = MIN (n, blocks * (rank + 1) / size * block);
}

#ifdef ST_HAVE_MPI

static gboolean initialised;

/* STRATA_DIST_STATS: what the reductions of floats (the gradients) cost,
 * said by each rank at the end, for the scaling estimate of the README. */
static struct {
  guint64 calls, bytes;
  gint64 us;
} float_stats;

/* Launched as one rank of several: Open MPI's mpirun, or a PMI or PMIx
 * launcher such as Slurm's srun.  A plain start never touches MPI, so the
 * same binary runs where no MPI runtime is installed or configured. */
static gboolean
launched_as_rank (void)
{
  static const char *const vars[] = { "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK",
                                      "PMI_SIZE" };
  for (guint i = 0; i < G_N_ELEMENTS (vars); i++)
    if (g_getenv (vars[i]))
      return TRUE;
  /* srun without an MPI plugin still names the step's tasks. */
  const char *tasks = g_getenv ("SLURM_STEP_NUM_TASKS");
  return g_getenv ("SLURM_PROCID") && tasks && atoi (tasks) > 1;
}

void
st_dist_init (int *argc, char ***argv)
{
  if (initialised || !launched_as_rank ())
    return;
  /* Rank 0 deals out work from a thread of its own while its other
   * threads run images; the threads of a rank never call MPI at once. */
  int provided = MPI_THREAD_SINGLE;
  if (MPI_Init_thread (argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
    {
      fprintf (stderr, "strata: cannot join the MPI job (MPI_Init_thread failed)\n");
      exit (2);
    }
  initialised = TRUE;
  MPI_Comm_rank (MPI_COMM_WORLD, &rank);
  MPI_Comm_size (MPI_COMM_WORLD, &size);
  /* Ranks that share a machine would bind their pools to the same CPUs. */
  MPI_Comm local;
  int local_size = 1;
  if (MPI_Comm_split_type (MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &local)
      == MPI_SUCCESS)
    {
      MPI_Comm_size (local, &local_size);
      MPI_Comm_free (&local);
    }
  if (local_size > 1)
    st_pool_forbid_binding ();
  if (provided < MPI_THREAD_SERIALIZED)
    {
      if (rank == 0)
        fprintf (stderr, "strata: this MPI library does not let threads take turns calling it "
                 "(MPI_THREAD_SERIALIZED)\n");
      MPI_Abort (MPI_COMM_WORLD, 2);
    }
}

int
st_dist_finish (int status)
{
  if (!initialised)
    return status;
  /* Success without a collective call (--help) is the same on every rank. */
  if (size > 1 && !agreed && status != 0)
    st_dist_abort (status);
  if (g_getenv ("STRATA_DIST_STATS") && float_stats.calls)
    fprintf (stderr, "strata: rank %d of %d: %" G_GUINT64_FORMAT " float all-reductions, "
             "%.1f kB each, %.3f ms each, %.2f s in all\n", rank, size, float_stats.calls,
             float_stats.bytes / 1e3 / float_stats.calls, float_stats.us / 1e3 / float_stats.calls,
             float_stats.us / 1e6);
  int worst = status;
  MPI_Allreduce (&status, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize ();
  initialised = FALSE;
  return rank == 0 ? worst : 0;
}

void
st_dist_abort (int status)
{
  fflush (stdout);
  fflush (stderr);
  if (initialised)
    MPI_Abort (MPI_COMM_WORLD, status);
  exit (status);
}

void
st_dist_barrier (void)
{
  if (size > 1)
    MPI_Barrier (MPI_COMM_WORLD);
}

/* MPI counts are ints: large buffers go in pieces. */
#define PIECE (1 << 28)

void
st_dist_broadcast (void *data, gsize n)
{
  if (size == 1)
    return;
  for (gsize at = 0; at < n; at += PIECE)
    MPI_Bcast ((char *) data + at, (int) MIN (PIECE, n - at), MPI_BYTE, 0, MPI_COMM_WORLD);
}

char *
st_dist_broadcast_string (const char *text)
{
  gint64 length = text ? (gint64) strlen (text) : -1;
  st_dist_broadcast (&length, sizeof length);
  if (length < 0)
    return NULL;
  char *copy = g_malloc (length + 1);
  if (rank == 0)
    memcpy (copy, text, length);
  st_dist_broadcast (copy, length);
  copy[length] = '\0';
  return copy;
}

static MPI_Op
mpi_op (StDistOp op)
{
  return op == ST_DIST_SUM ? MPI_SUM : op == ST_DIST_MAX ? MPI_MAX : MPI_MIN;
}

static void
allreduce (void *data, gsize n, gsize item, MPI_Datatype type, StDistOp op)
{
  if (size == 1)
    return;
  for (gsize at = 0; at < n; at += PIECE)
    MPI_Allreduce (MPI_IN_PLACE, (char *) data + at * item, (int) MIN (PIECE, n - at), type,
                   mpi_op (op), MPI_COMM_WORLD);
}

void
st_dist_allreduce_floats (float *data, gsize n, StDistOp op)
{
  gint64 start = g_get_monotonic_time ();
  allreduce (data, n, sizeof *data, MPI_FLOAT, op);
  float_stats.calls++;
  float_stats.bytes += n * sizeof *data;
  float_stats.us += g_get_monotonic_time () - start;
}

struct StDistPending {
  GArray *requests;            /* MPI_Request, one per piece */
};

StDistPending *
st_dist_start_sum_floats (const float *data, float *sum, gsize n)
{
  if (size == 1)
    return NULL;
  gint64 start = g_get_monotonic_time ();
  StDistPending *pending = g_new0 (StDistPending, 1);
  pending->requests = g_array_new (FALSE, FALSE, sizeof (MPI_Request));
  for (gsize at = 0; at < n; at += PIECE)
    {
      MPI_Request request;
      /* Not in place: Open MPI's non-blocking sum in place always takes a
       * binomial tree, which moves log2(ranks) times the bytes of the
       * ring or reduce-scatter it picks otherwise. */
      MPI_Iallreduce (data + at, sum + at, (int) MIN (PIECE, n - at), MPI_FLOAT, MPI_SUM,
                      MPI_COMM_WORLD, &request);
      g_array_append_val (pending->requests, request);
    }
  float_stats.calls++;
  float_stats.bytes += n * sizeof *data;
  float_stats.us += g_get_monotonic_time () - start;
  return pending;
}

void
st_dist_progress (StDistPending *pending)
{
  if (!pending)
    return;
  gint64 start = g_get_monotonic_time ();
  int done = 0;
  MPI_Testall ((int) pending->requests->len, (MPI_Request *) pending->requests->data, &done,
               MPI_STATUSES_IGNORE);
  float_stats.us += g_get_monotonic_time () - start;
}

void
st_dist_wait (StDistPending *pending)
{
  if (!pending)
    return;
  gint64 start = g_get_monotonic_time ();
  /* A blocking wait, which spins unless mpirun is given --mca
   * mpi_yield_when_idle 1: polled with sleeps, as the dealer does, each
   * round of the sum waited for the other rank to wake, and the sums took
   * longer (tests/bench/bench-mpi.py). */
  MPI_Waitall ((int) pending->requests->len, (MPI_Request *) pending->requests->data,
               MPI_STATUSES_IGNORE);
  float_stats.us += g_get_monotonic_time () - start;
  g_array_unref (pending->requests);
  g_free (pending);
}

void
st_dist_allreduce_doubles (double *data, gsize n, StDistOp op)
{
  allreduce (data, n, sizeof *data, MPI_DOUBLE, op);
}

void
st_dist_allreduce_ints (gint64 *data, gsize n, StDistOp op)
{
  allreduce (data, n, sizeof *data, MPI_INT64_T, op);
}

void
st_dist_allgather_u64 (guint64 value, guint64 *values)
{
  if (size == 1)
    {
      values[0] = value;
      return;
    }
  MPI_Allgather (&value, 1, MPI_UINT64_T, values, 1, MPI_UINT64_T, MPI_COMM_WORLD);
}

/* ---- Dealing out work ---------------------------------------------------- */

enum { TAG_ASK = 7101, TAG_GIVE = 7102 };
enum { ASK_MORE, ASK_LEAVING };

struct StDealer {
  GMutex lock;                 /* rank 0: next, shared by its threads and the dealing thread */
  guint next, n_jobs, batch;
  guint from, to;              /* this rank's current run of indices */
  guint reported;              /* finished items already said to rank 0 */
  void (*done) (guint n, gpointer user_data);
  gpointer user_data;
  GThread *thread;
};

/* Up to batch indices from the count; FALSE when none are left. */
static gboolean
take (StDealer *d, guint *from, guint *to)
{
  g_mutex_lock (&d->lock);
  *from = d->next;
  *to = MIN (d->n_jobs, d->next + d->batch);
  d->next = *to;
  g_mutex_unlock (&d->lock);
  return *from < *to;
}

/* Rank 0's dealing thread: answers each rank's asks until every other
 * rank has left.  It polls rather than blocks: a blocked MPI receive
 * spins a core that the image threads need. */
static gpointer
deal (gpointer data)
{
  st_thread_unpin ();
  StDealer *d = data;
  int left = 0;
  gulong pause_us = 50;
  while (left < size - 1)
    {
      guint ask[2];
      MPI_Request request;
      MPI_Status status;
      int arrived = 0;
      MPI_Irecv (ask, 2, MPI_UNSIGNED, MPI_ANY_SOURCE, TAG_ASK, MPI_COMM_WORLD, &request);
      for (;;)
        {
          MPI_Test (&request, &arrived, &status);
          if (arrived)
            break;
          g_usleep (pause_us);
          pause_us = MIN (pause_us * 2, 2000);
        }
      pause_us = 50;
      if (ask[1] && d->done)
        d->done (ask[1], d->user_data);
      if (ask[0] == ASK_LEAVING)
        {
          left++;
          continue;
        }
      guint give[2];
      take (d, &give[0], &give[1]);
      MPI_Send (give, 2, MPI_UNSIGNED, status.MPI_SOURCE, TAG_GIVE, MPI_COMM_WORLD);
    }
  return NULL;
}

StDealer *
st_dealer_new (guint n_jobs, guint batch, void (*done) (guint n, gpointer user_data),
               gpointer user_data)
{
  StDealer *d = g_new0 (StDealer, 1);
  g_mutex_init (&d->lock);
  d->n_jobs = n_jobs;
  d->batch = MAX (1, batch);
  d->done = done;
  d->user_data = user_data;
  if (rank == 0 && size > 1)
    {
      g_autoptr (GError) local = NULL;
      d->thread = g_thread_try_new ("strata-deal", deal, d, &local);
      /* The others ask and wait: without a dealer the job cannot go on. */
      if (!d->thread)
        {
          fprintf (stderr, "strata: rank 0 cannot start the thread that deals out images: %s\n",
                   local->message);
          st_dist_abort (2);
        }
    }
  return d;
}

gboolean
st_dealer_next (StDealer *d, guint finished, guint *index)
{
  if (d->from >= d->to)
    {
      if (rank == 0 || size == 1)
        take (d, &d->from, &d->to);
      else
        {
          guint ask[2] = { ASK_MORE, finished - d->reported }, give[2];
          d->reported = finished;
          MPI_Send (ask, 2, MPI_UNSIGNED, 0, TAG_ASK, MPI_COMM_WORLD);
          MPI_Recv (give, 2, MPI_UNSIGNED, 0, TAG_GIVE, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
          d->from = give[0];
          d->to = give[1];
        }
      if (d->from >= d->to)
        return FALSE;
    }
  *index = d->from++;
  return TRUE;
}

void
st_dealer_free (StDealer *d, guint finished)
{
  if (!d)
    return;
  if (rank != 0 && size > 1)
    {
      guint ask[2] = { ASK_LEAVING, finished - d->reported };
      MPI_Send (ask, 2, MPI_UNSIGNED, 0, TAG_ASK, MPI_COMM_WORLD);
    }
  if (d->thread)
    g_thread_join (d->thread);
  g_mutex_clear (&d->lock);
  g_free (d);
}

#else /* no MPI: one rank of one */

void
st_dist_init (int *argc, char ***argv)
{
  (void) argc;
  (void) argv;
}

int
st_dist_finish (int status)
{
  return status;
}

void
st_dist_abort (int status)
{
  fflush (stdout);
  fflush (stderr);
  exit (status);
}

void
st_dist_barrier (void)
{
}

void
st_dist_broadcast (void *data, gsize n)
{
  (void) data;
  (void) n;
}

char *
st_dist_broadcast_string (const char *text)
{
  return g_strdup (text);
}

void
st_dist_allreduce_floats (float *data, gsize n, StDistOp op)
{
}

StDistPending *
st_dist_start_sum_floats (const float *data, float *sum, gsize n)
{
  return NULL;
}

void
st_dist_progress (StDistPending *pending)
{
}

void
st_dist_wait (StDistPending *pending)
{
}

void
st_dist_allreduce_doubles (double *data, gsize n, StDistOp op)
{
}

void
st_dist_allreduce_ints (gint64 *data, gsize n, StDistOp op)
{
}

void
st_dist_allgather_u64 (guint64 value, guint64 *values)
{
  values[0] = value;
}

struct StDealer {
  guint next, n_jobs;
};

StDealer *
st_dealer_new (guint n_jobs, guint batch, void (*done) (guint n, gpointer user_data),
               gpointer user_data)
{
  StDealer *d = g_new0 (StDealer, 1);
  d->n_jobs = n_jobs;
  return d;
}

gboolean
st_dealer_next (StDealer *d, guint finished, guint *index)
{
  if (d->next >= d->n_jobs)
    return FALSE;
  *index = d->next++;
  return TRUE;
}

void
st_dealer_free (StDealer *d, guint finished)
{
  g_free (d);
}

#endif

gboolean
st_dist_any (gboolean flag)
{
  gint64 value = flag != FALSE;
  st_dist_allreduce_ints (&value, 1, ST_DIST_MAX);
  return value != 0;
}
