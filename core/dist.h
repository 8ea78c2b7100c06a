/* strata — several processes (MPI ranks) as one run.  Everything that
 * knows about MPI is behind this header (dist.c); built without MPI, or
 * started without mpirun or srun, strata is one rank of one and every
 * call here is a no-op or a copy. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Joins the job when a launcher started this process (mpirun's, Slurm's
 * or a PMI/PMIx environment); otherwise runs alone, with no MPI runtime
 * touched.  Call once, first thing in main. */
void     st_dist_init (int *argc, char ***argv);
/* Ends the job: the exit status is agreed among the ranks (the worst of
 * them, on rank 0; 0 on the others, since mpirun reports the first
 * non-zero one and would otherwise kill ranks still finishing).  A rank
 * that stops before the last collective call of its command
 * (st_dist_agreed not called) with a status other than 0 aborts the
 * job instead: mpirun names the
 * rank, and its own message has said why.  Returns the status to exit
 * with. */
int      st_dist_finish (int status);
/* The command has made every collective call it will make: from here on
 * st_dist_finish may wait for the others. */
void     st_dist_agreed (void);
/* Stops every rank at once, with status (a message has been printed). */
G_NORETURN void st_dist_abort (int status);

int      st_dist_rank (void);
int      st_dist_size (void);
/* Several ranks: the verbs share their work. */
gboolean st_dist_active (void);
/* Whether MPI support was built in. */
gboolean st_dist_built (void);

void     st_dist_barrier (void);
/* data (n bytes) from rank 0 to every rank. */
void     st_dist_broadcast (void *data, gsize n);
/* A string from rank 0 (text there; NULL allowed) to every rank: a new
 * copy on each, NULL where rank 0 had NULL. */
char    *st_dist_broadcast_string (const char *text);

typedef enum { ST_DIST_SUM, ST_DIST_MAX, ST_DIST_MIN } StDistOp;

/* Element-wise over the ranks, the result on every rank. */
void     st_dist_allreduce_floats (float *data, gsize n, StDistOp op);
void     st_dist_allreduce_doubles (double *data, gsize n, StDistOp op);
void     st_dist_allreduce_ints (gint64 *data, gsize n, StDistOp op);
/* Sums of floats started now and waited for later, so that the reduction
 * overlaps with other work (MPI_Iallreduce).  Open MPI advances them only
 * inside MPI calls: st_dist_progress gives it that chance. */
typedef struct StDistPending StDistPending;

/* Starts summing data (n floats) over the ranks into sum; neither may be
 * touched until st_dist_wait.  Every rank starts the same sums in the
 * same order.  NULL when alone (nothing to sum, sum untouched). */
StDistPending *st_dist_start_sum_floats (const float *data, float *sum, gsize n);
/* Lets the started sums move on without waiting for them. */
void     st_dist_progress (StDistPending *pending);
/* Waits for the sum and frees pending (NULL allowed). */
void     st_dist_wait (StDistPending *pending);
/* Whether flag is true on any rank. */
gboolean st_dist_any (gboolean flag);
/* Each rank's value, in rank order, into values (st_dist_size of them). */
void     st_dist_allgather_u64 (guint64 value, guint64 *values);

/* This rank's share [*start, *end) of n items in blocks of block items
 * (the last block may be short), as even as whole blocks allow. */
void     st_dist_share (gint64 n, gint64 block, gint64 *start, gint64 *end);

/* ---- Dealing out work ------------------------------------------------------
 * Rank 0 holds the count of n_jobs items and hands out runs of up to
 * batch consecutive indices to whoever asks (its own threads too), so
 * ranks that draw larger images simply ask less often.  Not thread-safe:
 * a rank's threads take turns (the runner holds its lock). */
typedef struct StDealer StDealer;

/* done(n, user_data): rank 0 hears that n more items were finished
 * elsewhere (for its progress line); called from rank 0's dealing
 * thread.  When rank 0 cannot start that thread the job is aborted with
 * a message: the other ranks would wait for it for ever. */
StDealer *st_dealer_new (guint n_jobs, guint batch, void (*done) (guint n, gpointer user_data),
                         gpointer user_data);
/* The next index for this rank, or FALSE when all are handed out;
 * finished counts this rank's items finished so far. */
gboolean  st_dealer_next (StDealer *dealer, guint finished, guint *index);
/* Says this rank wants no more (with its last count of finished items),
 * then (rank 0) waits for every rank to say so; collective. */
void      st_dealer_free (StDealer *dealer, guint finished);

G_END_DECLS
