/* strata — run contexts: a seeded generator and a small thread pool. */
#define _GNU_SOURCE  /* sched_setaffinity, pthread_*affinity_np */
#include "context.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <pthread.h>
#include <sched.h>
#endif

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
 * bit-identical.
 *
 * A training step makes a dozen calls some 20 us apart.  Between them a
 * thread spins a while before it sleeps: one that sleeps gives its core
 * to any other process, waits for the system to wake it, and under load
 * waits a time slice to get the core back.  While threads spin, a call
 * makes no system call at all; the lock and conditions serve only going
 * to sleep and waking up. */

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

/* What a bound pool knows of each of its threads (see trade_cpus()). */
typedef struct {
  int in_call;                 /* taking chunks of the current call */
  int cpu;                     /* the index of the allowed CPU it is bound to */
#ifdef __linux__
  pid_t tid;                   /* 0 until the thread has bound itself */
  clockid_t clock;             /* its CPU time */
  int stat_fd;                 /* its /proc stat, for its state; -1 if none */
#endif
} __attribute__ ((aligned (64))) PoolThread;

typedef struct {
  StRangeFunc fn;
  gpointer data;
  gsize chunk;
} PoolCall;

struct _StPool {
  int n_threads;
  GThread **threads;
  PoolRange *ranges;           /* n_threads */
  PoolWorker *workers;         /* n_threads; 0 unused */
  PoolThread *bound;           /* n_threads */
  /* The call in progress, or NULL.  A worker counts itself in active
   * before it loads call, and the caller clears call before it waits for
   * active to reach 0 (both sequentially consistent), so a worker that
   * loaded a call is waited for. */
  const PoolCall *call;
  int active;
  guint generation;            /* bumped by each call; what idle workers watch */
  int quit;
  GMutex lock;
  GCond work_cond;
  GCond done_cond;
  int sleepers;                /* workers asleep or going to sleep */
  int caller_asleep;
  gboolean pin;                /* one thread per CPU: see bind_thread() */
  int pinned_calling;          /* the last call came from thread 0 */
  int sharing;                 /* st_pool_set_sharing () */
#ifdef __linux__
  gboolean caller_pinned;
  pthread_t caller;            /* the first caller, pinned as thread 0 */
  cpu_set_t caller_cpus;       /* its CPUs before */
#endif
};

/* ---- Binding threads to CPUs ----
 * A pool with a thread for every CPU the process may use binds its
 * threads to distinct CPUs.  Left free, the scheduler places a woken
 * worker beside the thread that woke it when a neighbour keeps the other
 * CPU busy, and the pool's two threads then share one CPU while the
 * neighbour has the other to itself.  A smaller pool is left free:
 * binding it would stack it on the same CPUs as any other.
 *
 * Bound, a thread that shares its CPU with a busy neighbour is preempted
 * for whole time slices, and the others wait at the end of the call for
 * the chunk it holds.  So a thread that waits in vain for another (see
 * spin_or_trade()) trades CPUs with it: the late thread goes on at once on
 * the waiter's CPU, and the waiter takes its turn on the busy one. */

static gboolean binding_forbidden;

void
st_pool_forbid_binding (void)
{
  __atomic_store_n (&binding_forbidden, TRUE, __ATOMIC_SEQ_CST);
}

#ifdef __linux__
static cpu_set_t process_cpus;

/* The CPUs the process may use, as they were before any pool bound a
 * thread. */
static const cpu_set_t *
allowed_cpus (void)
{
  static gsize once;
  if (g_once_init_enter (&once))
    {
      if (sched_getaffinity (0, sizeof process_cpus, &process_cpus) != 0)
        CPU_ZERO (&process_cpus);
      g_once_init_leave (&once, 1);
    }
  return &process_cpus;
}

/* Binds thread tid (0: the calling one) to the index-th allowed CPU;
 * FALSE if the system refused (the CPU taken away since, a thread gone). */
static gboolean
bind_to_cpu (pid_t tid, int index)
{
  const cpu_set_t *allowed = allowed_cpus ();
  for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; cpu++)
    if (CPU_ISSET (cpu, allowed) && seen++ == index)
      {
        cpu_set_t one;
        CPU_ZERO (&one);
        CPU_SET (cpu, &one);
        return sched_setaffinity (tid, sizeof one, &one) == 0;
      }
  return FALSE;
}
#endif

/* Binds the calling thread as the pool's thread t, and records what
 * trade_cpus() and spin_or_trade() need of it. */
