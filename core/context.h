/* strata — run contexts: thread pool and seeded random generator. */
#pragma once

#include <strata/strata.h>

G_BEGIN_DECLS

typedef struct _StPool StPool;

StRng  *st_rng_new (guint64 seed);
void    st_rng_free (StRng *rng);
/* Copies a generator's state (for checkpoints). */
void    st_rng_get_state (const StRng *rng, guint64 state[4]);
void    st_rng_set_state (StRng *rng, const guint64 state[4]);

/* The seed of sample `index`'s random draws in `epoch` of a run seeded
 * with seed (StRunContext.item_seeds): the same whatever the batches, the
 * thread count or a resume.  Training and inspect --augment both use it,
 * so inspect shows what training draws. */
guint64 st_item_seed (guint64 seed, int epoch, int index);

/* The most threads a pool (and `strata run -j`) may have: far more than
 * any machine's cores, and few enough that their stacks fit in memory. */
#define ST_MAX_THREADS 1024

/* The threads to run when the user does not say: the CPUs the process
 * may run on, capped by its control group's CPU quota (a container's
 * --cpus, a Kubernetes CPU limit), rounded up; at most ST_MAX_THREADS. */
int     st_default_threads (void);

/* The CPU quota, in CPUs, that a process's control groups set (cgroup v2
 * cpu.max, v1 cpu.cfs_quota_us over cpu.cfs_period_us, the smallest of
 * its group and the groups above), from the texts of /proc/self/cgroup
 * and /proc/self/mountinfo, reading the limit files under root ("" for
 * the real ones); 0 when none is set or nothing can be read. */
double  st_cgroup_cpu_quota (const char *cgroups, const char *mountinfo, const char *root);

/* A pool of n_threads workers (the caller counts as one); n_threads <= 0
 * means st_default_threads ().  st_pool_try_new refuses more than ST_MAX_THREADS,
 * and a thread that cannot be started, with a GError (ST_ERROR_USAGE,
 * ST_ERROR_FAILED); st_pool_new never fails: it runs with ST_MAX_THREADS
 * at most, or with the threads it could start. */
StPool *st_pool_try_new (int n_threads, GError **error);
StPool *st_pool_new (int n_threads);
void    st_pool_free (StPool *pool);
int     st_pool_threads (const StPool *pool);

/* Lets the calling thread run on every CPU the process may use.  A pool
 * that has a thread for every CPU binds its threads, the calling one
 * included, and a thread inherits its creator's CPUs: threads the core
 * starts call this first. */
void    st_thread_unpin (void);

/* Says that from now on another thread of the process works beside the
 * pool's calls (TRUE), such as a decoder running ahead, or no longer
 * (FALSE).  A pool with a thread for every CPU has its threads spin up to
 * a millisecond for the next call, which would take that thread's CPU;
 * while it shares, they sleep soon instead.  pool may be NULL. */
void    st_pool_set_sharing (StPool *pool, gboolean sharing);

/* Pools made from now on leave their threads free: for a process that
 * shares the machine's CPUs with others of its job (several MPI ranks on
 * one machine), where every process would bind to the same CPUs. */
void    st_pool_forbid_binding (void);

/* A context owning a new pool and generator: st_run_context_try_new fails
 * as st_pool_try_new does; st_run_context_new never fails, as
 * st_pool_new. */
StRunContext *st_run_context_new (int n_threads, guint64 seed);
StRunContext *st_run_context_try_new (int n_threads, guint64 seed, GError **error);
void          st_run_context_free (StRunContext *ctx);

/* The most bytes a pipeline may allocate for its tensors and learnable
 * parameters (--max-memory).  Checked when shapes are inferred and
 * parameters declared, before anything is allocated.  The default is half
 * of the machine's physical memory. */
void    st_set_memory_limit (guint64 bytes);
guint64 st_memory_limit (void);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (StRunContext, st_run_context_free)

G_END_DECLS
