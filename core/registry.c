/* strata — finding and loading stage plugins with GModule. */
#include "registry.h"
#include "param.h"
#include "config.h"

#include <string.h>

struct _StRegistry {
  GHashTable *kinds;           /* name -> GPtrArray of StKindEntry*, best first */
  GPtrArray *errors;           /* "path: reason" */
  GHashTable *refused;         /* kind name -> "path: reason" of the first refusal */
  GHashTable *seen_files;      /* canonical paths already opened */
};

static void
entry_free (gpointer p)
{
  StKindEntry *e = p;
  g_free (e->path);
  g_free (e);
}

gboolean
st_running_from_build_tree (void)
{
  g_autofree char *exe = g_file_read_link ("/proc/self/exe", NULL);
  return exe && g_str_has_prefix (exe, ST_BUILD_ROOT "/");
}

/* OpenBLAS reads its settings once, when it is loaded, which happens with
 * the first plugin that links it: set them here, before any plugin loads,
 * unless the user chose otherwise.
 * - One OpenBLAS thread: strata has one thread pool for everything, and
 *   stages split their matrix products over it.  OpenBLAS's own threads
 *   spin (sched_yield) after loading and took a third of the time of
 *   filter pipelines that never call it.
 * - Debian's OpenBLAS 0.3.21 does not recognise recent AVX-512 CPUs (AMD
 *   Zen 4 and 5) and falls back to its Haswell kernels at half the speed. */
static void
prepare_blas_environment (void)
{
  g_setenv ("OPENBLAS_NUM_THREADS", "1", FALSE);
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init ();
  if (__builtin_cpu_supports ("avx512f") && __builtin_cpu_supports ("avx512bw")
      && __builtin_cpu_supports ("avx512dq") && __builtin_cpu_supports ("avx512vl"))
    g_setenv ("OPENBLAS_CORETYPE", "SKYLAKEX", FALSE);
#endif
}

static gint
compare_rank (gconstpointer a, gconstpointer b)
{
  const StKindEntry *ea = *(StKindEntry *const *) a;
  const StKindEntry *eb = *(StKindEntry *const *) b;
  return eb->kind->rank - ea->kind->rank;
}

