/* strata — labelled datasets from IDX files (MNIST, Fashion-MNIST).
 *
 * IDX (http://yann.lecun.com/exdb/mnist/): a big-endian header — two zero
 * bytes, an element type (0x08 = unsigned byte), the number of dimensions —
 * then one big-endian u32 per dimension, then the elements.  A file is
 * gunzipped on the fly when it starts with the gzip magic, whatever its name.
 *
 * Images are read in chunks into a few small buffers used in turn, and a
 * second thread turns each chunk into floats while the next one is read, so
 * inflating and converting (with the page faults of the float tensor) overlap.
 * That writes into a tensor of the declared size, allocated up front, which
 * is done only when the file vouches for the size: an uncompressed file at
 * least that long, or a gzip stream whose trailer (ISIZE, the inflated size
 * mod 2^32) agrees with the header.  Otherwise (and for labels) data is read
 * in growing chunks up to what the header declares, so a header claiming
 * billions of images in a small file costs no more memory than the file
 * holds.
 */
#include "dataset.h"
#include "context.h"
#include "image-convert.h"

#include <string.h>

#include <gio/gio.h>

#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_LABELS_MAGIC 0x00000801u

/* Sanity limits on an IDX header, checked before anything is allocated: no
 * real dataset comes near them, and they keep every product in range. */
#define IDX_MAX_SIDE 65536
#define IDX_MAX_BYTES (G_GUINT64_CONSTANT (1) << 32)

/* Trailing data is counted up to this many bytes, then reported as "at
 * least" that. */
#define IDX_MAX_TRAILING_COUNTED (1u << 20)

/* First read of the element data; the buffer doubles from there. */
#define IDX_FIRST_CHUNK (1u << 20)

/* Images read into the tensor directly: chunks of this many bytes (small
 * enough to stay in cache until converted), in this many buffers. */
#define IDX_CHUNK (1u << 20)
#define IDX_SLOTS 4

/* ---- Reading an IDX file ------------------------------------------------- */

typedef struct {
  const char *path;
  GInputStream *stream;        /* the file, or a decompressor over it */
  gboolean gzip;
  guint64 file_size;           /* bytes on disk */
  gboolean has_isize;          /* gzip: isize holds the trailer's size */
  guint32 isize;               /* gzip: inflated size mod 2^32, as the trailer says */
} IdxFile;

