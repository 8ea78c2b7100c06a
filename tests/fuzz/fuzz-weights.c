/* strata — fuzz harness: safetensors files (core/weights.c).
 *
 * The input is a weights file, read on its own (st_tensor_file_read) and
 * loaded into a small fixed network whose parameter names and shapes the
 * seeds match: conv.weight [2, 1, 3, 3], conv.bias [2], bn.* [2],
 * fc.weight [3, 2], fc.bias [3]. */
#include "fuzz.h"

#include "weights.h"

#include <string.h>

static const char network[] =
  "[pipeline]\n"
  "input=1x4x4\n"
  "[conv]\ntype=conv2d\nfilters=2\nsize=3\n"
  "[bn]\ntype=batchnorm\n"
  "[pool]\ntype=maxpool\nsize=2\n"
  "[flat]\ntype=flatten\n"
  "[fc]\ntype=dense\nunits=3\n";

/* JSON nesting deeper than this makes json-glib recurse until the stack
 * overflows (a known issue fixed in the reader itself); this harness
 * leaves such inputs to that fix's own test rather than report them
 * again and again.  A header needs 3 levels. */
#define MAX_NESTING 512

static gboolean
nests_too_deep (const uint8_t *data, size_t size)
{
  int depth = 0;
  for (size_t i = 0; i < size; i++)
    if (data[i] == '[' || data[i] == '{')
      {
        if (++depth > MAX_NESTING)
          return TRUE;
      }
    else if ((data[i] == ']' || data[i] == '}') && depth > 0)
      depth--;
  return FALSE;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static StPipeline *pipeline;
  fuzz_init ();
  if (!pipeline)
    {
      g_autoptr (GError) error = NULL;
      pipeline = st_pipeline_load_data (st_registry_get_default (), network, "fuzz.ini",
                                        &error);
      g_assert_no_error (error);
    }
  if (nests_too_deep (data, size))
    return 0;

  const char *path = fuzz_bytes_path (0, data, size);
  g_autoptr (GError) error = NULL;
  g_autoptr (StTensorFile) file = st_tensor_file_read (path, &error);
  g_assert ((file == NULL) == (error != NULL));
  if (file)
    for (guint i = 0; i < file->tensors->len; i++)
      {
        const StNamedTensor *t = file->tensors->pdata[i];
        g_assert (st_tensor_file_find (file, t->name) == t);
        g_assert (t->rank >= 0 && t->rank <= 4);
      }

  g_autoptr (GError) load_error = NULL;
  gboolean loaded = st_pipeline_load_weights (pipeline, path, &load_error);
  g_assert (loaded == (load_error == NULL));
  /* The one reader serves both: the pipeline cannot take a file that does
   * not read. */
  g_assert (!loaded || file != NULL);
  return 0;
}