static void
bind_thread (StPool *pool, int t)
{
#ifdef __linux__
  PoolThread *bound = &pool->bound[t];
  g_mutex_lock (&pool->lock);
  if (pthread_getcpuclockid (pthread_self (), &bound->clock) == 0)
    bound->tid = gettid ();
  g_autofree char *stat = g_strdup_printf ("/proc/self/task/%d/stat", (int) gettid ());
  bound->stat_fd = open (stat, O_RDONLY | O_CLOEXEC);
  bind_to_cpu (0, bound->cpu);
  g_mutex_unlock (&pool->lock);
#else
  (void) pool;
  (void) t;
#endif
}

void
st_thread_unpin (void)
{
#ifdef __linux__
  const cpu_set_t *allowed = allowed_cpus ();
  if (CPU_COUNT (allowed) > 0)
    pthread_setaffinity_np (pthread_self (), sizeof *allowed, allowed);
#endif
}

/* Binds the first thread to call as the pool's thread 0; it gets its CPUs
 * back in st_pool_free() if it frees the pool.  A later caller on another
 * thread is left free: binding it too would leave the first bound for
 * good, as a thread that may have exited cannot be given its CPUs back. */
static void
pin_caller (StPool *pool)
{
#ifdef __linux__
  pthread_t self = pthread_self ();
  if (pool->caller_pinned)
    {
      __atomic_store_n (&pool->pinned_calling, pthread_equal (pool->caller, self), __ATOMIC_RELAXED);
      return;
    }
  if (pthread_getaffinity_np (self, sizeof pool->caller_cpus, &pool->caller_cpus) != 0)
    return;
  pool->caller = self;
  pool->caller_pinned = TRUE;
  __atomic_store_n (&pool->pinned_calling, TRUE, __ATOMIC_RELAXED);
  bind_thread (pool, 0);
#else
  (void) pool;
#endif
}

static void
unpin_caller (StPool *pool)
{
#ifdef __linux__
  if (pool->caller_pinned && pthread_equal (pool->caller, pthread_self ()))
    pthread_setaffinity_np (pool->caller, sizeof pool->caller_cpus, &pool->caller_cpus);
#else
  (void) pool;
#endif
}

/* The pool's thread that the calling one, thread self, waits for: one
 * that holds chunks of the call, or else, for a worker, the caller; -1
 * when there is none to trade with. */
static int
awaited_thread (StPool *pool, int self)
{
  for (int t = 0; t < pool->n_threads; t++)
    if (t != self && __atomic_load_n (&pool->bound[t].in_call, __ATOMIC_RELAXED))
      return t;
  return self > 0 && __atomic_load_n (&pool->pinned_calling, __ATOMIC_RELAXED) ? 0 : -1;
}

/* Trades the CPUs of threads self (the calling one) and other, both bound,
 * other first: it may be waiting for a CPU and can run at once on the one
 * self leaves. */
static void
trade_cpus (StPool *pool, int self, int other)
{
#ifdef __linux__
  g_mutex_lock (&pool->lock);
  PoolThread *mine = &pool->bound[self], *theirs = &pool->bound[other];
  /* Both moves or neither, so that no two threads stay on one CPU. */
  if (mine->tid && theirs->tid && bind_to_cpu (theirs->tid, mine->cpu))
    {
      if (bind_to_cpu (0, theirs->cpu))
        {
          int cpu = mine->cpu;
          mine->cpu = theirs->cpu;
          theirs->cpu = cpu;
        }
      else
        bind_to_cpu (theirs->tid, theirs->cpu);
    }
  g_mutex_unlock (&pool->lock);
#else
  (void) pool;
  (void) self;
  (void) other;
#endif
}

/* How long a thread spins for the next call, or for the workers to
 * finish, before it sleeps: longer than most gaps inside a training step,
 * short enough that an idle pool soon gives its cores away.  A bound
 * pool's threads spin up to BOUND_SPIN_US, looking every LOOK_US at the
 * thread they wait for (see spin_or_trade()). */
#define SPIN_US 50
#define BOUND_SPIN_US 1000
#define LOOK_US 25

typedef gboolean (*PoolBusy) (StPool *pool, guint seen);

/* Spins while busy (pool, seen) holds, at most us microseconds. */
static void
spin_while (PoolBusy busy, StPool *pool, guint seen, gint64 us)
{
  gint64 deadline = 0;
  for (;;)
    {
      for (int i = 0; i < 64; i++)
        {
          if (!busy (pool, seen))
            return;
#if defined(__x86_64__) || defined(__i386__)
          __builtin_ia32_pause ();
#endif
        }
      gint64 now = g_get_monotonic_time ();
      if (!deadline)
        deadline = now + us;
      else if (now > deadline)
        return;
    }
}