static void
idx_file_clear (IdxFile *f)
{
  g_clear_object (&f->stream);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (IdxFile, idx_file_clear)

/* Sets error to "PATH: message" from a stream read error, telling a corrupt
 * or cut-short gzip stream from an I/O failure. */
static void
set_read_error (const IdxFile *f, GError *local, GError **error)
{
  if (f->gzip && g_error_matches (local, G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT))
    g_set_error (error, ST_ERROR, ST_ERROR_DATA, "%s: corrupt gzip stream (it ends early)",
                 f->path);
  else if (f->gzip && g_error_matches (local, G_IO_ERROR, G_IO_ERROR_INVALID_DATA))
    g_set_error (error, ST_ERROR, ST_ERROR_DATA, "%s: corrupt gzip stream (%s)",
                 f->path, local->message);
  else
    g_set_error (error, ST_ERROR, ST_ERROR_IO, "%s: cannot read: %s", f->path, local->message);
  g_error_free (local);
}

/* Reads up to size bytes; *got < size only at the end of the data. */
static gboolean
idx_read (IdxFile *f, void *buf, gsize size, gsize *got, GError **error)
{
  GError *local = NULL;
  if (!g_input_stream_read_all (f->stream, buf, size, got, NULL, &local))
    {
      set_read_error (f, local, error);
      return FALSE;
    }
  return TRUE;
}

static gboolean
idx_open (IdxFile *f, const char *path, GError **error)
{
  f->path = path;
  f->stream = NULL;
  f->gzip = FALSE;
  f->has_isize = FALSE;

  g_autoptr (GFile) file = g_file_new_for_path (path);
  GError *local = NULL;
  g_autoptr (GFileInputStream) fin = g_file_read (file, NULL, &local);
  if (!fin)
    {
      if (g_error_matches (local, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
        g_set_error (error, ST_ERROR, ST_ERROR_IO, "%s: no such file", path);
      else if (g_error_matches (local, G_IO_ERROR, G_IO_ERROR_IS_DIRECTORY))
        g_set_error (error, ST_ERROR, ST_ERROR_IO, "%s: is a folder, not an IDX file", path);
      else
        g_set_error (error, ST_ERROR, ST_ERROR_IO, "%s: cannot open: %s", path, local->message);
      g_error_free (local);
      return FALSE;
    }

  g_autoptr (GFileInfo) info = g_file_input_stream_query_info (fin, G_FILE_ATTRIBUTE_STANDARD_SIZE,
                                                               NULL, NULL);
  f->file_size = info ? (guint64) g_file_info_get_size (info) : G_MAXUINT64;

  /* Sniff the gzip magic (and a gzip file's trailer), then rewind: a file
   * stream is seekable. */
  guint8 magic[2];
  gsize got = 0;
  f->stream = G_INPUT_STREAM (g_object_ref (fin));
  if (!idx_read (f, magic, sizeof magic, &got, error))
    return FALSE;
  const gboolean gzip = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  if (gzip && f->file_size != G_MAXUINT64 && f->file_size >= 18)
    {
      /* The trailer's last 4 bytes: the inflated size, little-endian.  Only
       * a hint (zlib checks it at the end); on any failure there is none. */
      guint8 tail[4];
      gsize tail_got = 0;
      if (g_seekable_seek (G_SEEKABLE (fin), (goffset) f->file_size - 4, G_SEEK_SET, NULL, NULL)
          && g_input_stream_read_all (G_INPUT_STREAM (fin), tail, sizeof tail, &tail_got, NULL,
                                      NULL)
          && tail_got == sizeof tail)
        {
          f->isize = (guint32) tail[0] | (guint32) tail[1] << 8 | (guint32) tail[2] << 16
                     | (guint32) tail[3] << 24;
          f->has_isize = TRUE;
        }
    }
  if (!g_seekable_seek (G_SEEKABLE (fin), 0, G_SEEK_SET, NULL, &local))
    {
      set_read_error (f, local, error);
      return FALSE;
    }
  if (gzip)
    {
      g_autoptr (GZlibDecompressor) z = g_zlib_decompressor_new (G_ZLIB_COMPRESSOR_FORMAT_GZIP);
      g_object_unref (f->stream);
      f->stream = g_converter_input_stream_new (G_INPUT_STREAM (fin), G_CONVERTER (z));
      f->gzip = TRUE;
    }
  return TRUE;
}

static const char *
idx_type_name (guint type)
{
  switch (type)
    {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0b: return "int16";
    case 0x0c: return "int32";
    case 0x0d: return "float32";
    case 0x0e: return "float64";
    default: return NULL;
    }
}

/* Reads and checks the header of an IDX file of unsigned bytes with
 * expected_magic (which fixes the number of dimensions, at most 3), into
 * dims.  what: "image" or "labels", for messages. */
static gboolean
idx_read_header (IdxFile *f, guint32 expected_magic, const char *what,
                 guint32 dims[3], GError **error)
{
  const guint n_dims = expected_magic & 0xff;
  guint8 head[4 + 4 * 3];
  gsize want = 4 + 4 * n_dims, got = 0;
  if (!idx_read (f, head, want, &got, error))
    return FALSE;
  if (got < 4)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_DATA,
                   "%s: not an IDX %s file (only %" G_GSIZE_FORMAT " bytes)", f->path, what, got);
      return FALSE;
    }
  guint32 magic = (guint32) head[0] << 24 | (guint32) head[1] << 16
                  | (guint32) head[2] << 8 | head[3];
  const char *type = idx_type_name (head[2]);
  if (head[0] != 0 || head[1] != 0 || !type || head[3] != n_dims)
    {
      /* A labels file given for images (or the other way round) is the
       * likely mistake: say so. */
      const char *hint = "";
      if (magic == IDX_LABELS_MAGIC)
        hint = "; this is an IDX labels file";
      else if (magic == IDX_IMAGES_MAGIC)
        hint = "; this is an IDX image file";
      g_set_error (error, ST_ERROR, ST_ERROR_DATA,
                   "%s: not an IDX %s file (magic 0x%08x, expected 0x%08x%s)",
                   f->path, what, magic, expected_magic, hint);
      return FALSE;
    }
  if (head[2] != 0x08)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_DATA,
                   "%s: IDX elements are %s (type 0x%02x), expected unsigned bytes (0x08)",
                   f->path, type, head[2]);
      return FALSE;
    }
  if (got < want)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_DATA,
                   "%s: truncated IDX header (%" G_GSIZE_FORMAT " bytes, expected %" G_GSIZE_FORMAT ")",
                   f->path, got, want);
      return FALSE;
    }
  for (guint i = 0; i < n_dims; i++)
    {
      const guint8 *p = head + 4 + 4 * i;
      dims[i] = (guint32) p[0] << 24 | (guint32) p[1] << 16 | (guint32) p[2] << 8 | p[3];
    }
  return TRUE;
}

