"""The image_archive action plugin (plugins/action/image_archive.py): what a `docker save`
archive holds, and copies of it cut down to some of its images. Archives are built here in the
two layouts `docker save` writes (Docker < 25: <id>/layer.tar directories, repeated layers as
symlinks; Docker >= 25: OCI blobs/sha256 with index.json); molecule/docker loads cut copies of
real ones into Debian's Docker."""
import gzip
import hashlib
import importlib.util
import io
import json
import os
import pathlib
import subprocess
import tarfile

import pytest
import yaml
import zstandard

from conftest import REPO, VENV_BIN

spec = importlib.util.spec_from_file_location("image_archive", REPO / "plugins/action/image_archive.py")
image_archive = importlib.util.module_from_spec(spec)
spec.loader.exec_module(image_archive)

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def add(archive, name, data=None, symlink_to=None, directory=False):
    info = tarfile.TarInfo(name)
    if directory:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(info)
    elif symlink_to:
        info.type, info.linkname = tarfile.SYMTYPE, symlink_to
        archive.addfile(info)
    else:
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))


def legacy_archive(path):
    """Three images, the way Docker < 25 saves them: a base layer all three share, and the web
    image's second layer stored as a symlink to the worker's identical one."""
    layers = {"base": b"base layer " * 1000, "pg": b"postgres layer " * 3000, "code": b"app code " * 500}
    with tarfile.open(path, "w") as archive:
        for name, data in layers.items():
            add(archive, f"{name}/", directory=True)
            add(archive, f"{name}/VERSION", b"1.0")
            add(archive, f"{name}/layer.tar", data)
        add(archive, "webcode/", directory=True)
        add(archive, "webcode/layer.tar", symlink_to="../code/layer.tar")
        manifest = []
        for image, tags, image_layers in (("pg", ["postgres:17"], ["base", "pg"]),
                                          ("worker", ["shop/worker:2"], ["base", "code"]),
                                          ("web", ["shop/web:2", "shop/web:latest"], ["base", "webcode"])):
            config = json.dumps({"image": image}).encode()
            image_id = hashlib.sha256(config).hexdigest()
            add(archive, f"{image_id}.json", config)
            manifest.append({"Config": f"{image_id}.json", "RepoTags": tags,
                             "Layers": [f"{layer}/layer.tar" for layer in image_layers]})
        add(archive, "manifest.json", json.dumps(manifest).encode())
        add(archive, "repositories", b"{}")
    return manifest


