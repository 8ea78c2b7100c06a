/* strata — the stage plugin ABI.
 *
 * A plugin is a shared object exporting one symbol,
 *
 *     const StPluginInfo *strata_plugin_info (void);
 *
 * which returns static, read-only descriptions of one or more stage kinds.
 * The core lists kinds and validates every parameter from these tables
 * without running plugin code; a plugin never parses strings.
 *
 * Threads: the core never calls infer, forward or backward on one StStage
 * from two threads at once.  A runner that works on several images in
 * parallel builds one graph (and so one StStage) per worker.  Inside a call a
 * stage may split its work with st_parallel_for().
 *
 * What may change without bumping ST_ABI_VERSION: fields appended to the end
 * of StKind (the core reads struct_size and treats missing fields as unset),
 * new StParamType values and new functions.  Reordering or removing fields,
 * or changing a callback's signature, bumps it. */
#pragma once

#include <glib.h>
#include <gmodule.h>
#include <stddef.h>
#include <strata/tensor.h>

G_BEGIN_DECLS

#define ST_ABI_VERSION 1

/* Error domain used by the core and by plugins. */
#define ST_ERROR (st_error_quark ())
GQuark st_error_quark (void);

typedef enum {
  ST_ERROR_FAILED,     /* anything else */
  ST_ERROR_USAGE,      /* bad command-line option */
  ST_ERROR_PIPELINE,   /* malformed pipeline file or inline chain */
  ST_ERROR_SHAPE,      /* shapes that do not fit together */
  ST_ERROR_PLUGIN,     /* a plugin that cannot be loaded or used */
  ST_ERROR_IMAGE,      /* an image that cannot be read or written */
  ST_ERROR_WEIGHTS,    /* a malformed weights file or one that does not fit */
  ST_ERROR_DATA,       /* a malformed dataset */
  ST_ERROR_IO,         /* a file that cannot be read or written */
} StErrorCode;

typedef enum {
  ST_CATEGORY_FILTER,    /* classic image filters: fixed weights */
  ST_CATEGORY_LAYER,     /* network layers, usually trainable */
  ST_CATEGORY_PLUMBING,  /* colour, resize, add, concat, ... */
} StCategory;

/* ---- Parameters ------------------------------------------------------- */

typedef enum {
  ST_PARAM_INT,          /* stored as int */
  ST_PARAM_DOUBLE,       /* stored as double */
  ST_PARAM_BOOL,         /* stored as gboolean; true/false, yes/no, on/off, 1/0 */
  ST_PARAM_STRING,       /* stored as char *, owned by the core */
  ST_PARAM_ENUM,         /* stored as int: index into choices */
  ST_PARAM_INT_LIST,     /* stored as StIntList, values owned by the core */
  ST_PARAM_DOUBLE_LIST,  /* stored as StDoubleList, values owned by the core */
} StParamType;

/* Lists are written "1,2,3"; a ';' starts a new row ("0,-1,0;-1,5,-1;0,-1,0"),
 * and every row must have the same length. */
typedef struct {
  int n;
  int *values;
} StIntList;

typedef struct {
  int n;
  int rows;              /* 1 unless the value had ';'-separated rows */
  double *values;        /* n values, row-major */
} StDoubleList;

typedef enum {
  ST_PARAM_REQUIRED = 1 << 0,  /* the pipeline must give it */
  ST_PARAM_HAS_MIN  = 1 << 1,  /* min applies (to ints, doubles and list elements) */
  ST_PARAM_HAS_MAX  = 1 << 2,  /* max applies */
} StParamFlags;

typedef struct {
  const char *name;
  StParamType type;
  const char *default_value;   /* as written in a pipeline file; NULL: unset (field stays zero) */
  StParamFlags flags;
  double min, max;             /* inclusive bounds, see flags */
  /* ST_PARAM_ENUM: the allowed names, NULL-terminated.
   * ST_PARAM_INT: optional symbolic names also accepted; the i-th name is
   * stored as -(i + 1), e.g. padding=same gives -1. */
  const char *const *choices;
  const char *help;            /* one line */
  size_t offset;               /* offsetof (the kind's config struct, field) */
} StParamSpec;

/* ---- Stages ------------------------------------------------------------ */

typedef struct _StKind StKind;
typedef struct _StStage StStage;
typedef struct _StStagePrivate StStagePrivate;
typedef struct _StRunContext StRunContext;

#define ST_HALO_WHOLE (-1)     /* the stage needs its whole input */

struct _StStage {
  const char *name;            /* unique name in its pipeline */
  const StKind *kind;
  const void *config;          /* the kind's config struct, filled and validated */
  int n_inputs;
  const StShape *in_shapes;    /* n_inputs shapes, set before infer */

  /* Set by infer. */
  StShape out_shape;
  int halo;                    /* pixels of input needed around an output region, or ST_HALO_WHOLE */
  gboolean floored;            /* an output size was rounded down (W1 - F + 2P not divisible by S) */
  double macs;                 /* multiply-adds for the whole batch of in_shapes */