static gboolean idx_check_trailing (IdxFile *f, gsize size, const char *contents,
                                    GError **error);

/* Reads exactly size bytes of element data into a new buffer, then checks
 * that nothing follows.  contents: what the header declares, as "60000
 * images of 28x28", for messages. */
static guint8 *
idx_read_data (IdxFile *f, gsize size, const char *contents, GError **error)
{
  gsize cap = MIN (size, IDX_FIRST_CHUNK), filled = 0;
  guint8 *buf = g_malloc (cap);
  for (;;)
    {
      gsize got = 0;
      if (!idx_read (f, buf + filled, cap - filled, &got, error))
        {
          g_free (buf);
          return NULL;
        }
      filled += got;
      if (filled < cap)
        {
          g_set_error (error, ST_ERROR, ST_ERROR_DATA,
                       "%s: declares %s but holds only %" G_GSIZE_FORMAT " bytes of the %"
                       G_GSIZE_FORMAT " needed", f->path, contents, filled, size);
          g_free (buf);
          return NULL;
        }
      if (filled == size)
        break;
      cap = size - cap > cap ? 2 * cap : size;
      buf = g_realloc (buf, cap);
    }
  if (!idx_check_trailing (f, size, contents, error))
    {
      g_free (buf);
      return NULL;
    }
  return buf;
}

/* After the size bytes of data the header declares: checks that nothing
 * follows. */
static gboolean
idx_check_trailing (IdxFile *f, gsize size, const char *contents, GError **error)
{
  /* Anything after the declared data means the header and the data do not
   * agree; count some of it (in a small buffer) so the message says how
   * much, but stop there: a compressed tail may inflate to gigabytes. */
  guint64 extra = 0;
  gboolean more = FALSE;
  guint8 scratch[65536];
  for (;;)
    {
      gsize got = 0;
      if (!idx_read (f, scratch, sizeof scratch, &got, error))
        return FALSE;
      extra += got;
      if (got < sizeof scratch)
        break;
      if (extra >= IDX_MAX_TRAILING_COUNTED)
        {
          more = TRUE;
          break;
        }
    }
  if (extra > 0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_DATA,
                   "%s: %s%" G_GUINT64_FORMAT " byte%s of trailing data after the %" G_GSIZE_FORMAT
                   " bytes the header declares (%s)", f->path, more ? "at least " : "",
                   extra, extra == 1 ? "" : "s", size, contents);
      return FALSE;
    }
  return TRUE;
}

