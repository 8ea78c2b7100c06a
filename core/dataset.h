/* strata — labelled datasets: IDX files (MNIST, Fashion-MNIST) and image
 * folders with one subfolder per class. */
#pragma once

#include <strata/strata.h>

G_BEGIN_DECLS

typedef struct {
  StTensor *x;                 /* [N, C, H, W], values as the source gives them (IDX: /255) */
  int *labels;                 /* N class indices */
  int n;
  int n_classes;
  char **class_names;          /* NULL-terminated; NULL when the source has none (IDX) */
  guint n_skipped;             /* unreadable files skipped (image folders) */
} StDataset;

/* images/labels: IDX files, gzip-compressed or not (by their magic, not
 * their name).  Wrong magic, truncated data and counts that disagree
 * between the two files are refused, naming the file. */
StDataset *st_dataset_load_idx (const char *images_path, const char *labels_path,
                                GError **error);
/* DIR holding the usual names: train-images-idx3-ubyte, train-labels-idx1-ubyte,
 * t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each optionally .gz. */
StDataset *st_dataset_load_idx_dir (const char *dir, gboolean test_set, GError **error);

/* Turns one decoded image ([1, C, H, W] in [0, 1]) into a sample of the
 * dataset's fixed shape; returns a new tensor or NULL with error set. */
typedef StTensor *(*StSampleFunc) (const StTensor *image, gpointer user_data,
                                   GError **error);

/* DIR/CLASS/.../NAME.png|jpg|jpeg (any case, any depth): class names from
 * the subfolder names, sorted; each image goes through convert (or, when
 * convert is NULL, must have the shape of the first image).  Unreadable
 * images are reported on stderr as "path: reason", counted in n_skipped
 * and skipped.  class_names, when not NULL, fixes the classes and their
 * order (a folder not in it is an error). */
StDataset *st_dataset_load_folder (const char *dir, const char *const *class_names,
                                   StSampleFunc convert, gpointer user_data,
                                   guint64 max_pixels, GError **error);

/* Moves a fraction of ds (chosen with seed) into a new dataset. */
StDataset *st_dataset_split (StDataset *ds, double fraction, guint64 seed);
/* Keeps only the first n samples. */
void       st_dataset_truncate (StDataset *ds, int n);
void       st_dataset_free (StDataset *ds);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (StDataset, st_dataset_free)

G_END_DECLS