  void *priv;                  /* the plugin's own state; freed by kind->finalize */
  StStagePrivate *core;        /* the core's own; do not touch */
};

/* The context of one forward or backward call. */
struct _StRunContext {
  gboolean training;           /* dropout and batchnorm read it */
  struct _StRng *rng;          /* seeded; use only from the calling thread */
  struct _StPool *pool;        /* use through st_parallel_for() */
};

/* infer: from stage->config and stage->in_shapes, set stage->out_shape (and
 * halo, floored, macs) or fail with a GError saying what is wrong; the core
 * adds the file and stage names.  Called again whenever the input shapes
 * change (filters see every image's size); declare parameters here with
 * st_stage_declare_param(), which is idempotent.
 *
 * forward: write output (already allocated with out_shape, zero-filled).
 *
 * backward: from grad_output, overwrite grad_inputs[i] (allocated like
 * inputs[i], zero-filled; NULL where no gradient is wanted) and add into the
 * parameter gradients (st_stage_param_grad()).  inputs and output are what
 * the last forward call saw and produced.  NULL for inference-only kinds.
 *
 * finalize: free stage->priv.  May be NULL. */
struct _StKind {
  guint32 abi_version;         /* ST_ABI_VERSION */
  guint32 struct_size;         /* sizeof (StKind) */
  const char *name;            /* the type= of pipeline files */
  const char *summary;         /* one line */
  StCategory category;
  int rank;                    /* the highest rank that loads provides the kind */
  int min_inputs, max_inputs;  /* max_inputs < 0: any number */
  const StParamSpec *params;
  int n_params;
  size_t config_size;

  gboolean (*infer)    (StStage *stage, GError **error);
  gboolean (*forward)  (StStage *stage, const StRunContext *ctx,
                        const StTensor *const *inputs, StTensor *output,
                        GError **error);
  gboolean (*backward) (StStage *stage, const StRunContext *ctx,
                        const StTensor *const *inputs, const StTensor *output,
                        const StTensor *grad_output, StTensor *const *grad_inputs,
                        GError **error);
  void     (*finalize) (StStage *stage);
};

/* Fills abi_version and struct_size of a StKind initialiser. */
#define ST_KIND_HEADER .abi_version = ST_ABI_VERSION, .struct_size = sizeof (StKind)

typedef struct {
  guint32 abi_version;         /* ST_ABI_VERSION */
  int n_kinds;
  const StKind *const *kinds;
} StPluginInfo;

/* The one symbol a plugin exports. */
#define ST_PLUGIN_ENTRY "strata_plugin_info"
#define ST_PLUGIN_DEFINE(...)                                            \
  G_MODULE_EXPORT const StPluginInfo *strata_plugin_info (void);         \
  G_MODULE_EXPORT const StPluginInfo *strata_plugin_info (void)          \
  {                                                                      \
    static const StKind *const kinds[] = { __VA_ARGS__ };                \
    static const StPluginInfo info = {                                   \
      ST_ABI_VERSION, G_N_ELEMENTS (kinds), kinds };                     \
    return &info;                                                        \
  }

/* ---- Learnable parameters ---------------------------------------------- */

typedef enum {
  ST_INIT_ZEROS,
  ST_INIT_ONES,
  ST_INIT_HE_UNIFORM,          /* U(-b, b), b = sqrt(6 / fan_in), fan_in = product of dims[1..] */
  ST_INIT_UNIFORM,             /* U(-arg, arg) */
} StInit;

/* Declares the parameter "<stage>.<name>" with dims (rank 1 to 4, as in a
 * PyTorch state_dict: conv weight [out, in/groups, kh, kw], dense weight
 * [out, in], bias [out]) and returns its index, or -1 with error set when a
 * parameter of that name already exists with other dims.  The tensor stores
 * the dims padded with trailing 1s to four.  trainable = FALSE for saved
 * statistics such as batchnorm's running mean. */
int st_stage_declare_param (StStage *stage, const char *name,
                            const int *dims, int rank, StInit init,
                            double init_arg, gboolean trainable,
                            GError **error);

/* The parameter and its gradient, by index in declaration order.
 * Owned by the core; the gradient is NULL outside training. */
StTensor *st_stage_param      (StStage *stage, int index);
StTensor *st_stage_param_grad (StStage *stage, int index);

/* ---- Run-time services ----------------------------------------------- */

typedef void (*StRangeFunc) (gsize begin, gsize end, gpointer data);

/* Calls fn over [0, n) split into contiguous ranges run on the core's
 * threads; returns when all are done.  fn must not call back into the
 * core's thread pool. */
void st_parallel_for (const StRunContext *ctx, gsize n, StRangeFunc fn,
                      gpointer data);
int  st_parallel_threads (const StRunContext *ctx);

/* Uniform in [0, 1) and standard normal, from the context's generator. */
double st_rng_uniform (struct _StRng *rng);
double st_rng_normal  (struct _StRng *rng);
guint64 st_rng_next   (struct _StRng *rng);

G_END_DECLS
