/* A shared object in the plugin directory that is not a strata plugin (no
 * strata_plugin_info): test-sdk.sh checks that strata reports it and goes
 * on loading the others. */
int not_a_plugin (int x);

int
not_a_plugin (int x)
{
  return x + 1;
}
