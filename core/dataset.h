/* strata — labelled datasets: IDX files (MNIST, Fashion-MNIST) and image
 * folders with one subfolder per class. */
#pragma once

#include <strata/strata.h>

#include "progress.h"

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
 * between the two files are refused, naming the file; the headers are
 * checked (counts, the file's size, the memory limit) before any data is
 * read, and compressed data is read no further than the header declares. */
StDataset *st_dataset_load_idx (const char *images_path, const char *labels_path,
                                GError **error);
/* Whether DIR holds an IDX set: a training-set or test-set images file by
 * any name st_dataset_load_idx_dir takes. */
gboolean   st_dataset_is_idx_dir (const char *dir);
/* DIR holding the usual names: train-images-idx3-ubyte, train-labels-idx1-ubyte,
 * t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (or with ".idx3" for
 * "-idx3", as some copies write them), each optionally .gz. */
StDataset *st_dataset_load_idx_dir (const char *dir, gboolean test_set, GError **error);
/* st_dataset_load_idx_dir keeping only the first `first` samples (0: all):
 * the others are read and checked as ever, but take no memory. */
StDataset *st_dataset_load_idx_dir_first (const char *dir, gboolean test_set, int first,
                                          GError **error);
/* The shape of one image of DIR's IDX set ([1, 1, H, W]), from the images
 * file's header alone: a shape that does not fit is refused before
 * anything is read. */
gboolean   st_dataset_idx_dir_image_shape (const char *dir, gboolean test_set, StShape *image,
                                           GError **error);

/* Turns one decoded image ([1, C, H, W] in [0, 1]) into a sample of the
 * dataset's fixed shape; returns a new tensor or NULL with error set. */
typedef StTensor *(*StSampleFunc) (const StTensor *image, gpointer user_data,
                                   GError **error);

/* DIR/CLASS/.../NAME.png|jpg|jpeg (any case, any depth): class names from
 * the subfolder names, sorted; each image goes through convert (or, when
 * convert is NULL, must have the shape of the first image).  Unreadable
 * images are said through message (when not NULL) as "path: reason",
 * counted in n_skipped and skipped, as are folders that cannot be listed
 * or that links lead to twice.  user_data goes to convert and message.  class_names, when not NULL, fixes the classes and their
 * order; each class's folder is st_dataset_folder_name (name), and a folder
 * that is none of them is an error. */
StDataset *st_dataset_load_folder (const char *dir, const char *const *class_names,
                                   StSampleFunc convert, StMessageFunc message,
                                   gpointer user_data, guint64 max_pixels, GError **error);

/* The folder that holds a class's images: the label with '_' for each
 * character a file name cannot hold on Linux, macOS or Windows
 * (/ \ : * ? " < > | and control characters), and '_' before a leading '.'
 * or for an empty label; compared case-sensitively.  "T-shirt/top" is
 * in T-shirt_top/. */
char      *st_dataset_folder_name (const char *label);

/* Moves a fraction of ds (chosen with seed) into a new dataset. */
StDataset *st_dataset_split (StDataset *ds, double fraction, guint64 seed);
/* Keeps only the first n samples. */
void       st_dataset_truncate (StDataset *ds, int n);
void       st_dataset_free (StDataset *ds);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (StDataset, st_dataset_free)

G_END_DECLS
