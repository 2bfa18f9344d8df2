# The default strategy (ansible.cfg; Molecule's base config): Ansible's linear strategy run
# through Mitogen (pip package `mitogen`, pinned in requirements.txt), which keeps one Python
# interpreter per host instead of starting one per task: about 3 times fewer seconds per
# task here (bench/README.md). Third-party strategies are deprecated since ansible-core 2.19,
# so Ansible prints a deprecation warning; when Mitogen cannot load (not installed, or a
# later ansible-core refuses it), this falls back to Ansible's own linear strategy with a
# warning. `ANSIBLE_STRATEGY=linear` chooses the plain strategy outright.
try:
    from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule  # noqa: F401
except Exception as error:  # noqa: BLE001 - any failure to load means: run without Mitogen
    from ansible.plugins.strategy.linear import StrategyModule  # noqa: F401
    from ansible.utils.display import Display

    Display().warning(f"Mitogen did not load ({error}); running Ansible's own linear strategy.")
else:
    import collections
    import importlib.machinery
    import importlib.resources
    import importlib.util
    import os
    import pathlib

    import ansible_mitogen.module_finder
    import ansible_mitogen.planner

    # Before it runs a module from a collection (community.docker, community.general, ...),
    # Mitogen lists the directories of every installed collection, which imports each
    # collection's package and parses its meta/runtime.yml. It does so in the worker process
    # Ansible forks for each task, so the work is thrown away with the worker: about 0.1 s per
    # such task here, with the ~90 collections of the `ansible` package. This lists them once,
    # in this process, before any worker forks, and from the directories alone: importing them
    # all took 0.6 s of every run. The collections a run's tasks use are imported here all the
    # same, before the workers fork, by plugins/speedups/worker_warmup.py.
    def _collection_dirs():
        """The directories ansible.collections.list.list_collection_dirs() gives Mitogen: each
        installed collection, the first found of each name on the collection search path. That
        function also reads every collection's MANIFEST.json and warns on each run that
        ansible-core's internal `ansible._protomatter` has none; the directories are all
        Mitogen uses."""
        found = {}
        for path in importlib.resources.files("ansible_collections").glob("*/*/"):
            path = pathlib.Path(os.path.expandvars(path.as_posix())).expanduser().absolute()
            if path.is_dir() and path.parent.name.isidentifier() and path.name.isidentifier():
                found.setdefault((path.parent.name, path.name), path.as_posix())
        return tuple(sorted(found.values()))

    COLLECTION_DIRS = _collection_dirs()

    def _load_collections(invocation):
        invocation._extra_sys_paths.update(COLLECTION_DIRS)

    # Only where Mitogen still has the function this replaces; otherwise keep Mitogen's own.
    if callable(getattr(ansible_mitogen.planner, "_load_collections", None)):
        ansible_mitogen.planner._load_collections = _load_collections

    # Before it runs a module, Mitogen finds the module_utils it imports: it compiles the module
    # and, recursively, every module_utils file it reaches (about 46 files for most modules),
    # about 0.1 s a module. It keeps the answer per module, but not per file, so each of the
    # ~20 modules of a site.yml run compiles basic.py and the rest again; with the files' imports
    # kept, a module after the first costs a few milliseconds. Mitogen does this in its own
    # process, forked from this one, which lives for the whole run (files do not change then).
    # Only where Mitogen still finds module_utils with the function this replaces.
    _IMPORTS = {}
    _SPECS = {}

    def _imports(origin, prefix):
        if (origin, prefix) not in _IMPORTS:
            with open(origin, "rb") as source:
                code = compile(source.read(), origin, "exec")
            _IMPORTS[origin, prefix] = tuple(ansible_mitogen.module_finder.walk_imports(code, prefix))
        return _IMPORTS[origin, prefix]

    def _find_spec(name, locations):
        key = (name, tuple(locations))
        if key not in _SPECS:
            _SPECS[key] = importlib.util._find_spec(name, locations)
        return _SPECS[key]

    def _scan_importlib_find_spec(module_name, module_path, search_path):
        """Mitogen's function of the same name (ansible_mitogen/module_finder.py), with each
        file's imports and each name's spec looked up once."""
        prefix = importlib.machinery.ModuleSpec(ansible_mitogen.module_finder.PREFIX.rstrip("."), loader=None)
        prefix.submodule_search_locations = search_path
        queue = collections.deque([importlib.machinery.ModuleSpec(module_name, loader=None, origin=module_path)])
        specs = {prefix.name: prefix}
        while queue:
            spec = queue.popleft()
            if spec.origin is None:
                continue
            for name in _imports(spec.origin, prefix.name):
                if name in specs:
                    continue
                parent = specs[name.rpartition(".")[0]]
                if parent is None or not parent.submodule_search_locations:
                    specs[name] = None
                    continue
                child = _find_spec(name, parent.submodule_search_locations)
                if child is None or child.origin is None:
                    specs[name] = None
                    continue
                specs[name] = child
                queue.append(child)
        del specs[prefix.name]
        return sorted((spec.name, spec.origin, spec.submodule_search_locations is not None)
                      for spec in specs.values() if spec is not None)

    if callable(getattr(ansible_mitogen.module_finder, "_scan_importlib_find_spec", None)) and callable(
            getattr(ansible_mitogen.module_finder, "walk_imports", None)):
        ansible_mitogen.module_finder._scan_importlib_find_spec = _scan_importlib_find_spec


def _speedup(name):
    """A module of plugins/speedups/, loaded from its file (plugin directories are not packages)."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parent.parent / "speedups" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"deployer_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Both with Mitogen or without, installed here, before any worker forks: compiled Jinja
# templates kept for every worker and later runs (plugins/speedups/template_cache.py), the
# caches every worker fills warmed once before the workers fork
# (plugins/speedups/worker_warmup.py), tasks whose `when` is false skipped without a worker
# (plugins/speedups/controller_skips.py), and tasks that never touch the host (set_fact,
# assert, include_role, ...) run without a worker (plugins/speedups/controller_actions.py).
TEMPLATE_CACHE_INSTALLED = _speedup("template_cache").install()
StrategyModule = _speedup("worker_warmup").install(StrategyModule)
StrategyModule = _speedup("controller_skips").install(StrategyModule)
StrategyModule = _speedup("controller_actions").install(StrategyModule)
