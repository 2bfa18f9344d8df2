"""plugins/action/host_files.py and plugins/modules/host_files.py on localhost, writing under
a temporary directory: templates and text, owners and modes, validation, check mode, --diff and
secrets."""
import json
import os
import stat
import subprocess
import sys

import yaml

from conftest import REPO, VENV_BIN

SECRET = "hunter2-not-for-logs"


def run(tmp_path, files, directories=(), *args, name="Write the files"):
    """The json callback's result of one host_files task on localhost, with the role `demo`
    whose templates/ holds page.j2."""
    role = tmp_path / "roles" / "demo"
    (role / "templates").mkdir(parents=True, exist_ok=True)
    (role / "templates" / "page.j2").write_text("# {{ ansible_managed }}\ntitle={{ title }}\n")
    (role / "tasks").mkdir(exist_ok=True)
    task = {"name": name, "host_files": {"directories": list(directories), "files": list(files)},
            "register": "written"}
    (role / "tasks" / "main.yml").write_text(yaml.safe_dump([task]))
    (tmp_path / "play.yml").write_text(yaml.safe_dump(
        [{"hosts": "localhost", "gather_facts": False, "vars": {"title": "first", "secret": SECRET},
          "roles": ["demo"]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_ROLES_PATH=str(tmp_path / "roles"))
    result = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", str(tmp_path / "play.yml"), *args],
        cwd=tmp_path, env=env, capture_output=True, text=True)
    # With -v, Ansible's own lines come before the report.
    report = result.stdout[result.stdout.index("{\n"):]
    outcome = json.loads(report)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return outcome, result.stdout + result.stderr


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def specs(tmp_path, title_validate=None):
    site = tmp_path / "site"
    page = {"template": "page.j2", "dest": str(site / "page.conf"), "mode": "0644"}
    if title_validate:
        page["validate"] = title_validate
    return (
        [{"path": str(site), "mode": "0750"}, {"path": str(site / "secrets"), "mode": "0700"}],
        [page,
         {"content": "{{ secret }}", "dest": str(site / "secrets" / "password"), "mode": "0600",
          "owner": str(os.getuid()), "group": str(os.getgid()), "secret": True}],
    )


def test_first_run_writes_everything_and_the_second_changes_nothing(tmp_path):
    directories, files = specs(tmp_path)
    site = tmp_path / "site"
    outcome, _ = run(tmp_path, files, directories)
    assert outcome["changed"] is True, outcome
    assert outcome["changed_paths"] == [str(site), str(site / "secrets"), str(site / "page.conf"),
                                        str(site / "secrets" / "password")]
    assert (site / "page.conf").read_text().splitlines()[1] == "title=first"
    assert (site / "page.conf").read_text().startswith("# Ansible managed")
    assert (site / "secrets" / "password").read_text() == SECRET
    assert (mode(site), mode(site / "secrets"), mode(site / "page.conf"), mode(site / "secrets" / "password")) == (
        0o750, 0o700, 0o644, 0o600)

    outcome, _ = run(tmp_path, files, directories)
    assert outcome["changed"] is False, outcome
    assert outcome["changed_paths"] == []


def test_a_mode_alone_is_corrected_without_rewriting_the_file(tmp_path):
    directories, files = specs(tmp_path)
    page = tmp_path / "site" / "page.conf"
    run(tmp_path, files, directories)
    inode = page.stat().st_ino
    page.chmod(0o666)
    outcome, _ = run(tmp_path, files, directories)
    assert outcome["changed_paths"] == [str(page)]
    assert mode(page) == 0o644
    assert page.stat().st_ino == inode


def test_a_rejected_file_keeps_the_old_one_and_leaves_no_temporary_file(tmp_path):
    site = tmp_path / "site"
    directories, files = specs(tmp_path)
    run(tmp_path, files, directories)
    before = (site / "page.conf").read_text()
    # The secret goes first this time, and changes; the page then fails its validation.
    changed_secret = dict(files[1], content="another")
    directories, files = specs(tmp_path, title_validate="grep -q title=second %s")
    outcome, output = run(tmp_path, [changed_secret, files[0]], directories, "-e", "title=third")
    assert outcome["failed"] is True
    assert str(site / "page.conf") in outcome["msg"] and "grep -q title=second" in outcome["msg"]
    assert (site / "page.conf").read_text() == before
    assert (site / "secrets" / "password").read_text() == "another"
    assert outcome["changed_paths"] == [str(site / "secrets" / "password")]
    assert sorted(p.name for p in site.iterdir()) == ["page.conf", "secrets"]

    outcome, _ = run(tmp_path, [changed_secret, files[0]], directories, "-e", "title=second")
    assert outcome["changed_paths"] == [str(site / "page.conf")]
    assert "title=second" in (site / "page.conf").read_text()


def test_check_mode_reports_without_writing_and_diff_hides_secrets(tmp_path):
    directories, files = specs(tmp_path)
    site = tmp_path / "site"
    outcome, output = run(tmp_path, files, directories, "--check", "--diff", "-vvv")
    assert outcome["changed"] is True
    assert len(outcome["changed_paths"]) == 4
    assert not site.exists()
    assert [d["after_header"] for d in outcome["diff"]] == [str(site / "page.conf")]
    assert "title=first" in outcome["diff"][0]["after"]
    assert SECRET not in output


def test_the_module_logs_its_arguments_without_the_secrets(tmp_path, monkeypatch, capsys):
    """A module writes its arguments to the host's journal (syslog) when it starts: the files'
    paths and modes are logged as they are, the secret's text is not."""
    monkeypatch.syspath_prepend(str(REPO / "plugins" / "modules"))
    import host_files
    from ansible.module_utils import basic

    dest = tmp_path / "password"
    args = {"ANSIBLE_MODULE_ARGS": {
        "files": [{"dest": str(dest), "mode": "0600", "owner": str(os.getuid()), "group": str(os.getgid()),
                   "secret": True}],
        "secret_contents": [SECRET]}}
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps(args).encode())
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
    logged = []
    monkeypatch.setattr(basic.AnsibleModule, "log", lambda self, msg, log_args=None: logged.append(msg))
    try:
        host_files.main()
    except SystemExit:
        pass
    result = json.loads(capsys.readouterr().out)
    assert result["changed_paths"] == [str(dest)]
    assert dest.read_text() == SECRET
    assert len(logged) == 1 and str(dest) in logged[0] and "secret_contents" in logged[0]
    assert SECRET not in logged[0] and SECRET not in json.dumps(result)


def test_a_mode_that_is_not_a_quoted_octal_string_fails_before_anything_changes(tmp_path):
    directories, files = specs(tmp_path)
    files[0]["mode"] = 420  # 0644 written without quotes in YAML
    outcome, _ = run(tmp_path, files, directories)
    assert outcome["failed"] is True
    assert "quoted octal string" in outcome["msg"]
    assert not (tmp_path / "site").exists()


def test_a_validate_command_without_the_file_fails_before_anything_changes(tmp_path):
    directories, files = specs(tmp_path, title_validate="bash -n")
    outcome, _ = run(tmp_path, files, directories)
    assert outcome["failed"] is True
    assert "has no %s" in outcome["msg"]
    assert not (tmp_path / "site").exists()


def test_a_directory_where_a_file_goes_is_refused_and_reported_with_what_changed(tmp_path):
    directories, files = specs(tmp_path)
    (tmp_path / "site" / "page.conf").mkdir(parents=True)
    outcome, _ = run(tmp_path, files, directories)
    assert outcome["failed"] is True
    assert "is a directory" in outcome["msg"]
    assert outcome["changed_paths"] == [str(tmp_path / "site"), str(tmp_path / "site" / "secrets")]


def test_a_file_needs_a_template_or_a_content(tmp_path):
    directories, files = specs(tmp_path)
    files[0]["content"] = "both"
    outcome, output = run(tmp_path, files, directories)
    assert outcome["failed"] is True
    assert "either template or content" in outcome["msg"]
    assert not (tmp_path / "site").exists()
