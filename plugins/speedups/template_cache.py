# Compiled Jinja templates remembered across Ansible's workers and runs.
#
# Ansible forks a worker process per task and host, and the worker compiles every template
# and conditional the task reads (its arguments, `when`, the role defaults they reach) to
# Python code anew: ansible-core 2.21 keeps no compiled template between workers. In a run of
# site.yml that is about a tenth of the control node's CPU time (py-spy; bench/README.md).
# This keeps each compiled template as a marshalled code object in a directory keyed by
# ansible-core's, Jinja's and Python's versions, under the template's source and every setting
# that changes the code generated from it, so a worker loads the code instead of compiling it.
#
# It wraps two methods of ansible-core's internal Jinja environment (AnsibleEnvironment):
# `compile` for templates and `compile_expression` for conditionals and expressions. When
# those internals are not as expected (another ansible-core), `install` changes nothing and
# Ansible compiles as before. plugins/strategy/mitogen_linear.py installs it, before any worker
# forks. DEPLOYER_TEMPLATE_CACHE=off turns it off; DEPLOYER_TEMPLATE_CACHE_DIR moves it (the
# default is $XDG_CACHE_HOME/deployer/templates, or ~/.cache/deployer/templates).
#
# Each upgrade of ansible-core, Jinja or Python starts a new directory and leaves the old one
# (about 5 MB for this project's templates): a run marks its own as used, and deletes the
# directories of other versions that no run used for STALE_DAYS.
from __future__ import annotations

import contextvars
import hashlib
import marshal
import os
import pathlib
import re
import shutil
import sys
import tempfile
import time

STALE_DAYS = 30
# The names of the per-version directories: nothing else under the cache directory is deleted.
_VERSION_DIRECTORY = re.compile(r"[0-9a-f]{16}")

_pending_expression: contextvars.ContextVar[str | None] = contextvars.ContextVar("_pending_expression", default=None)


def cache_dir() -> pathlib.Path:
    configured = os.environ.get("DEPLOYER_TEMPLATE_CACHE_DIR")
    if configured:
        return pathlib.Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "deployer" / "templates"


def prune(directory: pathlib.Path) -> None:
    """Marks directory as used now and deletes the other versions' directories beside it
    that no run used for STALE_DAYS. Errors only leave them in place."""
    try:
        os.utime(directory)
    except OSError:
        pass  # not created yet: the first template stored creates it
    cutoff = time.time() - STALE_DAYS * 86400
    try:
        siblings = list(directory.parent.iterdir())
    except OSError:
        return
    for sibling in siblings:
        if sibling.name == directory.name or not _VERSION_DIRECTORY.fullmatch(sibling.name):
            continue
        try:
            if sibling.is_dir() and not sibling.is_symlink() and sibling.stat().st_mtime < cutoff:
                shutil.rmtree(sibling, ignore_errors=True)
        except OSError:
            pass


def install() -> bool:
    """Wraps the environment's compile methods; False (and nothing changed) when it cannot."""
    if os.environ.get("DEPLOYER_TEMPLATE_CACHE", "").lower() in ("off", "false", "0", "no"):
        return False
    try:
        import jinja2
        from jinja2.environment import TemplateExpression
        from ansible.release import __version__ as ansible_version
        from ansible._internal._templating import _jinja_bits
        environment_class = _jinja_bits.AnsibleEnvironment
        compile_context = _jinja_bits._TemplateCompileContext
        override_fields = _jinja_bits._TEMPLATE_OVERRIDE_FIELD_NAMES
        template_config = _jinja_bits._TemplateConfig
        original_compile = environment_class.compile
        original_compile_expression = environment_class.compile_expression
    except (ImportError, AttributeError):
        return False
    if getattr(original_compile, "_deployer_template_cache", False):
        return True

    versions = f"ansible-core {ansible_version}, jinja2 {jinja2.__version__}, python {sys.version}"
    directory = cache_dir() / hashlib.sha256(versions.encode()).hexdigest()[:16]
    prune(directory)
    remembered: dict[str, object] = {}

    def key(environment, kind: str, source: str, *more) -> str:
        context = compile_context.current(optional=True)
        parts = [kind, repr(bool(context and context.escape_backslashes)),
                 repr(tuple(getattr(environment, name) for name in override_fields)),
                 repr(environment.optimized), repr(template_config.allow_embedded_templates),
                 type(environment).__qualname__, repr(more), str.__str__(source)]
        return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()

    def load(digest: str):
        if digest in remembered:
            return remembered[digest]
        try:
            code = marshal.loads((directory / digest[:2] / digest).read_bytes())
        except (OSError, EOFError, ValueError, TypeError):
            return None
        remembered[digest] = code
        return code

    def store(digest: str, code) -> None:
        remembered[digest] = code
        try:
            data = marshal.dumps(code)
            folder = directory / digest[:2]
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            with tempfile.NamedTemporaryFile(dir=folder, delete=False, prefix=".tmp-") as handle:
                handle.write(data)
            os.replace(handle.name, folder / digest)
        except (OSError, ValueError):
            pass  # a cache that cannot be written only costs the compile

    def compile(self, source, name=None, filename=None, raw=False, defer_init=False):
        if raw or self._debuggable_template_source:
            return original_compile(self, source, name, filename, raw, defer_init)
        if isinstance(source, str):
            digest = key(self, "template", source, name, filename, defer_init)
        else:
            # The tree compile_expression builds from an expression (below) and passes here.
            digest = _pending_expression.get()
            _pending_expression.set(None)
            if digest is None or name is not None or filename is not None or defer_init:
                return original_compile(self, source, name, filename, raw, defer_init)
        code = load(digest)
        if code is None:
            code = original_compile(self, source, name, filename, raw, defer_init)
            store(digest, code)
        return code

    def compile_expression(self, source, undefined_to_none=True):
        if not isinstance(source, str) or self._debuggable_template_source:
            return original_compile_expression(self, source, undefined_to_none)
        digest = key(self, "expression", source)
        code = load(digest)
        if code is not None:
            # What Jinja's compile_expression then from_string do with the compiled tree.
            template = self.template_class.from_code(self, code, self.make_globals(None), None)
            return TemplateExpression(template, undefined_to_none)
        token = _pending_expression.set(digest)
        try:
            return original_compile_expression(self, source, undefined_to_none)
        finally:
            _pending_expression.reset(token)

    compile._deployer_template_cache = True
    environment_class.compile = compile
    environment_class.compile_expression = compile_expression
    return True