/* Opens an IDX image file and reads its header: n images of h x w,
 * checked against strata's sanity limits. */
static gboolean
idx_open_images (IdxFile *f, const char *path, guint32 *n_out, guint32 *h_out, guint32 *w_out,
                 GError **error)
{
  guint32 dims[3];
  if (!idx_open (f, path, error)
      || !idx_read_header (f, IDX_IMAGES_MAGIC, "image", dims, error))
    return FALSE;
  guint32 n = dims[0], h = dims[1], w = dims[2];
  if (n == 0 || h == 0 || w == 0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_DATA,
                   "%s: declares %u images of %ux%u: no data", path, n, h, w);
      return FALSE;
    }
  /* h * w < 2^33 here, so nothing below overflows. */
  if (n > G_MAXINT || h > IDX_MAX_SIDE || w > IDX_MAX_SIDE
      || (guint64) h * w > IDX_MAX_BYTES / n
      || (guint64) n * h * w > G_MAXSIZE / sizeof (float))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_DATA,
                   "%s: declares %u images of %ux%u, more than strata accepts "
                   "(at most %d pixels a side and %" G_GUINT64_FORMAT " bytes in all)",
                   path, n, h, w, IDX_MAX_SIDE, IDX_MAX_BYTES);
      return FALSE;
    }
  *n_out = n;
  *h_out = h;
  *w_out = w;
  return TRUE;
}

/* What the header declares must fit the memory bound (the bytes as read
 * plus the floats they become) and, for an uncompressed file, the file:
 * both are known before a byte of data is read. */
static gboolean
idx_check_declared (const IdxFile *f, guint64 header_bytes, guint64 elements,
                    gsize element_memory, const char *contents, GError **error)
{
  if (!f->gzip && f->file_size != G_MAXUINT64 && f->file_size < header_bytes + elements)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_DATA,
                   "%s: declares %s but holds only %" G_GUINT64_FORMAT " bytes of the %"
                   G_GUINT64_FORMAT " needed", f->path, contents,
                   f->file_size - MIN (f->file_size, header_bytes), elements);
      return FALSE;
    }
  guint64 memory = elements * (1 + element_memory);
  if (memory > st_memory_limit ())
    {
      g_set_error (error, ST_ERROR, ST_ERROR_MEMORY,
                   "%s: declares %s, which take %" G_GUINT64_FORMAT " bytes of memory, more "
                   "than the limit of %" G_GUINT64_FORMAT " bytes (--max-memory)",
                   f->path, contents, memory, st_memory_limit ());
      return FALSE;
    }
  return TRUE;
}

/* ---- Images straight into the tensor, converted on a second thread ------- */

/* Chunk k of the data goes into slot k % n_slots; the reader fills a slot
 * once the converter is done with it.  Chunk k always lands at k * chunk in
 * the tensor, so the floats do not depend on the timing. */
typedef struct {
  GMutex lock;
  GCond cond;
  guint8 *slots[IDX_SLOTS];
  gsize lens[IDX_SLOTS];
  gsize n_slots, chunk;
  gsize handed;                /* chunks read and handed over */
  gsize converted;             /* chunks converted */
  gboolean finished;           /* the reader hands over no more */
  const float *table;          /* byte -> float */
  float *dest;
  gsize keep;                  /* bytes converted: the first images only */
} IdxConvert;

static void
idx_convert_chunk (const IdxConvert *c, gsize k)
{
  const guint8 *src = c->slots[k % c->n_slots];
  float *dst = c->dest + k * c->chunk;
  const gsize start = k * c->chunk;
  const gsize len = start >= c->keep ? 0 : MIN (c->lens[k % c->n_slots], c->keep - start);
  for (gsize i = 0; i < len; i++)
    dst[i] = c->table[src[i]];
}