def oci_archive(path):
    """Two images, the way Docker >= 25 saves them: blobs named by digest, an index.json, and the
    manifest.json `docker load` reads."""
    blobs, manifest = {}, []

    def blob(data):
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return f"blobs/sha256/{digest}"

    base = blob(b"base layer " * 1000)
    for tag, own in (("redis:8", b"redis " * 2000), ("nginx:1.26", b"nginx " * 2000)):
        manifest.append({"Config": blob(json.dumps({"tag": tag}).encode()), "RepoTags": [tag],
                         "Layers": [base, blob(own)]})
    with tarfile.open(path, "w") as archive:
        add(archive, "blobs/", directory=True)
        add(archive, "blobs/sha256/", directory=True)
        for digest, data in blobs.items():
            add(archive, f"blobs/sha256/{digest}", data)
        add(archive, "index.json", b'{"schemaVersion": 2, "manifests": []}')
        add(archive, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        add(archive, "manifest.json", json.dumps(manifest).encode())
    return manifest


def contents(path):
    """{member name: data, link target or "dir"} of a tar archive, zstd-compressed or not."""
    data = pathlib.Path(path).read_bytes()
    if data.startswith(ZSTD_MAGIC):
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {m.name: (archive.extractfile(m).read() if m.isfile() else m.linkname or "dir")
                for m in archive.getmembers()}


def test_a_legacy_archive_is_cut_to_the_chosen_images_files(tmp_path):
    source = tmp_path / "stack.tar"
    manifest = legacy_archive(source)
    found = image_archive.inspect(str(source), ["shop/web:2"], str(tmp_path / "cuts"))
    assert found["cut"] and found["written"]
    assert found["images"] == ["postgres:17", "shop/web:2", "shop/web:latest", "shop/worker:2"]
    whole, cut = contents(source), contents(found["path"])
    # The web image's config and layers, the symlinked layer with its target, their directories.
    assert set(cut) == {manifest[2]["Config"], "base", "base/layer.tar", "webcode", "webcode/layer.tar",
                        "code", "code/layer.tar", "manifest.json"}
    assert cut["webcode/layer.tar"] == "../code/layer.tar"
    assert cut["base/layer.tar"] == whole["base/layer.tar"] and cut["code/layer.tar"] == whole["code/layer.tar"]
    assert json.loads(cut["manifest.json"]) == [manifest[2]]


def test_an_oci_archive_is_cut_without_its_index(tmp_path):
    source = tmp_path / "oci.tar"
    manifest = oci_archive(source)
    found = image_archive.inspect(str(source), ["docker.io/library/nginx:1.26"], str(tmp_path / "cuts"))
    cut = contents(found["path"])
    assert json.loads(cut["manifest.json"]) == [manifest[1]]
    # index.json lists every image; without it, docker load reads manifest.json.
    assert set(cut) == {"blobs", "blobs/sha256", manifest[1]["Config"], *manifest[1]["Layers"], "manifest.json"}


def test_several_images_travel_in_one_cut_with_shared_layers_once(tmp_path):
    source = tmp_path / "stack.tar"
    legacy_archive(source)
    found = image_archive.inspect(str(source), ["postgres:17", "shop/worker:2"], str(tmp_path / "cuts"))
    names = [m.name for m in tarfile.open(found["path"]).getmembers()]
    assert names.count("base/layer.tar") == 1
    assert {"pg/layer.tar", "code/layer.tar"} <= set(names) and "webcode/layer.tar" not in names
    assert os.path.getsize(found["path"]) < os.path.getsize(source)


def test_images_are_found_by_tag_as_docker_names_them_or_by_id(tmp_path):
    assert image_archive.normalize("docker.io/library/postgres:17") == "postgres:17"
    assert image_archive.normalize("index.docker.io/shop/web") == "shop/web:latest"
    assert image_archive.normalize("registry.example.com:5000/shop/web") == "registry.example.com:5000/shop/web:latest"
    assert image_archive.normalize("registry.example.com/library/x:1") == "registry.example.com/library/x:1"
    source = tmp_path / "stack.tar"
    manifest = legacy_archive(source)
    image_id = "sha256:" + manifest[0]["Config"].removesuffix(".json")
    found = image_archive.inspect(str(source), ["shop/web", image_id], str(tmp_path / "cuts"))
    assert [e["RepoTags"][0] for e in json.loads(contents(found["path"])["manifest.json"])] == ["postgres:17", "shop/web:2"]


def test_a_missing_image_fails_naming_what_the_archive_holds(tmp_path):
    source = tmp_path / "stack.tar"
    legacy_archive(source)
    with pytest.raises(image_archive.ArchiveError) as error:
        image_archive.inspect(str(source), ["shop/web:3", "shop/worker:2"], str(tmp_path / "cuts"))
    assert str(error.value).startswith(
        f"Image archive '{source}' does not hold shop/web:3. It holds: postgres:17, shop/web:2, shop/web:latest,"
        " shop/worker:2.")
    assert not (tmp_path / "cuts").exists()
    with pytest.raises(image_archive.ArchiveError, match="name it by tag"):
        image_archive.inspect(str(source), ["shop/web@sha256:" + "a" * 64], None)


@pytest.mark.parametrize("content, expected", [
    (None, "does not exist on the control node"),
    (b"not an archive at all\n" * 40, "cannot be read as a tar archive"),
    ("tar-without-manifest", "has no manifest.json: it is not an archive that `docker save` wrote"),
])
def test_what_is_not_an_image_archive_is_named(tmp_path, content, expected):
    source = tmp_path / "image.tar"
    if content == "tar-without-manifest":
        with tarfile.open(source, "w") as archive:
            add(archive, "etc/hostname", b"web1\n")
    elif content is not None:
        source.write_bytes(content)
    with pytest.raises(image_archive.ArchiveError) as error:
        image_archive.inspect(str(source), ["shop/web:2"], None)
    assert expected in str(error.value)


def test_all_of_an_archives_images_or_none_named_ship_the_archive_itself(tmp_path):
    source = tmp_path / "stack.tar"
    legacy_archive(source)
    everything = ["postgres:17", "shop/web:2", "shop/worker:2"]
    for images in (everything, []):
        found = image_archive.inspect(str(source), images, str(tmp_path / "cuts"))
        assert found["path"] == str(source) and not found["cut"]
    assert not (tmp_path / "cuts").exists()


def test_a_compressed_archive_travels_whole_unchecked(tmp_path):
    source = tmp_path / "stack.tar.gz"
    legacy_archive(tmp_path / "stack.tar")
    source.write_bytes(gzip.compress((tmp_path / "stack.tar").read_bytes()))
    found = image_archive.inspect(str(source), ["shop/web:9"], str(tmp_path / "cuts"))
    assert found == {"path": str(source), "images": None, "cut": False, "compressed": True, "zstd": False}
    # Not compressed again either.
    assert image_archive.inspect(str(source), ["shop/web:9"], str(tmp_path / "cuts"), compress=True) == found


def test_a_cut_is_reused_until_the_archive_changes(tmp_path):
    source, cuts = tmp_path / "stack.tar", tmp_path / "cuts"
    legacy_archive(source)
    first = image_archive.inspect(str(source), ["shop/web:2"], str(cuts))
    other = image_archive.inspect(str(source), ["postgres:17"], str(cuts))
    again = image_archive.inspect(str(source), ["shop/web:2"], str(cuts))
    assert again["path"] == first["path"] and not again["written"]
    assert len(list(cuts.glob("*.tar"))) == 2
    # A new version of the archive (a new app image, say): its cuts replace the old version's.
    legacy_archive(source)
    os.utime(source, ns=(os.stat(source).st_atime_ns, os.stat(source).st_mtime_ns + 10**9))
    newer = image_archive.inspect(str(source), ["shop/web:2"], str(cuts))
    assert newer["written"] and newer["path"] != first["path"]
    assert [p.name for p in cuts.glob("*.tar")] == [os.path.basename(newer["path"])]
    assert not os.path.exists(other["path"])


def test_with_compress_a_cut_travels_zstd_compressed(tmp_path):
    source = tmp_path / "stack.tar"
    legacy_archive(source)
    plain = image_archive.inspect(str(source), ["shop/web:2"], str(tmp_path / "plain"))
    found = image_archive.inspect(str(source), ["shop/web:2"], str(tmp_path / "cuts"), compress=True)
    assert found["cut"] and found["zstd"] and found["written"] and found["path"].endswith(".tar.zst")
    assert pathlib.Path(found["path"]).read_bytes().startswith(ZSTD_MAGIC)
    assert contents(found["path"]) == contents(plain["path"])
    assert os.path.getsize(found["path"]) < os.path.getsize(plain["path"]) / 3
    # Reused like an uncompressed cut, and kept apart from it.
    assert not image_archive.inspect(str(source), ["shop/web:2"], str(tmp_path / "cuts"), compress=True)["written"]


def test_with_compress_the_whole_archive_travels_compressed(tmp_path):
    """An archive that holds only the images the host runs is not cut, but still compressed."""
    source = tmp_path / "stack.tar"
    legacy_archive(source)
    for images in (["postgres:17", "shop/web:2", "shop/worker:2"], []):  # none named: all of them
        found = image_archive.inspect(str(source), images, str(tmp_path / "cuts"), compress=True)
        assert not found["cut"] and found["zstd"] and found["path"].startswith(str(tmp_path / "cuts"))
        decompressed = zstandard.ZstdDecompressor().stream_reader(open(found["path"], "rb")).read()
        assert decompressed == source.read_bytes()


@pytest.mark.skipif(not os.sys.platform.startswith("linux"), reason="a thread's own nice value is Linux's")
def test_cuts_and_compression_run_at_the_lowest_cpu_priority(tmp_path, monkeypatch):
    """Only the cutting thread is reniced (to 19), not the caller; a failure inside it still
    reaches the caller, and the next run cuts again instead of reusing anything."""
    source = tmp_path / "stack.tar"
    legacy_archive(source)
    priorities = []
    for name in ("cut", "compress_whole"):
        real = getattr(image_archive, name)
        monkeypatch.setattr(image_archive, name, lambda *args, real=real: (
            priorities.append(os.getpriority(os.PRIO_PROCESS, 0)), real(*args))[1])
    caller = os.getpriority(os.PRIO_PROCESS, 0)
    assert image_archive.inspect(str(source), ["shop/web:2"], str(tmp_path / "cuts"), compress=True)["written"]
    assert image_archive.inspect(str(source), [], str(tmp_path / "cuts"), compress=True)["written"]
    assert priorities == [19, 19]
    assert os.getpriority(os.PRIO_PROCESS, 0) == caller

    def failing_cut(archive, entries, dest, compress):
        raise image_archive.ArchiveError("the disk is full")
    monkeypatch.setattr(image_archive, "cut", failing_cut)
    with pytest.raises(image_archive.ArchiveError, match="the disk is full"):
        image_archive.inspect(str(source), ["postgres:17"], str(tmp_path / "cuts"))
    monkeypatch.undo()
    assert image_archive.inspect(str(source), ["postgres:17"], str(tmp_path / "cuts"))["written"]


def test_without_zstandard_the_copy_travels_uncompressed_with_a_warning(tmp_path, monkeypatch):
    source = tmp_path / "stack.tar"
    legacy_archive(source)
    monkeypatch.setattr(image_archive, "zstandard", None)
    found = image_archive.inspect(str(source), ["shop/web:2"], str(tmp_path / "cuts"), compress=True)
    assert found["cut"] and not found["zstd"] and found["path"].endswith(".tar")
    assert "zstandard is not installed" in found["warnings"][0]
    whole = image_archive.inspect(str(source), [], str(tmp_path / "cuts"), compress=True)
    assert whole["path"] == str(source) and not whole["zstd"]


def test_a_new_version_replaces_the_compressed_copies_too(tmp_path):
    source, cuts = tmp_path / "stack.tar", tmp_path / "cuts"
    legacy_archive(source)
    old = [image_archive.inspect(str(source), ["shop/web:2"], str(cuts), compress=compress)["path"]
           for compress in (True, False)]
    os.utime(source, ns=(os.stat(source).st_atime_ns, os.stat(source).st_mtime_ns + 10**9))
    newer = image_archive.inspect(str(source), ["shop/web:2"], str(cuts), compress=True)["path"]
    assert sorted(p.name for p in cuts.iterdir() if not p.name.startswith(".")) == [os.path.basename(newer)]
    assert not any(os.path.exists(path) for path in old)


def run_action(tmp_path, images, check=False, **arguments):
    source = tmp_path / "stack.tar"
    legacy_archive(source)
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Cut", "image_archive": {"path": str(source), "images": images, "cut_dir": str(tmp_path / "cuts"),
                                          **arguments}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json")
    run = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                          *(["--check"] if check else []), str(tmp_path / "play.yml")],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    return json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_the_action_cuts_and_check_mode_only_checks(tmp_path):
    outcome = run_action(tmp_path, ["shop/web:2"])
    assert not outcome.get("failed") and not outcome["changed"] and outcome["cut"], outcome
    assert outcome["path"].startswith(str(tmp_path / "cuts"))
    checked = run_action(tmp_path, ["shop/web:2"], check=True)
    assert checked["path"] == str(tmp_path / "stack.tar") and not checked["cut"]
    failed = run_action(tmp_path, ["shop/web:9"], check=True)
    assert failed["failed"] and "does not hold shop/web:9" in failed["msg"]
    assert run_action(tmp_path, "shop/web:2")["msg"].startswith("image_archive takes path")
    compressed = run_action(tmp_path, ["shop/web:2"], compress=True)
    assert compressed["zstd"] and compressed["path"].endswith(".tar.zst"), compressed
    assert run_action(tmp_path, ["shop/web:2"], compress="yes")["msg"].startswith("image_archive takes path")