static void
add_error (StRegistry *reg, const char *path, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static void
add_error (StRegistry *reg, const char *path, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_ptr_array_add (reg->errors, g_strdup_printf ("%s: %s", path, msg));
}

/* Remembers that the last error refused a provider of the kind name, so
 * that a pipeline asking for it hears why rather than "unknown kind". */
static void
note_refused (StRegistry *reg, const char *name)
{
  if (name && *name && !g_hash_table_contains (reg->refused, name))
    g_hash_table_insert (reg->refused, g_strdup (name),
                         g_strdup (reg->errors->pdata[reg->errors->len - 1]));
}

/* A file whose kinds cannot be read (it does not load, or has no entry
 * point) most likely provides the kind it is named after: "invert.so" or
 * "libinvert.so" provides "invert". */
static void
note_refused_file (StRegistry *reg, const char *path)
{
  g_autofree char *base = g_path_get_basename (path);
  char *dot = strrchr (base, '.');
  if (dot)
    *dot = '\0';
  note_refused (reg, g_str_has_prefix (base, "lib") && base[3] ? base + 3 : base);
}

/* Checks what a plugin says about itself before the core relies on it. */
static gboolean
kind_is_usable (StRegistry *reg, const char *path, const StKind *kind)
{
  if (!kind)
    {
      add_error (reg, path, "a stage kind entry is NULL");
      return FALSE;
    }
  /* abi_version, struct_size and name lead the struct in every ABI. */
  if (kind->abi_version != ST_ABI_VERSION)
    {
      add_error (reg, path, "plugin ABI version %u, this strata has ABI version %d; "
                 "rebuild the plugin against this strata", kind->abi_version, ST_ABI_VERSION);
      note_refused (reg, kind->name);
      return FALSE;
    }
  if (kind->struct_size < G_STRUCT_OFFSET (StKind, finalize) + sizeof (kind->finalize))
    {
      add_error (reg, path, "stage kind struct of %u bytes is too small", kind->struct_size);
      note_refused (reg, kind->name);
      return FALSE;
    }
  if (!kind->name || !*kind->name || !kind->infer || !kind->forward)
    {
      add_error (reg, path, "stage kind '%s' lacks a name, infer or forward",
                 kind->name ? kind->name : "(unnamed)");
      note_refused (reg, kind->name);
      return FALSE;
    }
  for (int i = 0; i < kind->n_params; i++)
    {
      const StParamSpec *spec = &kind->params[i];
      if (!spec->name || spec->offset >= MAX (kind->config_size, 1)
          || (spec->type == ST_PARAM_ENUM && !spec->choices))
        {
          add_error (reg, path, "stage kind '%s': parameter %d is malformed", kind->name, i);
          note_refused (reg, kind->name);
          return FALSE;
        }
    }
  return TRUE;
}

static void
load_plugin (StRegistry *reg, const char *path)
{
  g_autofree char *canonical = g_canonicalize_filename (path, NULL);
  if (g_hash_table_contains (reg->seen_files, canonical))
    return;
  g_hash_table_add (reg->seen_files, g_strdup (canonical));

  GModule *module = g_module_open (path, G_MODULE_BIND_LOCAL);
  if (!module)
    {
      add_error (reg, path, "cannot load: %s", g_module_error ());
      note_refused_file (reg, path);
      return;
    }
  const StPluginInfo *(*entry) (void) = NULL;
  if (!g_module_symbol (module, ST_PLUGIN_ENTRY, (gpointer *) &entry) || !entry)
    {
      add_error (reg, path, "no '%s' symbol: not a strata plugin", ST_PLUGIN_ENTRY);
      note_refused_file (reg, path);
      g_module_close (module);
      return;
    }
  const StPluginInfo *info = entry ();
  if (!info)
    {
      add_error (reg, path, "%s() returned NULL", ST_PLUGIN_ENTRY);
      note_refused_file (reg, path);
      g_module_close (module);
      return;
    }
  if (info->abi_version != ST_ABI_VERSION)
    {
      add_error (reg, path, "plugin ABI version %u, this strata has ABI version %d; "
                 "rebuild the plugin against this strata", info->abi_version, ST_ABI_VERSION);
      /* The info's fields and each kind's first three keep their place in
       * every ABI: enough to say which kinds went missing with the file. */
      for (int i = 0; info->kinds && i < info->n_kinds && i < 1024; i++)
        if (info->kinds[i])
          note_refused (reg, info->kinds[i]->name);
      note_refused_file (reg, path);
      g_module_close (module);
      return;
    }
  int added = 0;
  for (int i = 0; i < info->n_kinds; i++)
    {
      const StKind *kind = info->kinds[i];
      if (!kind_is_usable (reg, path, kind))
        continue;
      GPtrArray *list = g_hash_table_lookup (reg->kinds, kind->name);
      if (!list)
        {
          list = g_ptr_array_new_with_free_func (entry_free);
          g_hash_table_insert (reg->kinds, g_strdup (kind->name), list);
        }
      StKindEntry *e = g_new0 (StKindEntry, 1);
      e->kind = kind;
      e->path = g_strdup (path);
      g_ptr_array_add (list, e);
      /* Stable: among equal ranks, the first found (earlier in the path) wins. */
      g_ptr_array_sort (list, compare_rank);
      added++;
    }
  if (added)
    g_module_make_resident (module);  /* kinds point into it from now on */
  else
    g_module_close (module);
}

static void
scan_dir (StRegistry *reg, const char *dir, int depth)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  if (!d)
    return;
  /* Sorted, so that which of two equal-rank plugins wins does not depend on
   * the order the file system lists them. */
  g_autoptr (GPtrArray) names = st_dir_sorted_names (d);
  for (guint i = 0; i < names->len; i++)
    {
      const char *n = *(const char **) &names->pdata[i];
      g_autofree char *path = g_build_filename (dir, n, NULL);
      if (g_str_has_suffix (n, "." G_MODULE_SUFFIX) && g_file_test (path, G_FILE_TEST_IS_REGULAR))
        load_plugin (reg, path);
      else if (depth > 0 && g_file_test (path, G_FILE_TEST_IS_DIR))
        scan_dir (reg, path, depth - 1);
    }
}

