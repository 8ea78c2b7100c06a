/* strata — the stage plugin ABI.
 *
 * A plugin is a shared object exporting one symbol,
 *
 *     const StPluginInfo *strata_plugin_info (void);
 *
 * which returns static, read-only descriptions of one or more stage kinds
 * (ST_PLUGIN_DEFINE writes it).  The core lists kinds and validates every
 * parameter from these tables without running plugin code; a plugin never
 * parses strings.
 *
 * Life of a plugin and its stages:
 * - strata_plugin_info() is called when the core first lists the plugins
 *   (normally once per process), from whichever thread needs them first.
 *   It must only return its static table: no allocation, no side effects.
 *   A file that provides a kind stays loaded until the process exits, so
 *   the tables are plain static data.  Plugins are opened with local
 *   binding: their symbols are not seen by other plugins.
 * - A stage is one use of a kind in a pipeline, with its own name, config
 *   (filled from the StParamSpec table and validated by the core) and
 *   priv.  Then, per stage: infer (again whenever the input shapes change),
 *   forward for every image or batch, backward when training, finalize
 *   once when the stage is freed.
 *
 * Threads: the core never calls infer, forward, backward or finalize on one
 * StStage from two threads at once.  A runner that works on several images
 * in parallel builds one copy of the pipeline (and so one StStage) per
 * worker thread, so different stages of the same kind do run concurrently:
 * keep all mutable state in stage->priv, none in static or global
 * variables.  Inside a call a stage may split its work over the core's
 * thread pool with st_parallel_for().
 *
 * Memory: the core owns everything it hands a plugin (the stage and its
 * config, shapes, tensors, parameters, contexts); a plugin owns stage->priv
 * and frees it in finalize.  Nothing the core hands over may be kept past
 * the call that received it, except what the StStage fields below say
 * lives as long as the stage.
 *
 * What may change without bumping ST_ABI_VERSION: fields appended to the end
 * of StKind (the core reads struct_size and treats missing fields as unset),
 * new StParamType values and new functions.  Reordering or removing fields,
 * or changing a callback's signature, bumps it. */
#pragma once

#include <glib.h>
#include <gmodule.h>
#include <stddef.h>
#include <strata/error.h>
#include <strata/tensor.h>

G_BEGIN_DECLS

/* The ABI this header describes.  Every StKind and the StPluginInfo carry
 * it; the core refuses a plugin whose version differs from its own, naming
 * the file and both versions (`strata plugins` lists it under "Not
 * loaded:" and prints the version it has). */
#define ST_ABI_VERSION 1

/* Shown by `strata plugins`; no other effect. */
typedef enum {
  ST_CATEGORY_FILTER,    /* classic image filters: fixed weights */
  ST_CATEGORY_LAYER,     /* network layers, usually trainable */
  ST_CATEGORY_PLUMBING,  /* colour, resize, add, concat, ... */
} StCategory;

/* ---- Parameters -------------------------------------------------------
 * A kind declares each key it accepts in a table of StParamSpec.  Before
 * any plugin code runs, the core zero-fills a config struct of
 * config_size bytes, stores each default, then each value the pipeline
 * gives, parsed, range-checked and converted to the field type below.
 * Unknown keys, bad values and missing required keys are errors that never
 * reach the plugin.  The config is the core's: read it through
 * stage->config, never write or free it. */

typedef enum {
  ST_PARAM_INT,          /* stored as int */
  ST_PARAM_DOUBLE,       /* stored as double; finite */
  ST_PARAM_BOOL,         /* stored as gboolean; true/false, yes/no, on/off, 1/0 */
  ST_PARAM_STRING,       /* stored as char *, owned by the core */
  ST_PARAM_ENUM,         /* stored as int: index into choices (names match case-insensitively) */
  ST_PARAM_INT_LIST,     /* stored as StIntList, values owned by the core */
  ST_PARAM_DOUBLE_LIST,  /* stored as StDoubleList, values owned by the core */
  ST_PARAM_INT64,        /* stored as gint64 (seeds, counts past int) */
} StParamType;

/* Lists are written "1,2,3"; a ';' starts a new row ("0,-1,0;-1,5,-1;0,-1,0"),
 * and every row must have the same length.  A list that was given has at
 * least one value; one left unset (no default, not required) is { 0, NULL }. */
