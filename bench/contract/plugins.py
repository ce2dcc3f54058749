"""Strategy plugins: a Python file passed with --plugin, or a package exposing the `promptshift.strategies`
entry-point group. Loading one only imports it; its `@register_strategy` decorators do the rest.

A plugin is code and runs with the user's rights (README, "Security model"). What this module guards against is
accident, not malice: a plugin that exits or prints while it is imported is a clear error (its output would end a
run silently or corrupt `list --json`), and every plugin imported into a process is listed in `LOADED` with its
file's hash, which each record of a cell computed there carries (`env.plugins`)."""
from __future__ import annotations

import contextlib
import hashlib
import io
import importlib.util
import sys
import traceback
from importlib import metadata
from pathlib import Path

ENTRY_POINT_GROUP = "promptshift.strategies"
LOADED: dict[str, str] = {}  # plugin (file path or entry point) -> sha256 of its source, in this process


class PluginError(RuntimeError):
    """A plugin could not be loaded; the message says which file and why, without a traceback wall."""


def precheck_plugin_file(path: str | Path) -> None:
    """The errors found without importing anything (so before torch loads, in milliseconds): a missing file, not
    a .py file, a syntax error."""
    path = Path(path).resolve()
    if not path.is_file():
        raise PluginError(f"plugin {path} does not exist")
    if path.suffix != ".py":
        raise PluginError(f"plugin {path} is not a .py file")
    try:
        compile(path.read_bytes(), str(path), "exec")
    except (SyntaxError, ValueError) as error:
        line = f" (line {error.lineno}: {(error.text or '').strip()})" if isinstance(error, SyntaxError) else ""
        raise PluginError(f"plugin {path} failed to import: {type(error).__name__}: {error.msg if line else error}"
                          f"{line}") from None


def load_plugin_file(path: str | Path) -> object:
    """Import one plugin file as a module (under a name derived from its path, so two files never clash)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise PluginError(f"plugin {path} does not exist")
    if path.suffix != ".py":
        raise PluginError(f"plugin {path} is not a .py file")
    name = f"promptshift_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with _quiet_import(f"plugin {path}"):
            spec.loader.exec_module(module)
    except PluginError:
        del sys.modules[name]
        raise
    except Exception as error:  # noqa: BLE001 - any import-time failure becomes one clear message
        del sys.modules[name]
        frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == str(path)]
        where = f" (line {frames[-1].lineno}: {frames[-1].line})" if frames else ""
        raise PluginError(f"plugin {path} failed to import: {type(error).__name__}: {error}{where}") from None
    LOADED[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return module


@contextlib.contextmanager
def _quiet_import(what: str):
    """Run an import that must neither end the process nor write to stdout: `sys.exit` or output become a
    PluginError (stdout is captured, so nothing reaches the terminal or a `--json` listing)."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            yield
    except SystemExit as exit_:
        raise PluginError(f"{what} called sys.exit({exit_.code!r}) while being imported; a plugin must only "
                          f"register strategies") from None
    printed = captured.getvalue().strip()
    if printed:
        raise PluginError(f"{what} printed while being imported ({printed.splitlines()[0][:80]!r}); a plugin must "
                          f"not write to stdout, which `list --json` and the run's output use")


def load_entry_points() -> list[str]:
    """Import every installed package registered under the `promptshift.strategies` entry-point group."""
    loaded = []
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            with _quiet_import(f"entry point {entry.name} ({entry.value})"):
                module = entry.load()
        except PluginError:
            raise
        except Exception as error:  # noqa: BLE001
            raise PluginError(f"entry point {entry.name} ({entry.value}) failed to load: "
                              f"{type(error).__name__}: {error}") from None
        loaded.append(entry.name)
        LOADED[f"entry point {entry.name} ({entry.value})"] = _source_hash(module)
    return loaded


def _source_hash(obj: object) -> str:
    """sha256 of the file that defines `obj` (a module, or the module of a class or function), or "unknown"."""
    import inspect

    try:
        return hashlib.sha256(Path(inspect.getfile(inspect.getmodule(obj) or obj)).read_bytes()).hexdigest()
    except (TypeError, OSError):
        return "unknown"


def load_plugins(paths: list[str] | None = None) -> None:
    """Installed entry points first, then the given files."""
    load_entry_points()
    for path in paths or []:
        load_plugin_file(path)
