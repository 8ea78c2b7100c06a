/* strata — command-line options declared as parameter specs. */
#include "option.h"

void
st_options_set_defaults (const StOptionSpec *options, int n, void *target)
{
  for (int i = 0; i < n; i++)
    if (options[i].spec.default_value
        && !st_param_parse (&options[i].spec, options[i].spec.default_value, target, NULL))
      g_critical ("option --%s: invalid default '%s'", options[i].spec.name,
                  options[i].spec.default_value);
}

gboolean
st_option_parse (const StOptionSpec *option, const char *text, void *target, GError **error)
{
  /* A path is taken as given: st_param_parse would trim its spaces. */
  if (option->spec.type == ST_PARAM_STRING)
    {
      char **field = (char **) ((char *) target + option->spec.offset);
      g_free (*field);
      *field = g_strdup (text);
      return TRUE;
    }
  g_autoptr (GError) local = NULL;
  if (st_param_parse (&option->spec, text ? text : option->flag_value, target, &local))
    return TRUE;
  g_set_error (error, ST_ERROR, ST_ERROR_USAGE, "--%s: %s", option->spec.name, local->message);
  return FALSE;
}

char *
st_option_help (const StOptionSpec *option)
{
  const StParamSpec *spec = &option->spec;
  GString *help = g_string_new (spec->help);
  g_autofree char *range = option->arg_name ? st_param_describe_range (spec) : NULL;
  if (range)
    g_string_append_printf (help, ", %s", range);
  /* A flag's default is its absence. */
  const char *default_text = option->default_help ? option->default_help
                             : option->arg_name ? spec->default_value : NULL;
  if (default_text)
    g_string_append_printf (help, " (default %s)", default_text);
  return g_string_free (help, FALSE);
}

void
st_options_clear (const StOptionSpec *options, int n, void *target)
{
  for (int i = 0; i < n; i++)
    if (options[i].spec.type == ST_PARAM_STRING)
      g_clear_pointer ((char **) ((char *) target + options[i].spec.offset), g_free);
}