typedef struct {
  int n;                 /* number of values */
  int *values;           /* n values, row-major */
} StIntList;

typedef struct {
  int n;                 /* number of values */
  int rows;              /* 1 unless the value had ';'-separated rows */
  double *values;        /* n values, row-major */
} StDoubleList;

typedef enum {
  ST_PARAM_REQUIRED = 1 << 0,  /* the pipeline must give it */
  ST_PARAM_HAS_MIN  = 1 << 1,  /* min applies (to ints, doubles and list elements) */
  ST_PARAM_HAS_MAX  = 1 << 2,  /* max applies */
  ST_PARAM_MIN_EXCLUSIVE = 1 << 3,  /* with HAS_MIN: more than min, not min itself */
  ST_PARAM_MAX_EXCLUSIVE = 1 << 4,  /* with HAS_MAX: less than max */
} StParamFlags;

/* One key of a kind, as static data.  `strata plugins NAME` prints name,
 * type, help, default and range or choices from it. */
typedef struct {
  const char *name;            /* the key in pipeline files, unique in the kind */
  StParamType type;
  const char *default_value;   /* as written in a pipeline file; NULL: unset (field stays zero) */
  StParamFlags flags;
  double min, max;             /* inclusive bounds, see flags */
  /* ST_PARAM_ENUM: the allowed names, NULL-terminated.
   * ST_PARAM_INT: optional symbolic names also accepted; the i-th name is
   * stored as -(i + 1), e.g. padding=same gives -1.  Ranges do not apply
   * to them. */
  const char *const *choices;
  const char *help;            /* one line */
  size_t offset;               /* offsetof (the kind's config struct, field); below config_size */
} StParamSpec;

/* ---- Stages ------------------------------------------------------------ */

typedef struct _StKind StKind;
typedef struct _StStage StStage;
typedef struct _StStagePrivate StStagePrivate;
typedef struct _StRunContext StRunContext;
typedef struct _StRng StRng;   /* a seeded random generator, see st_rng_*() */

#define ST_HALO_WHOLE (-1)     /* the stage needs its whole input */

/* One stage of a pipeline.  The core allocates and frees it; the plugin
 * reads the fields the core sets, writes the ones infer sets, and owns
 * priv.  name, kind and config live as long as the stage. */
struct _StStage {
  /* Set by the core. */
  const char *name;            /* unique in its pipeline, e.g. "conv1" */
  const StKind *kind;
  const void *config;          /* the kind's config struct, filled and validated; read-only */
  int n_inputs;                /* before infer: min_inputs to max_inputs */
  /* Before infer: n_inputs shapes, in the order of the pipeline's input=
   * key; valid until the next infer. */
  const StShape *in_shapes;

  /* Set by infer.  The core resets them (out_shape and macs to zero,
   * halo to 0, floored to FALSE) before every call. */
  StShape out_shape;           /* every dimension at least 1 */
  /* Pixels of input needed around an output region (a 3x3 kernel needs 1,
   * a pointwise stage 0), or ST_HALO_WHOLE: lets a runner cut a large
   * image into strips when every stage is local. */
  int halo;
  /* An output size was rounded down (W1 - F + 2P not divisible by S):
   * `strata inspect` marks it. */
  gboolean floored;
  double macs;                 /* multiply-adds for the whole batch, for `strata inspect` */

  void *priv;                  /* the plugin's own state, NULL at first; freed by kind->finalize */
  StStagePrivate *core;        /* the core's own; do not touch */
};

/* The context of one forward or backward call: set by the core, valid
 * during the call only, never NULL. */
struct _StRunContext {
  gboolean training;           /* dropout and batchnorm read it; FALSE when running a pipeline */
  /* Seeded, so a run is repeatable; use with st_rng_*() from the calling
   * thread only (not inside st_parallel_for()'s fn). */
  StRng *rng;
  struct _StPool *pool;        /* use through st_parallel_for() */
  /* Appended: NULL, or one seed per item of the batch forward is given,
   * set by the trainer (from the run's seed, the epoch and the sample's
   * index in the dataset) and by `strata inspect --augment`, so that an
   * item's draws depend on nothing else: not on the batch, the thread
   * count or a resume.  Read it through st_rng_item_new(). */
  const guint64 *item_seeds;
};