static gpointer
idx_convert_thread (gpointer data)
{
  st_thread_unpin ();
  IdxConvert *c = data;
  g_mutex_lock (&c->lock);
  for (;;)
    {
      while (c->converted == c->handed && !c->finished)
        g_cond_wait (&c->cond, &c->lock);
      if (c->converted == c->handed)
        break;
      const gsize k = c->converted;
      g_mutex_unlock (&c->lock);
      idx_convert_chunk (c, k);
      g_mutex_lock (&c->lock);
      c->converted = k + 1;
      g_cond_broadcast (&c->cond);
    }
  g_mutex_unlock (&c->lock);
  return NULL;
}

/* Whether the file vouches for header_bytes + size bytes in all, so that
 * the tensor may be allocated before they are read: see the top. */
static gboolean
idx_size_vouched (const IdxFile *f, guint64 header_bytes, gsize size)
{
  if (!f->gzip)
    return f->file_size != G_MAXUINT64;   /* and idx_check_declared held it */
  return f->has_isize && f->isize == (guint32) (header_bytes + size);
}

/* The size bytes of data, read chunk by chunk, the first keep of them
 * converted to byte / 255 into a new tensor of shape; the same checks and
 * messages as idx_read_data. */
static StTensor *
idx_read_images (IdxFile *f, StShape shape, gsize size, gsize keep, const char *contents,
                 GError **error)
{
  const float *table = st_image_unit_table ();
  StTensor *x = st_tensor_new (shape, error);
  if (!x)
    return NULL;

  IdxConvert c = { .chunk = MIN (size, IDX_CHUNK), .table = table, .dest = x->data,
                   .keep = keep };
  g_mutex_init (&c.lock);
  g_cond_init (&c.cond);
  /* One chunk, or one processor: nothing to overlap. */
  GThread *thread = NULL;
  c.n_slots = size > c.chunk && st_default_threads () > 1 ? IDX_SLOTS : 1;
  for (gsize s = 0; s < c.n_slots; s++)
    c.slots[s] = g_malloc (c.chunk);
  if (c.n_slots > 1)
    thread = g_thread_try_new ("idx-convert", idx_convert_thread, &c, NULL);

  gboolean ok = TRUE;
  gsize filled = 0;
  for (gsize k = 0; filled < size; k++)
    {
      const gsize slot = k % c.n_slots;
      if (thread)
        {
          g_mutex_lock (&c.lock);
          while (k - c.converted >= c.n_slots)
            g_cond_wait (&c.cond, &c.lock);
          g_mutex_unlock (&c.lock);
        }
      const gsize want = MIN (c.chunk, size - filled);
      gsize got = 0;
      if (!idx_read (f, c.slots[slot], want, &got, error))
        {
          ok = FALSE;
          break;
        }
      filled += got;
      if (got < want)
        {
          g_set_error (error, ST_ERROR, ST_ERROR_DATA,
                       "%s: declares %s but holds only %" G_GSIZE_FORMAT " bytes of the %"
                       G_GSIZE_FORMAT " needed", f->path, contents, filled, size);
          ok = FALSE;
          break;
        }
      c.lens[slot] = want;
      if (thread)
        {
          g_mutex_lock (&c.lock);
          c.handed = k + 1;
          g_cond_broadcast (&c.cond);
          g_mutex_unlock (&c.lock);
        }
      else
        idx_convert_chunk (&c, k);
    }
  if (thread)
    {
      g_mutex_lock (&c.lock);
      c.finished = TRUE;
      g_cond_broadcast (&c.cond);
      g_mutex_unlock (&c.lock);
      g_thread_join (thread);
    }
  for (gsize s = 0; s < c.n_slots; s++)
    g_free (c.slots[s]);
  g_cond_clear (&c.cond);
  g_mutex_clear (&c.lock);

  if (!ok || !idx_check_trailing (f, size, contents, error))
    {
      st_tensor_free (x);
      return NULL;
    }
  return x;
}

/* [N, 1, H, W] of byte / 255, N the first `first` images (0: all), the
 * rest read and checked all the same.  expected_n: the number of labels,
 * checked before the data is read (0: any). */
