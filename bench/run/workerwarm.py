"""Imported last by the worker fork server: computes once per run what every cell's record repeats (git hash,
package versions), so each forked cell process inherits the cached values instead of rerunning git."""
from bench.run.runner import code_version, package_versions

code_version()
package_versions()
