/* strata — safetensors files: named tensors and metadata. */
#pragma once

#include <strata/strata.h>

G_BEGIN_DECLS

/* One tensor of a file, converted to float32 on reading. */
typedef struct {
  char *name;
  int rank;                    /* 0 to 4 as stored; 0 is a scalar */
  int dims[4];
  StTensor *value;             /* dims padded with trailing 1s to four */
} StNamedTensor;

typedef struct {
  GPtrArray *tensors;          /* StNamedTensor*, in file order */
  GHashTable *metadata;        /* string -> string, from __metadata__ (may be empty) */
  GHashTable *by_name;         /* name -> StNamedTensor*, for st_tensor_file_find */
} StTensorFile;

/* Reads a safetensors file as the reference reader does: header length and
 * JSON checked, every tensor's data range inside the file, ranges covering
 * the data exactly with no holes or overlaps, byte lengths equal to shape x
 * dtype size (overflow-checked), no duplicate names.  F32 is read as is;
 * F16, BF16 and F64 are converted.  Every error names the file and, where
 * there is one, the tensor. */
StTensorFile *st_tensor_file_read (const char *path, GError **error);
void          st_tensor_file_free (StTensorFile *file);
const StNamedTensor *st_tensor_file_find (const StTensorFile *file, const char *name);

/* Refuses a file with a NaN or an infinity in any tensor, naming the first
 * such tensor and how many of its values are not finite. */
gboolean st_tensor_file_check_finite (const StTensorFile *file, const char *path,
                                      GError **error);

/* Writes F32 tensors (names and dims as given), with the header padded to a
 * multiple of 8 bytes and metadata (may be NULL) as __metadata__; written
 * under a temporary name and renamed. */
gboolean st_tensor_file_write (const char *path, const StNamedTensor *const *tensors,
                               int n_tensors, GHashTable *metadata, GError **error);

/* Adds every entry of from (may be NULL) to into, borrowing keys and
 * values: metadata on top of a writer's own. */
void st_metadata_merge (GHashTable *into, GHashTable *from);

/* For messages about a file's contents (used by weights.c too): "PATH:
 * MESSAGE" and "PATH: tensor 'NAME': MESSAGE", ST_ERROR_WEIGHTS; NAME
 * made printable. */
void  st_file_error (GError **error, const char *path, const char *format, ...)
      G_GNUC_PRINTF (3, 4);
void  st_file_tensor_error (GError **error, const char *path, const char *name,
                            const char *format, ...) G_GNUC_PRINTF (4, 5);
/* A name from a file, safe in a one-line message: control characters
 * become \xNN. */
char *st_printable (const char *s);
/* "[32, 1, 3, 3]"; "[]" for a scalar. */
char *st_format_dims (const int *dims, int rank);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (StTensorFile, st_tensor_file_free)

G_END_DECLS
