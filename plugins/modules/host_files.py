#!/usr/bin/python
# A role's directories and files on the host in one module call. See plugins/action/host_files.py,
# which renders the templates on the control node and calls this with their text.
from __future__ import annotations

DOCUMENTATION = r"""
module: host_files
short_description: Make directories and whole files present, in order, in one call
description:
  - Each directory is created, or has its owner, group and mode corrected.
  - Each file whose text differs is written to a temporary file beside it, checked with its
    C(validate) command when it has one, and moved over the old file; a file whose text is the
    same only has its owner, group and mode corrected.
  - Entries are handled in the order given, so a file can be validated against files written
    before it. The first path refused stops the module; what changed before it is returned.
  - Called by the host_files action plugin, which renders templates on the control node.
options:
  directories:
    description: Directories, each a dict with path, owner, group and mode.
    type: list
    elements: dict
    default: []
  files:
    description:
      - Files, each a dict with dest, owner, group, mode, and optionally validate (a command
        with %s for the file); and either content or secret (true).
    type: list
    elements: dict
    default: []
  secret_contents:
    description:
      - The text of the files with secret true, in their order. Never logged or shown in a diff.
    type: list
    elements: str
    default: []
"""

RETURN = r"""
changed_paths:
  description: The directories and files created or changed, in order.
  type: list
  elements: str
"""

import grp
import os
import pwd
import shlex
import tempfile

from ansible.module_utils.basic import AnsibleModule


class _Refused(Exception):
    """A path the module cannot or may not write; main() reports it with what changed before."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.details = details


def _uid(owner):
    owner = str(owner)
    return int(owner) if owner.isdigit() else pwd.getpwnam(owner).pw_uid


def _gid(group):
    group = str(group)
    return int(group) if group.isdigit() else grp.getgrnam(group).gr_gid


def _mode(mode):
    return int(str(mode), 8)


def _attributes(spec):
    return _uid(spec.get("owner", "root")), _gid(spec.get("group", "root")), _mode(spec["mode"])


def _correct_attributes(module, path, uid, gid, mode):
    """Whether path's owner, group or mode differed; corrected unless in check mode."""
    st = os.lstat(path)
    if st.st_uid == uid and st.st_gid == gid and (st.st_mode & 0o7777) == mode:
        return False
    if not module.check_mode:
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    return True


def _ensure_directory(module, spec):
    path = spec["path"]
    uid, gid, mode = _attributes(spec)
    if not os.path.lexists(path):
        if not module.check_mode:
            os.makedirs(path, exist_ok=True)
            os.chown(path, uid, gid)
            os.chmod(path, mode)
        return True
    if not os.path.isdir(path) or os.path.islink(path):
        raise _Refused(f"{path} exists and is not a directory; move it aside and run again.")
    return _correct_attributes(module, path, uid, gid, mode)


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _ensure_file(module, spec, text, diffs):
    dest = spec["dest"]
    content = text.encode("utf-8")
    uid, gid, mode = _attributes(spec)
    if os.path.isdir(dest):
        raise _Refused(f"{dest} is a directory; a file was expected there.")
    old = _read(dest)
    if old == content:
        return _correct_attributes(module, dest, uid, gid, mode)

    if module._diff and not spec.get("secret"):
        diffs.append({
            "before_header": dest, "after_header": dest,
            "before": "" if old is None else old.decode("utf-8", "replace"),
            "after": text,
        })
    if module.check_mode:
        return True

    directory = os.path.dirname(dest) or "."
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(dest)}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.chown(temporary, uid, gid)
        os.chmod(temporary, mode)
        if spec.get("validate"):
            command = spec["validate"]
            rc, out, err = module.run_command(command.replace("%s", shlex.quote(temporary)))
            if rc != 0:
                raise _Refused(f"{dest} was not written: `{command}` rejected the new text (rc {rc}): "
                               f"{(err or out).strip()}", rc=rc, stdout=out, stderr=err)
        os.replace(temporary, dest)
        temporary = None
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)
    return True


def main():
    module = AnsibleModule(
        argument_spec={
            "directories": {"type": "list", "elements": "dict", "default": []},
            "files": {"type": "list", "elements": "dict", "default": []},
            # Only the secrets are no_log: Ansible masks every string of a no_log parameter
            # wherever it appears in the output, and paths, owners and modes would be masked too.
            "secret_contents": {"type": "list", "elements": "str", "default": [], "no_log": True},
        },
        supports_check_mode=True,
    )
    changed_paths = []
    diffs = []
    secrets = iter(module.params["secret_contents"])
    try:
        for spec in module.params["directories"]:
            if _ensure_directory(module, spec):
                changed_paths.append(spec["path"])
        for spec in module.params["files"]:
            text = next(secrets) if spec.get("secret") else spec["content"]
            if _ensure_file(module, spec, text, diffs):
                changed_paths.append(spec["dest"])
    except _Refused as refused:
        module.fail_json(msg=str(refused), changed=bool(changed_paths), changed_paths=changed_paths,
                         **refused.details)
    result = {"changed": bool(changed_paths), "changed_paths": changed_paths}
    if diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