StRegistry *
st_registry_new (const char *const *extra_dirs)
{
  static gsize blas_once = 0;
  if (g_once_init_enter (&blas_once))
    {
      prepare_blas_environment ();
      g_once_init_leave (&blas_once, 1);
    }

  StRegistry *reg = g_new0 (StRegistry, 1);
  reg->kinds = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                      (GDestroyNotify) g_ptr_array_unref);
  reg->errors = g_ptr_array_new_with_free_func (g_free);
  reg->refused = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  reg->seen_files = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  for (int i = 0; extra_dirs && extra_dirs[i]; i++)
    scan_dir (reg, extra_dirs[i], 1);
  const char *env = g_getenv ("STRATA_PLUGIN_PATH");
  if (env)
    {
      g_auto (GStrv) dirs = g_strsplit (env, G_SEARCHPATH_SEPARATOR_S, -1);
      for (int i = 0; dirs[i]; i++)
        if (*dirs[i])
          scan_dir (reg, dirs[i], 1);
    }
  if (st_running_from_build_tree ())
    scan_dir (reg, ST_BUILD_ROOT "/plugins", 1);
  else
    scan_dir (reg, ST_PLUGIN_DIR, 1);
  return reg;
}

void
st_registry_free (StRegistry *reg)
{
  if (!reg)
    return;
  g_hash_table_unref (reg->kinds);
  g_ptr_array_unref (reg->errors);
  g_hash_table_unref (reg->refused);
  g_hash_table_unref (reg->seen_files);
  g_free (reg);
}

static GMutex default_lock;
static StRegistry *default_registry;
static char **default_dirs;

void
st_registry_set_default_dirs (const char *const *extra_dirs)
{
  g_mutex_lock (&default_lock);
  g_strfreev (default_dirs);
  default_dirs = g_strdupv ((char **) extra_dirs);
  g_mutex_unlock (&default_lock);
}

StRegistry *
st_registry_get_default (void)
{
  g_mutex_lock (&default_lock);
  if (!default_registry)
    default_registry = st_registry_new ((const char *const *) default_dirs);
  g_mutex_unlock (&default_lock);
  return default_registry;
}

const StKindEntry *
st_registry_lookup (StRegistry *reg, const char *name)
{
  GPtrArray *list = g_hash_table_lookup (reg->kinds, name);
  return list && list->len ? list->pdata[0] : NULL;
}

GPtrArray *
st_registry_providers (StRegistry *reg, const char *name)
{
  GPtrArray *out = g_ptr_array_new ();
  GPtrArray *list = g_hash_table_lookup (reg->kinds, name);
  for (guint i = 0; list && i < list->len; i++)
    g_ptr_array_add (out, list->pdata[i]);
  return out;
}

GPtrArray *
st_registry_kind_names (StRegistry *reg)
{
  GPtrArray *names = g_ptr_array_new ();
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, reg->kinds);
  while (g_hash_table_iter_next (&it, &key, NULL))
    g_ptr_array_add (names, key);
  g_ptr_array_sort (names, st_compare_strings);
  return names;
}

GPtrArray *
st_registry_load_errors (StRegistry *reg)
{
  return reg->errors;
}

char *
st_registry_suggest (StRegistry *reg, const char *name)
{
  g_autoptr (GPtrArray) names = st_registry_kind_names (reg);
  g_ptr_array_add (names, NULL);
  return st_suggest (name, (const char *const *) names->pdata, 3);
}

const char *
st_registry_refusal (StRegistry *reg, const char *name)
{
  if (st_registry_lookup (reg, name))
    return NULL;
  return g_hash_table_lookup (reg->refused, name);
}
