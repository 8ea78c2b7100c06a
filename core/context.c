/* strata — run contexts: a seeded generator and a small thread pool. */
#include "context.h"

#include <math.h>
#include <unistd.h>

/* xoshiro256**: fast, small state, and its state can be saved in a
 * checkpoint, which is what bit-identical resumes need. */
struct _StRng {
  guint64 s[4];
};

static inline guint64
rotl (guint64 x, int k)
{
  return (x << k) | (x >> (64 - k));
}

static guint64
splitmix64 (guint64 *x)
{
  guint64 z = (*x += G_GUINT64_CONSTANT (0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * G_GUINT64_CONSTANT (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * G_GUINT64_CONSTANT (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

StRng *
st_rng_new (guint64 seed)
{
  StRng *rng = g_new (StRng, 1);
  for (int i = 0; i < 4; i++)
    rng->s[i] = splitmix64 (&seed);
  return rng;
}

void
st_rng_free (StRng *rng)
{
  g_free (rng);
}

void
st_rng_get_state (const StRng *rng, guint64 state[4])
{
  for (int i = 0; i < 4; i++)
    state[i] = rng->s[i];
}

void
st_rng_set_state (StRng *rng, const guint64 state[4])
{
  for (int i = 0; i < 4; i++)
    rng->s[i] = state[i];
}

guint64
st_rng_next (StRng *rng)
{
  guint64 *s = rng->s;
  guint64 result = rotl (s[1] * 5, 7) * 9;
  guint64 t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl (s[3], 45);
  return result;
}

double
st_rng_uniform (StRng *rng)
{
  return (st_rng_next (rng) >> 11) * 0x1.0p-53;
}

guint64
st_item_seed (guint64 seed, int epoch, int index)
{
  /* Distinct from the seeds of weights and epoch orders; st_rng_new mixes
   * the bits further. */
  return (seed * G_GUINT64_CONSTANT (0xd1342543de82ef95) + (guint64) epoch)
           * G_GUINT64_CONSTANT (0x9e3779b97f4a7c15)
         + (guint64) index + G_GUINT64_CONSTANT (0x5851f42d4c957f2d);
}

StRng *
st_rng_item_new (const StRunContext *ctx, int item)
{
  return st_rng_new (ctx->item_seeds ? ctx->item_seeds[item] : st_rng_next (ctx->rng));
}

double
st_rng_normal (StRng *rng)
{
  /* Box-Muller; one value per call keeps the stream simple to replay. */
  double u1 = 1.0 - st_rng_uniform (rng);
  double u2 = st_rng_uniform (rng);
  return sqrt (-2.0 * log (u1)) * cos (2.0 * G_PI * u2);
}

/* ---- Thread pool --------------------------------------------------------
 * Items are handed out in chunks, the caller taking its share like the
 * workers.  Each thread has a home range of the items, a counter of its
 * own, and takes chunks from there first, so that call after call a
 * thread works on the same items and finds their buffers in its own
 * cache; then it takes what is left of the others' ranges.  A thread that
 * the system deschedules (a busy neighbour, a fuzzer forking) so holds up
 * only the chunk it took, and the others finish the rest.  Which thread
 * runs an item never changes what the item computes, so results stay
 * bit-identical.  Workers wait on a generation counter; one that wakes
 * after the items are gone does not join, so the caller waits only for
 * chunks actually being worked on. */

/* One thread's home range: [next, end), next taken atomically.  A cache
 * line each, so that threads taking from their own do not contend. */
typedef struct {
  gsize next;
  gsize end;
} __attribute__ ((aligned (64))) PoolRange;

typedef struct {
  StPool *pool;
  int index;                   /* 0 is the caller of st_parallel_for() */
} PoolWorker;

struct _StPool {
  int n_threads;
  GThread **threads;
  GMutex lock;
  GCond work_cond;
  GCond done_cond;
  guint64 generation;
  int active;                  /* workers inside the current call's items */
  gboolean quit;
  StRangeFunc fn;
  gpointer data;
  gsize chunk;
  PoolRange *ranges;           /* n_threads */
  PoolWorker *workers;         /* n_threads; 0 unused */
};

/* Whether any range of the current call has items not yet handed out. */
static gboolean
items_left (StPool *pool)
{
  for (int r = 0; r < pool->n_threads; r++)
    if (__atomic_load_n (&pool->ranges[r].next, __ATOMIC_RELAXED) < pool->ranges[r].end)
      return TRUE;
  return FALSE;
}

/* Runs chunks of the current call until none is left: thread self's own
 * range first, then the others' in turn. */
static void
take_chunks (StPool *pool, int self, StRangeFunc fn, gpointer data, gsize chunk)
{
  for (int i = 0; i < pool->n_threads; i++)
    {
      PoolRange *range = &pool->ranges[(self + i) % pool->n_threads];
      for (;;)
        {
          gsize begin = __atomic_fetch_add (&range->next, chunk, __ATOMIC_RELAXED);
          if (begin >= range->end)
            break;
          fn (begin, MIN (begin + chunk, range->end), data);
        }
    }
}

static gpointer
worker_main (gpointer user_data)
{
  const PoolWorker *self = user_data;
  StPool *pool = self->pool;
  guint64 seen = 0;

  g_mutex_lock (&pool->lock);
  for (;;)
    {
      while (pool->generation == seen && !pool->quit)
        g_cond_wait (&pool->work_cond, &pool->lock);
      if (pool->quit)
        break;
      seen = pool->generation;
      if (!items_left (pool))
        continue;
      pool->active++;
      StRangeFunc fn = pool->fn;
      gpointer data = pool->data;
      gsize chunk = pool->chunk;
      g_mutex_unlock (&pool->lock);

      take_chunks (pool, self->index, fn, data, chunk);

      g_mutex_lock (&pool->lock);
      if (--pool->active == 0)
        g_cond_signal (&pool->done_cond);
    }
  g_mutex_unlock (&pool->lock);
  return NULL;
}

/* The pool's threads; fewer than asked for only with allow_fewer (then
 * the pool runs with those it could start).  Otherwise a thread that cannot
 * be started is an error: every started one is stopped again. */
static StPool *
pool_new (int n_threads, gboolean allow_fewer, GError **error)
{
  if (n_threads <= 0)
    n_threads = MIN ((int) g_get_num_processors (), ST_MAX_THREADS);
  if (n_threads > ST_MAX_THREADS)
    {
      if (!allow_fewer)
        {
          g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                       "%d threads asked for; at most %d are allowed", n_threads,
                       ST_MAX_THREADS);
          return NULL;
        }
      n_threads = ST_MAX_THREADS;
    }
  StPool *pool = g_new0 (StPool, 1);
  pool->n_threads = n_threads;
  g_mutex_init (&pool->lock);
  g_cond_init (&pool->work_cond);
  g_cond_init (&pool->done_cond);
  pool->threads = g_new0 (GThread *, n_threads);
  pool->ranges = g_aligned_alloc0 (n_threads, sizeof (PoolRange), _Alignof (PoolRange));
  pool->workers = g_new0 (PoolWorker, n_threads);
  for (int i = 1; i < n_threads; i++)
    {
      g_autoptr (GError) local = NULL;
      pool->workers[i] = (PoolWorker) { pool, i };
      pool->threads[i] = g_thread_try_new ("strata-worker", worker_main, &pool->workers[i], &local);
      if (pool->threads[i])
        continue;
      /* Only the started threads count (st_pool_free joins n_threads - 1). */
      pool->n_threads = i;
      if (allow_fewer)
        break;
      st_pool_free (pool);
      g_set_error (error, ST_ERROR, ST_ERROR_FAILED,
                   "cannot start thread %d of %d: %s (ask for fewer threads)", i + 1,
                   n_threads, local->message);
      return NULL;
    }
  return pool;
}

StPool *
st_pool_try_new (int n_threads, GError **error)
{
  return pool_new (n_threads, FALSE, error);
}

StPool *
st_pool_new (int n_threads)
{
  return pool_new (n_threads, TRUE, NULL);
}

void
st_pool_free (StPool *pool)
{
  if (!pool)
    return;
  g_mutex_lock (&pool->lock);
  pool->quit = TRUE;
  g_cond_broadcast (&pool->work_cond);
  g_mutex_unlock (&pool->lock);
  for (int i = 1; i < pool->n_threads; i++)
    g_thread_join (pool->threads[i]);
  g_free (pool->threads);
  g_aligned_free (pool->ranges);
  g_free (pool->workers);
  g_mutex_clear (&pool->lock);
  g_cond_clear (&pool->work_cond);
  g_cond_clear (&pool->done_cond);
  g_free (pool);
}

int
st_pool_threads (const StPool *pool)
{
  return pool ? pool->n_threads : 1;
}

void
st_parallel_for (const StRunContext *ctx, gsize n, StRangeFunc fn, gpointer data)
{
  StPool *pool = ctx ? ctx->pool : NULL;
  if (n == 0)
    return;
  if (!pool || pool->n_threads == 1 || n == 1)
    {
      fn (0, n, data);
      return;
    }
  /* About four chunks a thread: small enough to even out a late thread,
   * large enough that handing them out costs nothing. */
  const int threads = pool->n_threads;
  const gsize chunk = MAX (n / ((gsize) threads * 4), 1), chunks = (n + chunk - 1) / chunk;
  g_mutex_lock (&pool->lock);
  pool->fn = fn;
  pool->data = data;
  pool->chunk = chunk;
  /* Whole chunks a range, as evenly as they go. */
  for (int r = 0; r < threads; r++)
    {
      pool->ranges[r].end = MIN (chunks * (r + 1) / threads * chunk, n);
      __atomic_store_n (&pool->ranges[r].next, chunks * r / threads * chunk, __ATOMIC_RELAXED);
    }
  pool->generation++;
  g_cond_broadcast (&pool->work_cond);
  g_mutex_unlock (&pool->lock);

  take_chunks (pool, 0, fn, data, chunk);

  g_mutex_lock (&pool->lock);
  while (pool->active > 0)
    g_cond_wait (&pool->done_cond, &pool->lock);
  g_mutex_unlock (&pool->lock);
}

int
st_parallel_threads (const StRunContext *ctx)
{
  return ctx ? st_pool_threads (ctx->pool) : 1;
}

StRunContext *
st_run_context_new (int n_threads, guint64 seed)
{
  StRunContext *ctx = g_new0 (StRunContext, 1);
  ctx->rng = st_rng_new (seed);
  ctx->pool = st_pool_new (n_threads);
  return ctx;
}

StRunContext *
st_run_context_try_new (int n_threads, guint64 seed, GError **error)
{
  StPool *pool = st_pool_try_new (n_threads, error);
  if (!pool)
    return NULL;
  StRunContext *ctx = g_new0 (StRunContext, 1);
  ctx->rng = st_rng_new (seed);
  ctx->pool = pool;
  return ctx;
}

void
st_run_context_free (StRunContext *ctx)
{
  if (!ctx)
    return;
  st_rng_free (ctx->rng);
  st_pool_free (ctx->pool);
  g_free (ctx);
}

/* ---- Memory limit --------------------------------------------------------- */

static guint64 memory_limit;  /* 0: not set, the default applies */

void
st_set_memory_limit (guint64 bytes)
{
  memory_limit = bytes;
}

guint64
st_memory_limit (void)
{
  if (memory_limit)
    return memory_limit;
  long pages = sysconf (_SC_PHYS_PAGES), page = sysconf (_SC_PAGESIZE);
  if (pages <= 0 || page <= 0)
    return G_GUINT64_CONSTANT (4) << 30;
  return (guint64) pages * (guint64) page / 2;
}