static StTensor *
idx_load_images (const char *path, guint32 expected_n, const char *labels_path, guint32 first,
                 GError **error)
{
  g_auto (IdxFile) f = { 0 };
  guint32 n, h, w;
  if (!idx_open_images (&f, path, &n, &h, &w, error))
    return NULL;
  if (expected_n && n != expected_n)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_DATA,
                   "%s: labels file has %u labels, images file has %u images (%s)",
                   labels_path, expected_n, n, path);
      return NULL;
    }
  gsize size = (gsize) n * h * w;
  g_autofree char *contents = g_strdup_printf ("%u images of %ux%u", n, h, w);
  if (!idx_check_declared (&f, 16, size, sizeof (float), contents, error))
    return NULL;
  const guint32 kept = first && first < n ? first : n;
  const StShape shape = { (int) kept, 1, (int) h, (int) w };
  const gsize keep = (gsize) kept * h * w;
  if (idx_size_vouched (&f, 16, size))
    return idx_read_images (&f, shape, size, keep, contents, error);
  g_autofree guint8 *bytes = idx_read_data (&f, size, contents, error);
  if (!bytes)
    return NULL;
  const float *table = st_image_unit_table ();
  StTensor *x = st_tensor_new (shape, error);
  if (x)
    for (gsize i = 0; i < keep; i++)
      x->data[i] = table[bytes[i]];
  return x;
}

static int *
idx_load_labels (const char *path, int *n_out, GError **error)
{
  g_auto (IdxFile) f = { 0 };
  guint32 dims[3];
  if (!idx_open (&f, path, error)
      || !idx_read_header (&f, IDX_LABELS_MAGIC, "labels", dims, error))
    return NULL;
  guint32 n = dims[0];
  if (n == 0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_DATA, "%s: declares no labels", path);
      return NULL;
    }
  if (n > G_MAXINT)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_DATA,
                   "%s: declares %u labels, more than strata accepts", path, n);
      return NULL;
    }
  g_autofree char *contents = g_strdup_printf ("%u labels", n);
  if (!idx_check_declared (&f, 8, n, sizeof (int), contents, error))
    return NULL;
  g_autofree guint8 *bytes = idx_read_data (&f, n, contents, error);
  if (!bytes)
    return NULL;
  int *labels = g_new (int, n);
  for (guint32 i = 0; i < n; i++)
    labels[i] = bytes[i];
  *n_out = (int) n;
  return labels;
}

static StDataset *
load_idx (const char *images_path, const char *labels_path, int first, GError **error)
{
  /* Labels first: they are small, and a bad labels file is reported
   * without decompressing 47 MB of images. */
  int n_labels = 0;
  g_autofree int *labels = idx_load_labels (labels_path, &n_labels, error);
  if (!labels)
    return NULL;
  g_autoptr (StTensor) x = idx_load_images (images_path, (guint32) n_labels, labels_path,
                                            (guint32) MAX (first, 0), error);
  if (!x)
    return NULL;

  StDataset *ds = g_new0 (StDataset, 1);
  /* The classes are those of the whole set, whatever part is kept. */
  int max = 0;
  for (int i = 0; i < n_labels; i++)
    max = MAX (max, labels[i]);
  ds->n_classes = max + 1;
  ds->n = x->shape.n;
  if (ds->n < n_labels)
    labels = g_renew (int, labels, ds->n);
  ds->x = g_steal_pointer (&x);
  ds->labels = g_steal_pointer (&labels);
  return ds;
}

StDataset *
st_dataset_load_idx (const char *images_path, const char *labels_path, GError **error)
{
  g_return_val_if_fail (images_path && labels_path, NULL);
  return load_idx (images_path, labels_path, 0, error);
}

