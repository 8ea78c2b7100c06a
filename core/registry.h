/* strata — finding and loading stage plugins. */
#pragma once

#include <strata/strata.h>

G_BEGIN_DECLS

typedef struct _StRegistry StRegistry;

typedef struct {
  const StKind *kind;
  char *path;                  /* the shared object it came from */
} StKindEntry;

/* Loads every plugin found in: extra_dirs (may be NULL), the directories of
 * STRATA_PLUGIN_PATH, the build tree when running from it, and the installed
 * plugin directory.  Plugins that fail are recorded in the load errors; the
 * rest still load. */
StRegistry *st_registry_new (const char *const *extra_dirs);
void        st_registry_free (StRegistry *reg);

/* A process-wide registry created on first use with no extra dirs, unless
 * st_registry_set_default_dirs() was called first (the CLI's --plugin-dir). */
StRegistry *st_registry_get_default (void);
void        st_registry_set_default_dirs (const char *const *extra_dirs);

/* The highest-ranked provider of a kind, or NULL. */
const StKindEntry *st_registry_lookup (StRegistry *reg, const char *name);
/* All providers of a kind, best first. */
GPtrArray  *st_registry_providers (StRegistry *reg, const char *name);
/* Kind names, sorted. */
GPtrArray  *st_registry_kind_names (StRegistry *reg);
/* "path: reason" for each plugin that did not load. */
GPtrArray  *st_registry_load_errors (StRegistry *reg);
/* When no loaded plugin provides the kind name but a refused one does (or
 * is named after it: "name.so"), that refusal as "path: reason"; else NULL. */
const char *st_registry_refusal (StRegistry *reg, const char *name);
/* Kind names close to name, as "'a', 'b'", or NULL: for "did you mean". */
char       *st_registry_suggest (StRegistry *reg, const char *name);

/* True when the running program lives in the build tree: it then uses the
 * build's plugins and the source tree's pipelines, so that a build tests
 * its own and never picks up older installed copies. */
gboolean    st_running_from_build_tree (void);

G_END_DECLS
