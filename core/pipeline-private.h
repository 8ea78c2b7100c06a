/* strata — what the files of the pipeline share: the graph's nodes and
 * the pipeline struct.  pipeline.c builds the graph and infers its shapes,
 * keyfile.c reads the key-file syntax, pipeline-file.c pipeline files
 * and what they include, pipeline-inline.c inline chains and installed
 * names, pipeline-forward.c runs the graph both ways. */
#pragma once

#include "pipeline.h"
#include "stage.h"
#include "keyfile.h"

G_BEGIN_DECLS

#define IMAGE_INPUT (-1)

typedef struct {
  StStage *stage;
  char **input_names;          /* as written, or the defaults filled in */
  int *inputs;                 /* node index in run order, or IMAGE_INPUT */
  int n_inputs;
  int last_use;                /* last node that reads this one's output */
  int file_index;              /* place of its group in file order */
  const char *file;            /* the file it is written in (errors name it) */
  int scope;                   /* which file of an include chain it is in */
  const char *image;           /* what "image" stands for in its file, or NULL */
  gboolean check_output;       /* an included file's input= after it: */
  StShape expected_output;     /* the shape (C, H, W) it must make */
  const char *expected_by;     /* and the file that asks */
} Node;

/* A stage's group as the graph receives it from the files. */
typedef struct {
  const StKeyGroup *group;
  const char *file;            /* the file it is written in */
  int scope;                   /* which file of an include chain: stages read their own file's */
  const char *image;           /* what "image" stands for there: the last stage of the files
                                * before it, or NULL for the pipeline's input */
  gboolean has_image_shape;    /* the file's input=, which that stage must then make */
  StShape image_shape;
} StStageGroup;

struct _StPipeline {
  StRegistry *reg;
  char *name;                  /* file path, or "inline pipeline" */
  char *source;                /* the key file text, to make copies */
  char *dir;                   /* where relative paths in the file start */
  gboolean from_file;          /* name is the file source was read from */
  GPtrArray *files;            /* char *, the files it includes, for Node.file */
  char *description;
  gboolean has_input;
  StShape input;
  char **labels;
  char *weights_path;
  GPtrArray *nodes;            /* Node*, in run order */
  gboolean prepared;
  StShape prepared_shape;
  guint64 kept_bytes;          /* a forward that keeps every output, as last prepared */
  /* Per node, kept for backward; after it, a forward that keeps them
   * again writes into the same blocks (training: no page of them is
   * faulted or zero-filled anew every batch). */
  StTensor **acts;
  StTensor *acts_input;        /* the input of the last forward that kept them */
  /* StTensor *: blocks that a forward keeping nothing, or a backward,
   * was done with, for the next such call on an input of spare_input's
   * shape; no more of them than the last call had in use at once. */
  GPtrArray *spare;
  StShape spare_input;
  /* Allocate every tensor of every call afresh, zero-filled, as before
   * blocks were kept: tests compare the two. */
  gboolean fresh_buffers;
  int range_first, range_last; /* the stages that forward ran */
  StBackwardHook backward_hook;
  gpointer backward_hook_data;
};

G_DEFINE_AUTOPTR_CLEANUP_FUNC (StPipeline, st_pipeline_free)

/* A GError in ST_ERROR that starts with the pipeline's name, or with
 * the name of one of the files it includes. */
void st_pipeline_set_error (GError **error, StPipeline *p, int code, const char *fmt, ...)
  G_GNUC_PRINTF (4, 5);
void st_pipeline_set_file_error (GError **error, const char *file, int code, const char *fmt,
                                 ...) G_GNUC_PRINTF (4, 5);

/* pipeline.c: the stage groups (StStageGroup), in file order, become the
 * graph (p->nodes, in run order), its shapes checked on a probe input. */
gboolean st_pipeline_build_graph (StPipeline *p, GArray *stages, GError **error);

/* pipeline-file.c: a pipeline from key-file text; dir is where relative
 * paths in it start. */
StPipeline *st_pipeline_load_text (StRegistry *reg, const char *text, const char *display_name,
                                   const char *dir, GError **error);
/* The same text loaded again, includes read again (for a copy). */
StPipeline *st_pipeline_reload (const StPipeline *p, GError **error);

/* pipeline-inline.c: what a user who hands a fixed-input network another
 * shape needs to hear (both shapes, and a way out). */
void st_pipeline_set_fixed_input_error (StPipeline *p, StShape input, GError **error);

/* pipeline-forward.c: frees the kept outputs and gradient blocks. */
void st_pipeline_clear_activations (StPipeline *p);

/* The node feeding input k of node i when stages [first, last] run on their
 * own with `input` standing for the output of stage first - 1 (or for the
 * image when first is 0): -1 means that input. */
static inline int
st_node_source_in_range (const Node *node, int k, int first)
{
  int j = node->inputs[k];
  return j < first ? -1 : j;
}

G_END_DECLS