/* DIR/NAME or DIR/NAME.gz for the first of names that exists, else NULL. */
static char *
find_idx (const char *dir, const char *const *names)
{
  for (int i = 0; names[i]; i++)
    for (int gz = 0; gz < 2; gz++)
      {
        g_autofree char *base = g_strconcat (names[i], gz ? ".gz" : "", NULL);
        char *path = g_build_filename (dir, base, NULL);
        if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
          return path;
        g_free (path);
      }
  return NULL;
}

/* DIR's file of one part of a set ("train" or "t10k"; "images", "idx3"),
 * by either name it goes by, gzipped or not, or NULL.  *usual: the usual
 * name, for messages. */
static char *
find_idx_part (const char *dir, const char *set, const char *part, const char *dims,
               char **usual)
{
  /* Some copies (Kaggle's) write ".idx3" for "-idx3"; take both. */
  g_autofree char *name = g_strdup_printf ("%s-%s-%s-ubyte", set, part, dims);
  g_autofree char *alt = g_strdup_printf ("%s-%s.%s-ubyte", set, part, dims);
  const char *names[] = { name, alt, NULL };
  char *path = find_idx (dir, names);
  if (usual)
    *usual = g_steal_pointer (&name);
  return path;
}

gboolean
st_dataset_is_idx_dir (const char *dir)
{
  for (int test_set = 0; test_set < 2; test_set++)
    {
      g_autofree char *images = find_idx_part (dir, test_set ? "t10k" : "train", "images",
                                               "idx3", NULL);
      if (images)
        return TRUE;
    }
  return FALSE;
}

/* The images and labels files of DIR's training or test set, or FALSE
 * with error saying which are missing. */
static gboolean
find_idx_pair (const char *dir, gboolean test_set, char **images_out, char **labels_out,
               GError **error)
{
  if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IO,
                   g_file_test (dir, G_FILE_TEST_EXISTS) ? "%s: not a folder" : "%s: no such folder",
                   dir);
      return FALSE;
    }
  const char *prefix = test_set ? "t10k" : "train";
  g_autofree char *img_name = NULL, *lab_name = NULL;
  g_autofree char *images = find_idx_part (dir, prefix, "images", "idx3", &img_name);
  g_autofree char *labels = find_idx_part (dir, prefix, "labels", "idx1", &lab_name);
  if (!images && !labels)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IO,
                   "%s: no MNIST-style %s files here: looked for %s and %s, "
                   "each with or without .gz", dir, test_set ? "test-set" : "training-set",
                   img_name, lab_name);
      return FALSE;
    }
  if (!images || !labels)
    {
      g_autofree char *found = g_path_get_basename (images ? images : labels);
      g_set_error (error, ST_ERROR, ST_ERROR_IO,
                   "%s: found %s but not %s (with or without .gz)", dir, found,
                   images ? lab_name : img_name);
      return FALSE;
    }
  *images_out = g_steal_pointer (&images);
  *labels_out = g_steal_pointer (&labels);
  return TRUE;
}

StDataset *
st_dataset_load_idx_dir_first (const char *dir, gboolean test_set, int first, GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);
  g_autofree char *images = NULL, *labels = NULL;
  if (!find_idx_pair (dir, test_set, &images, &labels, error))
    return NULL;
  return load_idx (images, labels, first, error);
}

StDataset *
st_dataset_load_idx_dir (const char *dir, gboolean test_set, GError **error)
{
  return st_dataset_load_idx_dir_first (dir, test_set, 0, error);
}

gboolean
st_dataset_idx_dir_image_shape (const char *dir, gboolean test_set, StShape *image,
                                GError **error)
{
  g_return_val_if_fail (dir != NULL && image != NULL, FALSE);
  g_autofree char *images = NULL, *labels = NULL;
  if (!find_idx_pair (dir, test_set, &images, &labels, error))
    return FALSE;
  g_auto (IdxFile) f = { 0 };
  guint32 n, h, w;
  if (!idx_open_images (&f, images, &n, &h, &w, error))
    return FALSE;
  *image = (StShape) { 1, 1, (int) h, (int) w };
  return TRUE;
}