/* What a kind says about itself beyond its callbacks, in StKind.flags, so
 * that the core never needs to know a kind by its name. */
typedef enum {
  /* forward is a softmax over channels at every pixel, as PyTorch's
   * Softmax(dim=1) (st_softmax_channels() computes it): its output is class
   * probabilities.  A classifier ending in such a stage reports them as
   * they are, and training fuses the stage with the cross-entropy: it
   * trains on the stage's input and takes the gradient there as
   * (p − onehot) / B, never the log of a tiny probability. */
  ST_KIND_OUTPUTS_PROBABILITIES = 1 << 0,
  /* infer may refuse an input for its height and width alone (a crop
   * larger than the image).  A filter pipeline, which takes any image, is
   * shape-checked when it loads on a typical image; with such a stage a
   * shape error there is not final, and each image is checked as it runs
   * (its error then names the file and the image's own size). */
  ST_KIND_SIZE_DEPENDENT = 1 << 1,
  /* An augmentation: random while training, with each batch item's draws
   * from its own st_rng_item_new(), and the identity (or a fixed,
   * documented transform) otherwise.  Training caches the preparation
   * stages before the first such stage once per image and runs it and
   * the rest per batch, every epoch. */
  ST_KIND_RANDOM = 1 << 2,
  /* forward writes every element of its output, and backward every
   * element of each grad_inputs[i] it is given (adding only into values it
   * wrote itself in that call).  The core then hands it buffers as the
   * last batch left them instead of zero-filled ones: training keeps a
   * pipeline's tensors from batch to batch, and filling them again costs
   * a pass over memory.  Set it only when every code path of both
   * callbacks (every stride, group and thread split) writes everything;
   * a kind without it gets zeros, as the callbacks' comment below says. */
  ST_KIND_WRITES_ALL = 1 << 3,
} StKindFlags;

/* infer: from stage->config and stage->in_shapes, set stage->out_shape (and
 * halo, floored, macs) or fail with a GError saying what is wrong; the core
 * adds the file and stage names.  Called again whenever the input shapes
 * change (filters see every image's size; training's last batch may be
 * smaller), so it must accept being called several times: reuse or free
 * what an earlier call put in priv.  Declare parameters here with
 * st_stage_declare_param(), which is idempotent: declare the same ones on
 * every call.  Runs before any forward.
 *
 * forward: write output (already allocated with out_shape, zero-filled;
 * for a kind with ST_KIND_WRITES_ALL, holding anything).
 * inputs[i] has in_shapes[i] of the last infer; never write to it.  In
 * training, forward may update non-trainable parameters (running
 * statistics) and keep in priv what backward needs.
 *
 * backward: from grad_output, overwrite grad_inputs[i] (allocated like
 * inputs[i], zero-filled unless the kind has ST_KIND_WRITES_ALL; NULL
 * where no gradient is wanted) and add into the parameter gradients
 * (st_stage_param_grad()).  inputs and output are what the last forward
 * call saw and produced, under the same ctx->training.  NULL for
 * inference-only kinds, which can then sit in a trainable network only
 * before its first stage with parameters.
 *
 * A callback that fails returns FALSE and sets error; one that succeeds
 * returns TRUE and leaves error alone.  forward and backward may be given
 * any batch size n; they get the whole batch in one call.
 *
 * finalize: free stage->priv.  Called once, when the stage is freed; priv
 * may still be NULL (infer never ran, or failed).  May be NULL. */
struct _StKind {
  guint32 abi_version;         /* ST_ABI_VERSION (see ST_KIND_HEADER) */
  guint32 struct_size;         /* sizeof (StKind) as the plugin was compiled */
  const char *name;            /* the type= of pipeline files */
  const char *summary;         /* one line, for `strata plugins` */
  StCategory category;
  /* The highest rank that loads provides the kind; among equal ranks, the
   * first found on the search path.  0 for a plain implementation. */
  int rank;
  int min_inputs, max_inputs;  /* max_inputs < 0: any number */
  const StParamSpec *params;   /* n_params specs, static; NULL when n_params is 0 */
  int n_params;
  size_t config_size;          /* sizeof the struct the specs' offsets point into; 0 without */

