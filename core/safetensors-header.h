/* strata — the header of a safetensors file (private to safetensors.c). */
#pragma once

#include "safetensors.h"

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef enum {
  CONV_NONE,                   /* a valid safetensors dtype strata does not read */
  CONV_F32,
  CONV_F16,
  CONV_BF16,
  CONV_F64,
} Conversion;

typedef struct {
  const char *name;
  guint64 size;
  Conversion conv;
} DType;

/* One tensor's entry in the header, checked on its own. */
typedef struct {
  const char *name;            /* borrowed from the JSON tree */
  const DType *dtype;
  int rank;
  guint64 *shape;
  guint64 begin, end;          /* relative to the data section */
} StHeaderEntry;

typedef struct {
  JsonParser *parser;          /* holds the entries' names */
  GArray *entries;             /* StHeaderEntry, in header order */
} StSafetensorsHeader;

/* Parses the n bytes of header JSON: the text, duplicates, every entry,
 * __metadata__ into metadata, and that the entries cover the data_len bytes
 * of the data section exactly.  Every error names path. */
gboolean st_safetensors_header_parse (const char *path, const char *header, gsize n,
                                      guint64 data_len, GHashTable *metadata,
                                      StSafetensorsHeader *out, GError **error);
void     st_safetensors_header_clear (StSafetensorsHeader *header);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (StSafetensorsHeader, st_safetensors_header_clear)

/* Refuses an entry whose dtype strata does not convert. */
gboolean st_safetensors_check_supported (const char *path, const StHeaderEntry *e,
                                         GError **error);
/* n values of src, stored as conv says, to float32. */
void     st_safetensors_convert (Conversion conv, const guint8 *src, gsize n, float *dst);
/* "[32, 1, 3, 3]" from 64-bit dims. */
char    *st_format_dims64 (const guint64 *dims, int rank);

G_END_DECLS