/* The CPU time a bound thread has used, in nanoseconds; -1 if unknown. */
static gint64
thread_cpu_ns (const PoolThread *bound)
{
#ifdef __linux__
  struct timespec ts;
  if (bound->tid && clock_gettime (bound->clock, &ts) == 0)
    return (gint64) ts.tv_sec * G_GINT64_CONSTANT (1000000000) + ts.tv_nsec;
#else
  (void) bound;
#endif
  return -1;
}

/* Whether a bound thread is running or waiting for a CPU, rather than
 * asleep; TRUE when that cannot be told. */
static gboolean
thread_runnable (const PoolThread *bound)
{
#ifdef __linux__
  char stat[512];
  ssize_t n = bound->stat_fd >= 0 ? pread (bound->stat_fd, stat, sizeof stat - 1, 0) : -1;
  if (n <= 0)
    return TRUE;
  stat[n] = '\0';
  /* pid (name) state ...: the name may hold ") ". */
  const char *end = strrchr (stat, ')');
  return !end || end[1] != ' ' || end[2] == 'R';
#else
  (void) bound;
  return TRUE;
#endif
}

/* Spins while busy (pool, seen) holds, then returns for the thread to
 * sleep.  A thread of a bound pool, self (-1: the call comes from a thread
 * that is not one of the pool's), spins longer, up to BOUND_SPIN_US, and
 * looks every LOOK_US at the CPU time of the thread it waits for: if that
 * one ran less than a quarter of the time, it is waiting for its CPU, and
 * the two trade CPUs, once a wait.  Spinning on keeps the CPU: a thread
 * that slept left it idle, and the thread it waited for, bound to a busy
 * CPU, could not move there. */
static void
spin_or_trade (PoolBusy busy, StPool *pool, guint seen, int self)
{
  const gint64 deadline = g_get_monotonic_time () + BOUND_SPIN_US;
  spin_while (busy, pool, seen, SPIN_US);
  if (!pool->pin || self < 0 || __atomic_load_n (&pool->sharing, __ATOMIC_RELAXED))
    return;
  gboolean traded = FALSE;
  while (busy (pool, seen) && g_get_monotonic_time () < deadline)
    {
      /* Waiting for none of the pool's threads, or for one that sleeps
       * (on a file, on a thread of another kind): the wait may be long,
       * and a thread outside the pool may want this CPU. */
      int other = awaited_thread (pool, self);
      if (other < 0 || !thread_runnable (&pool->bound[other]))
        return;
      gint64 ran_before = thread_cpu_ns (&pool->bound[other]);
      gint64 look = g_get_monotonic_time ();
      spin_while (busy, pool, seen, LOOK_US);
      if (traded || ran_before < 0 || !busy (pool, seen))
        continue;
      gint64 ran = thread_cpu_ns (&pool->bound[other]) - ran_before;
      if (ran >= 0 && 4 * ran < (g_get_monotonic_time () - look) * 1000)
        {
          trade_cpus (pool, self, other);
          traded = TRUE;
        }
    }
}

static gboolean
no_new_call (StPool *pool, guint seen)
{
  return __atomic_load_n (&pool->generation, __ATOMIC_SEQ_CST) == seen
         && !__atomic_load_n (&pool->quit, __ATOMIC_SEQ_CST);
}

