/* strata — GIF images through giflib, read only.
 *
 * Only the first frame of an animation is read.  The picture is the
 * logical screen with that frame placed on it: the palette expanded to
 * RGB, with alpha where the frame has a transparent colour or does not
 * cover the screen.  The frame's indices are decoded whole when the file
 * is opened (one byte a pixel, after the --max-pixels check on both the
 * screen and the frame), since an interlaced frame gives its rows out of
 * order; rows are expanded to floats as they are asked for. */
#include "image-format.h"

#include <errno.h>
#include <string.h>

#include <gif_lib.h>

typedef struct {
  StImageInput *in;
  GifFileType *gif;
  int width, height, channels;
  int left, top, frame_width, frame_height;
  int transparent;               /* palette index, or -1 */
  guint8 palette[256][3];
  int palette_size;
  guint8 *indices;               /* frame_width x frame_height */
  gboolean read_failed;
  char reason[ST_IMAGE_REASON_SIZE];
  int code;
} GifLoad;

static int
gif_input (GifFileType *gif, GifByteType *buf, int size)
{
  GifLoad *ld = gif->UserData;
  gsize done = size > 0 ? st_image_input_read (ld->in, buf, size) : 0;
  if (done < (gsize) MAX (size, 0))
    ld->read_failed = TRUE;
  return (int) done;
}

/* The reason for a giflib failure: a short read is a truncated file. */
static gboolean
gif_fail (GifLoad *ld, int gif_error)
{
  if (ld->read_failed && ferror (ld->in->fp))
    {
      ld->code = ST_ERROR_IO;
      g_snprintf (ld->reason, sizeof ld->reason, "cannot read: %s", g_strerror (errno));
    }
  else if (ld->read_failed)
    g_strlcpy (ld->reason, "truncated GIF file (it ends before the image is complete)",
               sizeof ld->reason);
  else
    {
      const char *text = GifErrorString (gif_error);
      g_snprintf (ld->reason, sizeof ld->reason, "invalid GIF file (%s)",
                  text ? text : "unknown error");
    }
  return FALSE;
}

static void
gif_reader_close (gpointer reader)
{
  GifLoad *ld = reader;
  if (!ld)
    return;
  if (ld->gif)
    DGifCloseFile (ld->gif, NULL);
  g_free (ld->indices);
  g_free (ld);
}

/* Reads up to the first frame's descriptor, noting a transparent colour
 * from the Graphics Control Extension before it. */
static gboolean
gif_find_first_frame (GifLoad *ld)
{
  GifFileType *gif = ld->gif;
  for (;;)
    {
      GifRecordType type;
      if (DGifGetRecordType (gif, &type) == GIF_ERROR)
        return gif_fail (ld, gif->Error);
      if (type == IMAGE_DESC_RECORD_TYPE)
        return DGifGetImageDesc (gif) == GIF_ERROR ? gif_fail (ld, gif->Error) : TRUE;
      if (type == TERMINATE_RECORD_TYPE)
        {
          g_strlcpy (ld->reason, "invalid GIF file (it holds no image)", sizeof ld->reason);
          return FALSE;
        }
      if (type != EXTENSION_RECORD_TYPE)
        continue;
      int code;
      GifByteType *block;
      if (DGifGetExtension (gif, &code, &block) == GIF_ERROR)
        return gif_fail (ld, gif->Error);
      if (code == GRAPHICS_EXT_FUNC_CODE && block && block[0] == 4)
        {
          GraphicsControlBlock gcb;
          if (DGifExtensionToGCB (block[0], block + 1, &gcb) == GIF_OK)
            ld->transparent = gcb.TransparentColor;
        }
      while (block)
        if (DGifGetExtensionNext (gif, &block) == GIF_ERROR)
          return gif_fail (ld, gif->Error);
    }
}

/* The frame's indices, in display order whether or not it is interlaced. */
static gboolean
gif_decode_frame (GifLoad *ld)
{
  static const int start[] = { 0, 4, 2, 1 }, step[] = { 8, 8, 4, 2 };
  const gboolean interlaced = ld->gif->Image.Interlace;
  for (int pass = 0; pass < (interlaced ? 4 : 1); pass++)
    for (int y = interlaced ? start[pass] : 0; y < ld->frame_height;
         y += interlaced ? step[pass] : 1)
      if (DGifGetLine (ld->gif, ld->indices + (gsize) y * ld->frame_width,
                       ld->frame_width) == GIF_ERROR)
        return gif_fail (ld, ld->gif->Error);
  return TRUE;
}