def test_cuts_of_archives_named_per_release_are_deleted_once_unused_for_a_week(tmp_path):
    cuts = tmp_path / "cuts"
    old_release, new_release = tmp_path / "shop-1.4.tar", tmp_path / "shop-1.5.tar"
    legacy_archive(old_release)
    legacy_archive(new_release)
    old = image_archive.inspect(str(old_release), ["shop/web:2"], str(cuts))["path"]
    week_ago = os.stat(old).st_mtime - image_archive.STALE_DAYS * 86400 - 60
    os.utime(old, (week_ago, week_ago))
    # Reused, a cut counts as used again.
    assert not image_archive.inspect(str(old_release), ["shop/web:2"], str(cuts))["written"]
    assert os.stat(old).st_mtime > week_ago
    database = image_archive.inspect(str(new_release), ["postgres:17"], str(cuts))["path"]
    assert os.path.exists(old)
    os.utime(old, (week_ago, week_ago))
    web = image_archive.inspect(str(new_release), ["shop/web:2"], str(cuts))["path"]
    assert sorted(cuts.glob("*.tar")) == sorted(map(pathlib.Path, (database, web)))


@pytest.mark.parametrize("major, compress", [("13", True), ("14", True), ("12", False), (None, False)])
def test_the_role_compresses_only_for_a_docker_that_loads_zstd(tmp_path, major, compress):
    """roles/container_image's default: Debian 13's docker.io (26.1) loads zstd archives, Debian
    12's (20.10) does not; without facts, the role does not know and ships the copy as it is."""
    facts = {"distribution_major_version": major} if major else {}
    play = [{"hosts": "localhost", "gather_facts": False,
             "vars_files": [str(REPO / "roles/container_image/defaults/main.yml")],
             "vars": {"ansible_facts": facts},
             "tasks": [{"ansible.builtin.debug": {"msg": "{{ container_image_archive_compress | bool }}"}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json")
    run = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                          str(tmp_path / "play.yml")], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"] is compress