  gboolean (*infer)    (StStage *stage, GError **error);
  gboolean (*forward)  (StStage *stage, const StRunContext *ctx,
                        const StTensor *const *inputs, StTensor *output,
                        GError **error);
  gboolean (*backward) (StStage *stage, const StRunContext *ctx,
                        const StTensor *const *inputs, const StTensor *output,
                        const StTensor *grad_output, StTensor *const *grad_inputs,
                        GError **error);
  void     (*finalize) (StStage *stage);

  /* Appended in ABI version 1: a plugin built before them reads as unset
   * (the core looks at struct_size; see st_kind_flags()). */
  guint32 flags;               /* StKindFlags, or-ed */
};

/* Fills abi_version and struct_size of a StKind initialiser: start every
 * kind with it, so a rebuild against another strata stamps that ABI. */
#define ST_KIND_HEADER .abi_version = ST_ABI_VERSION, .struct_size = sizeof (StKind)

/* What strata_plugin_info() returns: static, read-only data.  Its fields,
 * and the first three of StKind (abi_version, struct_size, name), keep
 * their place in every ABI version: the core reads them from a plugin of
 * another ABI to say which kinds it refused. */
typedef struct {
  guint32 abi_version;         /* ST_ABI_VERSION */
  int n_kinds;
  const StKind *const *kinds;  /* n_kinds pointers to static StKind */
} StPluginInfo;

/* The one symbol a plugin exports.  ST_PLUGIN_DEFINE (&a_kind, &b_kind)
 * defines it at file scope for the listed kinds, with this ABI version. */
#define ST_PLUGIN_ENTRY "strata_plugin_info"
/* Declared here so that a plugin's own tests can call it to get its kinds. */
G_MODULE_EXPORT const StPluginInfo *strata_plugin_info (void);
#define ST_PLUGIN_DEFINE(...)                                            \
  G_MODULE_EXPORT const StPluginInfo *strata_plugin_info (void);         \
  G_MODULE_EXPORT const StPluginInfo *strata_plugin_info (void)          \
  {                                                                      \
    static const StKind *const kinds[] = { __VA_ARGS__ };                \
    static const StPluginInfo info = {                                   \
      ST_ABI_VERSION, G_N_ELEMENTS (kinds), kinds };                     \
    return &info;                                                        \
  }

/* ---- Learnable parameters ----------------------------------------------
 * Weights belong to the core, not the plugin: it initialises, trains,
 * saves and loads them by name, so a plugin only declares them and reads
 * them (and adds into their gradients) in forward and backward. */

typedef enum {
  ST_INIT_ZEROS,
  ST_INIT_ONES,
  ST_INIT_HE_UNIFORM,          /* U(-b, b), b = sqrt(6 / fan_in), fan_in = product of dims[1..] */
  ST_INIT_UNIFORM,             /* U(-arg, arg) */
  ST_INIT_CONSTANT,            /* every element arg (PReLU's slope of 0.25) */
} StInit;

/* Declares the parameter "<stage>.<name>" (a learnable or saved tensor,
 * which the core calls a weight; "param" in these three functions' names
 * is kept for compatibility and is not a config key) with dims (rank 1 to 4, as in a
 * PyTorch state_dict: conv weight [out, in/groups, kh, kw], dense weight
 * [out, in], bias [out]) and returns its index, or -1 with error set when a
 * parameter of that name already exists with other dims.  The tensor stores
 * the dims padded with trailing 1s to four.  trainable = FALSE for saved
 * statistics such as batchnorm's running mean.
 *
 * Call it from infer only.  Indices count from 0 in declaration order and
 * a second call with the same name and dims returns the first index
 * without touching the values.  The new tensor is initialised by init
 * (init_arg: the bound of ST_INIT_UNIFORM, otherwise unused; random ones
 * draw from a generator seeded with the stage name, so they repeat); a
 * weights file or training may replace the values later.  dims is copied. */
int st_stage_declare_param (StStage *stage, const char *name,
                            const int *dims, int rank, StInit init,
                            double init_arg, gboolean trainable,
                            GError **error);

/* The parameter and its gradient, by index in declaration order.
 * Owned by the core; the gradient is NULL outside training.
 *
 * Both live as long as the stage; look them up in each call rather than
 * keeping the pointers.  forward and backward read the value; only forward
 * in training writes to it, and only for non-trainable parameters.
 * backward adds (+=) into the gradient: the core zeroes it before each
 * batch. */