static gboolean
gif_open_frame (GifLoad *ld, guint64 max_pixels, GError **error)
{
  GifFileType *gif = ld->gif;
  /* The screen is checked first: it alone can ask for a huge picture. */
  if (!st_image_check_pixel_limit (ld->in->path, gif->SWidth, gif->SHeight, max_pixels, error)
      || !gif_find_first_frame (ld))
    return FALSE;
  const GifImageDesc *desc = &gif->Image;
  ld->left = desc->Left;
  ld->top = desc->Top;
  ld->frame_width = desc->Width;
  ld->frame_height = desc->Height;
  if (ld->frame_width <= 0 || ld->frame_height <= 0)
    {
      g_strlcpy (ld->reason, "invalid GIF file (an empty frame)", sizeof ld->reason);
      return FALSE;
    }
  /* A frame reaching past the screen widens the picture. */
  ld->width = MAX (gif->SWidth, ld->left + ld->frame_width);
  ld->height = MAX (gif->SHeight, ld->top + ld->frame_height);
  if (!st_image_check_pixel_limit (ld->in->path, ld->width, ld->height, max_pixels, error))
    return FALSE;

  const ColorMapObject *map = desc->ColorMap ? desc->ColorMap : gif->SColorMap;
  if (!map || !map->Colors || map->ColorCount <= 0)
    {
      g_strlcpy (ld->reason, "invalid GIF file (no colour table)", sizeof ld->reason);
      return FALSE;
    }
  ld->palette_size = MIN (map->ColorCount, 256);
  for (int i = 0; i < ld->palette_size; i++)
    {
      ld->palette[i][0] = map->Colors[i].Red;
      ld->palette[i][1] = map->Colors[i].Green;
      ld->palette[i][2] = map->Colors[i].Blue;
    }
  const gboolean covers = ld->left == 0 && ld->top == 0 && ld->frame_width == ld->width
                          && ld->frame_height == ld->height;
  ld->channels = ld->transparent >= 0 || !covers ? 4 : 3;

  ld->indices = g_try_malloc ((gsize) ld->frame_width * ld->frame_height);
  if (!ld->indices)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: not enough memory for a %dx%d GIF",
                   ld->in->path, ld->frame_width, ld->frame_height);
      return FALSE;
    }
  return gif_decode_frame (ld);
}

static gpointer
gif_reader_open (StImageInput *in, guint64 max_pixels, StImageHeader *header, GError **error)
{
  GifLoad *ld = g_new0 (GifLoad, 1);
  ld->in = in;
  ld->transparent = -1;
  ld->code = ST_ERROR_IMAGE;
  int gif_error = 0;
  ld->gif = DGifOpen (ld, gif_input, &gif_error);
  g_autoptr (GError) found = NULL;
  gboolean ok = ld->gif ? gif_open_frame (ld, max_pixels, &found) : gif_fail (ld, gif_error);
  if (!ok)
    {
      st_image_take_error (error, &found, in->path, ld->code, ld->reason);
      gif_reader_close (ld);
      return NULL;
    }
  header->width = ld->width;
  header->height = ld->height;
  header->channels = ld->channels;
  header->info = (StImageInfo) { ST_FORMAT_GIF, 8, ld->channels == 4 };
  return ld;
}

static gboolean
gif_reader_read (gpointer reader, StTensor *dst, int first_row, int n_rows,
                 G_GNUC_UNUSED GError **error)
{
  GifLoad *ld = reader;
  const float *unit = st_image_unit_table ();
  for (int k = 0; k < n_rows; k++)
    {
      const int y = first_row + k;
      float *planes[4];
      st_image_row_planes (dst, y, planes);
      const int fy = y - ld->top;
      for (int x = 0; x < ld->width; x++)
        {
          const int fx = x - ld->left;
          const gboolean inside = fy >= 0 && fy < ld->frame_height && fx >= 0
                                  && fx < ld->frame_width;
          const int index = inside ? ld->indices[(gsize) fy * ld->frame_width + fx] : -1;
          const gboolean opaque = index >= 0 && index != ld->transparent;
          /* An index past the palette shows black, as browsers show it. */
          const guint8 *rgb = opaque && index < ld->palette_size ? ld->palette[index]
                                                                 : (const guint8 *) "\0\0\0";
          for (int c = 0; c < 3; c++)
            planes[c][x] = opaque ? unit[rgb[c]] : 0.0f;
          if (ld->channels == 4)
            planes[3][x] = opaque ? 1.0f : 0.0f;
        }
    }
  return TRUE;
}

/* ---- Writing: refused ------------------------------------------------------ */

static gboolean
gif_writer_check (const StImageWriteSpec *spec, GError **error)
{
  g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
               "%s: cannot write GIF (strata reads GIF only; write PNG, JPEG or PNM)",
               spec->path);
  return FALSE;
}

/* ---- The format ---------------------------------------------------------- */

static StImageMatch
gif_match (const guint8 *head, gsize head_len)
{
  StImageMatch m87 = st_image_match_magic (head, head_len, (const guint8 *) "GIF87a", 6);
  return m87 != ST_IMAGE_MATCH_NO ? m87
                                  : st_image_match_magic (head, head_len,
                                                          (const guint8 *) "GIF89a", 6);
}

static const char *const gif_extensions[] = { "gif", NULL };

const StImageCodec st_image_gif_codec = {
  .format = ST_FORMAT_GIF,
  .name = "GIF",
  .extensions = gif_extensions,
  .match = gif_match,
  .reader_open = gif_reader_open,
  .reader_read = gif_reader_read,
  .reader_close = gif_reader_close,
  .writer_check = gif_writer_check,
};
