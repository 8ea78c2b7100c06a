/* strata — fuzz harness: IDX datasets, plain and gzip (core/dataset.c).
 *
 * The first byte chooses what the rest is: bit 0 clear, the images file
 * (with a valid labels file of two labels beside it); set, the labels file
 * (with a valid images file of two 2x2 images).  Bit 1 set gzips the rest
 * first, so that the fuzzer's changes reach the IDX parser through the
 * gzip path rather than stopping at the stream's checksum; raw gzip
 * streams (seeds, and mutations of them) arrive with bit 1 clear. */
#include "fuzz.h"

#include "dataset.h"

static const uint8_t valid_labels[] = { 0, 0, 8, 1, 0, 0, 0, 2, 3, 7 };
static const uint8_t valid_images[] = {
  0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2,
  0, 64, 128, 255, 255, 128, 64, 0,
};

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_init ();
  if (size == 0)
    return 0;
  const gboolean fuzz_labels = data[0] & 1;
  g_autoptr (GBytes) body = data[0] & 2 ? fuzz_gzip (data + 1, size - 1)
                                        : g_bytes_new_static (data + 1, size - 1);
  gsize body_size;
  const uint8_t *body_data = g_bytes_get_data (body, &body_size);

  const char *fuzzed = fuzz_bytes_path (0, body_data, body_size);
  const char *other = fuzz_labels ? fuzz_bytes_path (1, valid_images, sizeof valid_images)
                                  : fuzz_bytes_path (1, valid_labels, sizeof valid_labels);
  g_autoptr (GError) error = NULL;
  g_autoptr (StDataset) ds = fuzz_labels ? st_dataset_load_idx (other, fuzzed, &error)
                                         : st_dataset_load_idx (fuzzed, other, &error);
  g_assert ((ds == NULL) == (error != NULL));
  if (!ds)
    return 0;
  g_assert (ds->n >= 1 && ds->x->shape.n == ds->n && ds->x->shape.c == 1);
  for (int i = 0; i < ds->n; i++)
    g_assert (ds->labels[i] >= 0 && ds->labels[i] < ds->n_classes);
  const gsize n = st_tensor_numel (ds->x);
  for (gsize i = 0; i < n; i++)
    g_assert (ds->x->data[i] >= 0.0f && ds->x->data[i] <= 1.0f);
  return 0;
}