StTensor *st_stage_param      (StStage *stage, int index);
StTensor *st_stage_param_grad (StStage *stage, int index);

/* ---- Run-time services ----------------------------------------------- */

/* Work on [begin, end) of the items of one st_parallel_for() call. */
typedef void (*StRangeFunc) (gsize begin, gsize end, gpointer data);

/* Calls fn over [0, n) split into contiguous ranges run on the core's
 * threads; returns when all are done.  fn must not call back into the
 * core's thread pool.
 *
 * Ranges are handed out as threads become free (about four per thread),
 * so a thread the system deschedules does not hold up the rest: a thread
 * may run fn several times in one call, and which thread runs an item
 * varies from call to call.  What fn computes for an item must depend on
 * the item alone (keep per-item scratch and partial sums indexed by item,
 * not by thread), which keeps results identical from run to run.  The
 * ranges do not overlap: fn may write its own items' outputs without
 * locks, and anything shared must be read-only or protected.  fn
 * returns nothing; to report a failure, record it in data (one slot per
 * item, or an atomic flag) and set the GError after st_parallel_for()
 * returns.  The number of threads is set once per run (`-j`): n is
 * usually the number of independent pieces of work (rows, planes,
 * channels), whatever the thread count. */
void st_parallel_for (const StRunContext *ctx, gsize n, StRangeFunc fn,
                      gpointer data);
/* The threads st_parallel_for() uses, the caller's included: at least 1. */
int  st_parallel_threads (const StRunContext *ctx);

/* Uniform in [0, 1) and standard normal, from the context's generator. */
double st_rng_uniform (StRng *rng);
double st_rng_normal  (StRng *rng);
/* 64 random bits. */
guint64 st_rng_next   (StRng *rng);
/* A generator of its own for batch item `item` of a forward call: seeded
 * from ctx->item_seeds[item] when the core set them, else from the next
 * draw of ctx->rng (so call it from the calling thread, in item order).
 * Free with st_rng_free(). */
StRng  *st_rng_item_new (const StRunContext *ctx, int item);
void    st_rng_free     (StRng *rng);

/* ---- Helpers for kinds ------------------------------------------------ */

/* kind->flags, or 0 for a kind compiled before the field existed. */
guint32 st_kind_flags (const StKind *kind);

/* For a kind whose inputs must all have one shape (add, magnitude): sets
 * stage->out_shape to it and returns TRUE, or fails with ST_ERROR_SHAPE
 * naming the first input that differs ("input 2 is 1x3x4x4 but input 1 is
 * 1x3x4x5; all inputs must have one shape").  Call it from infer. */
gboolean st_stage_check_same_shapes (StStage *stage, GError **error);

/* 'same' padding along one axis of a window of size taps, dilation apart,
 * moved by stride, over in pixels: the least padding that gives
 * ceil(in / stride) outputs, split in two with the odd pixel after
 * (TensorFlow's rule).  At stride 1 that is dilation·(size − 1) in all,
 * floor of half before: PyTorch's padding='same'.  conv2d and kernel both
 * pad this way. */
static inline void
st_same_padding (int in, int size, int stride, int dilation, int *before, int *after)
{
  gint64 span = (gint64) dilation * (size - 1) + 1;
  gint64 out = ((gint64) in + stride - 1) / stride;
  gint64 total = MAX ((out - 1) * stride + span - in, 0);
  *before = (int) (total / 2);
  *after = (int) (total - total / 2);
}

/* Declare a kind's callbacks PREFIX_infer and PREFIX_forward (and
 * PREFIX_backward) with the signatures StKind wants, so that the kind's
 * table can lead its file and the definitions follow it. */
#define ST_DECLARE_FORWARD(prefix)                                       \
  static gboolean prefix##_infer (StStage *stage, GError **error);       \
  static gboolean prefix##_forward (StStage *stage, const StRunContext *ctx, \
                                    const StTensor *const *inputs,       \
                                    StTensor *output, GError **error)
#define ST_DECLARE_BACKWARD(prefix)                                      \
  static gboolean prefix##_backward (StStage *stage, const StRunContext *ctx, \
                                     const StTensor *const *inputs,      \
                                     const StTensor *output,             \
                                     const StTensor *grad_output,        \
                                     StTensor *const *grad_inputs,       \
                                     GError **error)

G_END_DECLS
