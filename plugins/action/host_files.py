# A role's directories and files as one task: the templates are rendered here, on the control
# node, as ansible.builtin.template renders them, and one call of plugins/modules/host_files.py
# writes everything on the host. One `file` or `template` task per path cost a task's overhead
# each (0.1-0.2 s with Mitogen, two module calls for a template); a role wrote up to six.
#
#   - name: Write the Redis project
#     host_files:
#       directories:                       # created first, in order
#         - {path: /srv/redis, owner: root, group: root, mode: "0755"}
#       files:                             # then written in order
#         - template: redis.conf.j2        # from the role's templates/, or
#           dest: /srv/redis/redis.conf
#           owner: "999"
#           group: "999"
#           mode: "0600"
#           secret: true                   # never shown in a --diff
#         - content: "{{ redis_password }}"   # text as it is
#           dest: /srv/redis/password
#           mode: "0600"
#         - template: compose.yaml.j2
#           dest: /srv/redis/compose.yaml
#           mode: "0644"
#           validate: docker compose -f %s config -q   # run on the new text, beside dest
#     register: __redis_files              # __redis_files.changed_paths: what changed
#
# owner and group default to root. A file is validated, as with `template`, before it replaces
# the old one; a rejected file stops the task, and the files before it stay written. A role
# reads `'<path>' in result.changed_paths` where it read `result is changed` of a single task.
from __future__ import annotations

import os
import re

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template
# ansible-core 2.19 and later (requirements.txt pins it): the variables ansible.builtin.template
# adds, ansible_managed among them, which the roles' templates use.
from ansible._internal._templating._template_vars import generate_ansible_template_vars

DIRECTORY_KEYS = {"path", "owner", "group", "mode"}
FILE_KEYS = {"template", "content", "dest", "owner", "group", "mode", "validate", "secret"}
_MODE = re.compile(r"^0?[0-7]{3,4}$")


class ActionModule(ActionBase):

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        directories = self._task.args.get("directories") or []
        files = self._task.args.get("files") or []
        unknown = set(self._task.args) - {"directories", "files"}
        if unknown:
            raise AnsibleActionFail(f"host_files takes directories and files, not {', '.join(sorted(unknown))}")

        module_directories = [self._directory(spec) for spec in directories]
        module_files = [self._file(spec, task_vars) for spec in files]
        # A secret file's text travels apart, in the module's one no_log parameter.
        secret_contents = [spec.pop("content") for spec in module_files if spec["secret"]]
        result.update(self._execute_module(
            module_name="host_files",
            module_args={"directories": module_directories, "files": module_files,
                         "secret_contents": secret_contents},
            task_vars=task_vars,
        ))
        return result

    @staticmethod
    def _attributes(spec, what):
        mode = spec.get("mode")
        if not isinstance(mode, str) or not _MODE.match(mode):
            raise AnsibleActionFail(f"{what}: mode must be a quoted octal string such as \"0644\", not {mode!r}")
        return {"owner": str(spec.get("owner", "root")), "group": str(spec.get("group", "root")), "mode": mode}

    def _directory(self, spec):
        if not isinstance(spec, dict) or not spec.get("path") or set(spec) - DIRECTORY_KEYS:
            raise AnsibleActionFail(f"A directory of host_files takes {', '.join(sorted(DIRECTORY_KEYS))} "
                                    f"(path and mode required), got {spec!r}")
        return {"path": spec["path"], **self._attributes(spec, spec["path"])}

    def _file(self, spec, task_vars):
        if not isinstance(spec, dict) or not spec.get("dest") or set(spec) - FILE_KEYS:
            # No repr of spec: content may be a secret.
            keys = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
            raise AnsibleActionFail(f"A file of host_files takes {', '.join(sorted(FILE_KEYS))} (dest and mode "
                                    f"required), got {keys}")
        dest = spec["dest"]
        if ("template" in spec) == ("content" in spec):
            raise AnsibleActionFail(f"{dest}: give either template or content")
        content = self._render(spec["template"], dest, task_vars) if "template" in spec else str(spec["content"])
        module_spec = {"dest": dest, "content": content, "secret": bool(spec.get("secret", False)),
                       **self._attributes(spec, dest)}
        if spec.get("validate"):
            if "%s" not in spec["validate"]:
                raise AnsibleActionFail(f"{dest}: the validate command has no %s for the file: {spec['validate']}")
            module_spec["validate"] = spec["validate"]
        return module_spec

    def _render(self, name, dest, task_vars):
        """The template's text, rendered as ansible.builtin.template renders it (its defaults)."""
        source = self._find_needle("templates", name)
        searchpath = list(task_vars.get("ansible_search_path", [])) + [self._loader._basedir, os.path.dirname(source)]
        searchpath = [p for base in searchpath for p in (os.path.join(base, "templates"), base)]
        template_vars = task_vars.copy()
        template_vars.update(generate_ansible_template_vars(
            path=name, fullpath=source, dest_path=dest,
            include_ansible_managed="ansible_managed" not in template_vars))
        templar = self._templar.copy_with_new_env(searchpath=searchpath, available_variables=template_vars)
        rendered = templar.template(trust_as_template(self._loader.get_text_file_contents(source)),
                                    escape_backslashes=False,
                                    overrides={"trim_blocks": True, "lstrip_blocks": False, "newline_sequence": "\n"})
        return "" if rendered is None else rendered