static gboolean
workers_active (StPool *pool, guint unused)
{
  (void) unused;
  return __atomic_load_n (&pool->active, __ATOMIC_SEQ_CST) > 0;
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

/* Waits, as worker self, for a call after generation seen; FALSE when
 * the pool quits. */
static gboolean
wait_for_call (StPool *pool, int self, guint seen)
{
  spin_or_trade (no_new_call, pool, seen, self);
  if (no_new_call (pool, seen))
    {
      g_mutex_lock (&pool->lock);
      __atomic_add_fetch (&pool->sleepers, 1, __ATOMIC_SEQ_CST);
      while (no_new_call (pool, seen))
        g_cond_wait (&pool->work_cond, &pool->lock);
      __atomic_sub_fetch (&pool->sleepers, 1, __ATOMIC_SEQ_CST);
      g_mutex_unlock (&pool->lock);
    }
  return !__atomic_load_n (&pool->quit, __ATOMIC_SEQ_CST);
}

static gpointer
worker_main (gpointer user_data)
{
  const PoolWorker *self = user_data;
  StPool *pool = self->pool;
  guint seen = 0;

  if (pool->pin)
    bind_thread (pool, self->index);
  while (wait_for_call (pool, self->index, seen))
    {
      seen = __atomic_load_n (&pool->generation, __ATOMIC_SEQ_CST);
      __atomic_add_fetch (&pool->active, 1, __ATOMIC_SEQ_CST);
      const PoolCall *call = __atomic_load_n (&pool->call, __ATOMIC_SEQ_CST);
      if (call)
        {
          __atomic_store_n (&pool->bound[self->index].in_call, TRUE, __ATOMIC_RELAXED);
          take_chunks (pool, self->index, call->fn, call->data, call->chunk);
          __atomic_store_n (&pool->bound[self->index].in_call, FALSE, __ATOMIC_RELAXED);
        }
      if (__atomic_sub_fetch (&pool->active, 1, __ATOMIC_SEQ_CST) == 0
          && __atomic_load_n (&pool->caller_asleep, __ATOMIC_SEQ_CST))
        {
          g_mutex_lock (&pool->lock);
          g_cond_signal (&pool->done_cond);
          g_mutex_unlock (&pool->lock);
        }
    }
  return NULL;
}

/* The pool's threads; fewer than asked for only with allow_fewer (then
 * the pool runs with those it could start).  Otherwise a thread that cannot
 * be started is an error: every started one is stopped again. */
static StPool *
pool_new (int n_threads, gboolean allow_fewer, GError **error)
{
  if (n_threads <= 0)
    n_threads = st_default_threads ();
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
#ifdef __linux__
  pool->pin = n_threads > 1 && n_threads == CPU_COUNT (allowed_cpus ())
              && !__atomic_load_n (&binding_forbidden, __ATOMIC_SEQ_CST);
#endif
  g_mutex_init (&pool->lock);
  g_cond_init (&pool->work_cond);
  g_cond_init (&pool->done_cond);
  pool->threads = g_new0 (GThread *, n_threads);
  pool->ranges = g_aligned_alloc0 (n_threads, sizeof (PoolRange), _Alignof (PoolRange));
  pool->workers = g_new0 (PoolWorker, n_threads);
  pool->bound = g_aligned_alloc0 (n_threads, sizeof (PoolThread), _Alignof (PoolThread));
  for (int i = 0; i < n_threads; i++)
    {
      pool->bound[i].cpu = i;
#ifdef __linux__
      pool->bound[i].stat_fd = -1;
#endif
    }
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
  unpin_caller (pool);
  __atomic_store_n (&pool->quit, TRUE, __ATOMIC_SEQ_CST);
  g_mutex_lock (&pool->lock);
  g_cond_broadcast (&pool->work_cond);
  g_mutex_unlock (&pool->lock);
  for (int i = 1; i < pool->n_threads; i++)
    g_thread_join (pool->threads[i]);
  g_free (pool->threads);
  g_aligned_free (pool->ranges);
  g_free (pool->workers);
#ifdef __linux__
  for (int i = 0; i < pool->n_threads; i++)
    if (pool->bound[i].stat_fd >= 0)
      close (pool->bound[i].stat_fd);
#endif
  g_aligned_free (pool->bound);
  g_mutex_clear (&pool->lock);
  g_cond_clear (&pool->work_cond);
  g_cond_clear (&pool->done_cond);
  g_free (pool);
}

void
st_pool_set_sharing (StPool *pool, gboolean sharing)
{
  if (pool)
    __atomic_store_n (&pool->sharing, sharing, __ATOMIC_RELAXED);
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
  if (pool->pin)
    pin_caller (pool);
  /* About four chunks a thread: small enough to even out a late thread,
   * large enough that handing them out costs nothing. */
  const int threads = pool->n_threads;
  const gsize chunk = MAX (n / ((gsize) threads * 4), 1), chunks = (n + chunk - 1) / chunk;
  /* Whole chunks a range, as evenly as they go. */
  for (int r = 0; r < threads; r++)
    {
      pool->ranges[r].end = MIN (chunks * (r + 1) / threads * chunk, n);
      __atomic_store_n (&pool->ranges[r].next, chunks * r / threads * chunk, __ATOMIC_RELAXED);
    }
  const PoolCall call = { fn, data, chunk };
  __atomic_store_n (&pool->call, &call, __ATOMIC_SEQ_CST);
  __atomic_add_fetch (&pool->generation, 1, __ATOMIC_SEQ_CST);
  if (__atomic_load_n (&pool->sleepers, __ATOMIC_SEQ_CST) > 0)
    {
      g_mutex_lock (&pool->lock);
      g_cond_broadcast (&pool->work_cond);
      g_mutex_unlock (&pool->lock);
    }

  /* Thread 0 of a bound pool only if the pinned thread calls. */
  const int self = __atomic_load_n (&pool->pinned_calling, __ATOMIC_RELAXED) ? 0 : -1;
  if (self == 0)
    __atomic_store_n (&pool->bound[0].in_call, TRUE, __ATOMIC_RELAXED);
  take_chunks (pool, 0, fn, data, chunk);
  if (self == 0)
    __atomic_store_n (&pool->bound[0].in_call, FALSE, __ATOMIC_RELAXED);

  __atomic_store_n (&pool->call, NULL, __ATOMIC_SEQ_CST);
  spin_or_trade (workers_active, pool, 0, self);
  if (workers_active (pool, 0))
    {
      g_mutex_lock (&pool->lock);
      __atomic_store_n (&pool->caller_asleep, TRUE, __ATOMIC_SEQ_CST);
      while (workers_active (pool, 0))
        g_cond_wait (&pool->done_cond, &pool->lock);
      __atomic_store_n (&pool->caller_asleep, FALSE, __ATOMIC_SEQ_CST);
      g_mutex_unlock (&pool->lock);
    }
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

/* ---- CPUs the process may use ----------------------------------------------
 * A container's CPU limit is a quota of CPU time, not fewer CPUs: the
 * process still sees every CPU of the machine, and a thread for each would
 * share the quota, stopped together whenever it runs out. */

/* Undoes mountinfo's octal escapes (a space is \040). */
static char *
mountinfo_unescape (const char *field)
{
  GString *out = g_string_new (NULL);
  for (const char *c = field; *c; c++)
    if (c[0] == '\\' && c[1] >= '0' && c[1] <= '3' && c[2] >= '0' && c[2] <= '7' && c[3] >= '0'
        && c[3] <= '7')
      {
        g_string_append_c (out, (char) ((c[1] - '0') * 64 + (c[2] - '0') * 8 + (c[3] - '0')));
        c += 3;
      }
    else
      g_string_append_c (out, *c);
  return g_string_free (out, FALSE);
}

/* Whether the comma-separated list has the item. */
static gboolean
list_has (const char *list, const char *item)
{
  g_auto (GStrv) items = g_strsplit (list, ",", -1);
  return g_strv_contains ((const char *const *) items, item);
}

/* Reads a whole decimal integer (a trailing newline allowed) from the
 * text; FALSE if it is not one. */
static gboolean
parse_integer (const char *text, gint64 *value)
{
  char *end;
  errno = 0;
  gint64 v = g_ascii_strtoll (text, &end, 10);
  if (end == text || errno || (*end && strcmp (end, "\n") != 0))
    return FALSE;
  *value = v;
  return TRUE;
}

/* The quota in CPUs that one group's files set, or 0. */
static double
group_quota (const char *dir, gboolean v2)
{
  g_autofree char *max_path = g_build_filename (dir, "cpu.max", NULL);
  g_autofree char *quota_path = g_build_filename (dir, "cpu.cfs_quota_us", NULL);
  g_autofree char *period_path = g_build_filename (dir, "cpu.cfs_period_us", NULL);
  g_autofree char *max = NULL, *quota_text = NULL, *period_text = NULL;
  gint64 quota = 0, period = 0;
  if (v2)
    {
      if (!g_file_get_contents (max_path, &max, NULL, NULL))
        return 0;
      g_auto (GStrv) fields = g_strsplit (g_strchomp (max), " ", -1);
      if (g_strv_length (fields) != 2 || !parse_integer (fields[0], &quota)
          || !parse_integer (fields[1], &period))
        return 0;  /* "max": no quota */
    }
  else if (!g_file_get_contents (quota_path, &quota_text, NULL, NULL)
           || !g_file_get_contents (period_path, &period_text, NULL, NULL)
           || !parse_integer (quota_text, &quota) || !parse_integer (period_text, &period))
    return 0;
  return quota > 0 && period > 0 ? (double) quota / period : 0;  /* -1: none */
}

/* The smallest quota from the group at path (in /proc/self/cgroup) up to
 * the top of the hierarchy mounted with mount_root at mount_point. */
static double
hierarchy_quota (const char *path, const char *mount_root, const char *mount_point,
                 const char *root, gboolean v2)
{
  /* The group's place below the mount; a group outside what the mount
   * shows (a container's own namespace) is the mount's top. */
  const char *below = "";
  if (g_str_equal (mount_root, "/"))
    below = path;
  else if (g_str_has_prefix (path, mount_root)
           && (path[strlen (mount_root)] == '/' || path[strlen (mount_root)] == '\0'))
    below = path + strlen (mount_root);
  if (strstr (below, "/.."))
    below = "";
  g_autofree char *top = g_build_filename (root, mount_point, NULL);
  g_autofree char *dir = g_build_filename (top, below, NULL);
  double smallest = 0;
  for (;;)
    {
      double q = group_quota (dir, v2);
      if (q > 0 && (smallest == 0 || q < smallest))
        smallest = q;
      char *parent = g_path_get_dirname (dir);
      gboolean up = strlen (dir) > strlen (top) && strlen (parent) < strlen (dir);
      g_free (dir);
      dir = parent;
      if (!up)
        break;
    }
  return smallest;
}

double
st_cgroup_cpu_quota (const char *cgroups, const char *mountinfo, const char *root)
{
  g_autofree char *v1_path = NULL, *v2_path = NULL;
  g_auto (GStrv) lines = g_strsplit (cgroups, "\n", -1);
  for (char **line = lines; *line; line++)
    {
      /* hierarchy-ID:controller-list:path; the path may hold colons. */
      g_auto (GStrv) f = g_strsplit (*line, ":", 3);
      if (g_strv_length (f) != 3 || f[2][0] != '/')
        continue;
      if (g_str_equal (f[0], "0") && f[1][0] == '\0')
        {
          g_free (v2_path);
          v2_path = g_strdup (f[2]);
        }
      else if (list_has (f[1], "cpu"))
        {
          g_free (v1_path);
          v1_path = g_strdup (f[2]);
        }
    }
  double smallest = 0;
  g_auto (GStrv) mounts = g_strsplit (mountinfo, "\n", -1);
  for (char **line = mounts; *line; line++)
    {
      /* id parent dev root mount-point options [optional...] - type source super-options */
      g_auto (GStrv) f = g_strsplit (*line, " ", -1);
      guint n = g_strv_length (f), dash = 6;
      while (dash < n && !g_str_equal (f[dash], "-"))
        dash++;
      if (dash + 3 >= n)
        continue;
      const char *type = f[dash + 1], *options = f[dash + 3];
      gboolean v2 = g_str_equal (type, "cgroup2");
      const char *path = v2 ? v2_path : g_str_equal (type, "cgroup") && list_has (options, "cpu")
                                            ? v1_path : NULL;
      if (!path)
        continue;
      g_autofree char *mount_root = mountinfo_unescape (f[3]);
      g_autofree char *mount_point = mountinfo_unescape (f[4]);
      double q = hierarchy_quota (path, mount_root, mount_point, root, v2);
      if (q > 0 && (smallest == 0 || q < smallest))
        smallest = q;
    }
  return smallest;
}

int
st_default_threads (void)
{
  static gsize once;
  static int threads;
  if (g_once_init_enter (&once))
    {
      int cpus = MIN ((int) g_get_num_processors (), ST_MAX_THREADS);
      g_autofree char *cgroups = NULL, *mountinfo = NULL;
      if (g_file_get_contents ("/proc/self/cgroup", &cgroups, NULL, NULL)
          && g_file_get_contents ("/proc/self/mountinfo", &mountinfo, NULL, NULL))
        {
          double quota = st_cgroup_cpu_quota (cgroups, mountinfo, "");
          if (quota > 0)
            cpus = MAX (1, MIN (cpus, (int) ceil (quota)));
        }
      threads = cpus;
      g_once_init_leave (&once, 1);
    }
  return threads;
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
  /* Asked once: every forward checks the limit, and glibc answers
   * _SC_PHYS_PAGES with a system call. */
  static gsize once;
  static guint64 half_memory;
  if (g_once_init_enter (&once))
    {
      long pages = sysconf (_SC_PHYS_PAGES), page = sysconf (_SC_PAGESIZE);
      half_memory = pages <= 0 || page <= 0 ? G_GUINT64_CONSTANT (4) << 30
                                            : (guint64) pages * (guint64) page / 2;
      g_once_init_leave (&once, 1);
    }
  return half_memory;
}
