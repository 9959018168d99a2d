"""The model registry on a real data directory with real bundles and indexes,
the `wordvec models` commands, and one worker's watcher of DATA_DIR/active."""

import json
import logging
import os
from pathlib import Path

import pytest

from app.cli import main
from app.core.errors import ModelNotReady
from app.model_holder import ModelHolder
from app.model_watcher import NO_ACTIVE_VERSION, ModelWatcher
from app.registry import (
    ActivationRefused,
    InvalidVersionName,
    ModelRegistry,
    RegistryError,
    VersionActive,
    VersionExists,
    VersionNotFound,
    check_version_name,
)
from index.build import build_index
from tests.app.conftest import (
    SMALL_INDEX,
    add_version,
    corrupt_vectors,
    write_test_bundle,
)
from training.bundle import read_manifest


def test_add_publishes_an_indexed_copy_named_in_its_manifest(
    registry: ModelRegistry,
) -> None:
    path = add_version(registry, "v1")
    assert path == registry.models_dir / "v1"
    assert read_manifest(path)["version"] == "v1"
    assert (path / "index" / "index.json").is_file()
    registry.check("v1")
    # The source keeps its own name; only the copy was renamed.
    source = registry.data_dir.parent / "source-v1"
    assert read_manifest(source)["version"] == "from-source"
    assert list(registry.staging_dir.iterdir()) == []


def test_add_without_a_name_picks_a_fresh_sortable_one(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    source = write_test_bundle(tmp_path / "source")
    first = registry.add(source, index_config=SMALL_INDEX).version
    second = registry.add(source, index_config=SMALL_INDEX).version
    assert first != second
    assert check_version_name(first) == first
    assert first[:15] <= second[:15]  # YYYYMMDD-HHMMSS


def test_versions_list_oldest_first_then_by_name_and_mark_the_active_one(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    old, new = "2024-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00"
    created = {"b-old": old, "a-new": new, "c-new": new}
    for version, created_at in created.items():
        source = write_test_bundle(tmp_path / version)
        manifest = json.loads((source / "manifest.json").read_text())
        manifest["created_at"] = created_at
        (source / "manifest.json").write_text(json.dumps(manifest))
        registry.add(source, version=version, index_config=SMALL_INDEX)
    registry.activate("c-new")
    listed = registry.versions()
    assert [v.version for v in listed] == ["b-old", "a-new", "c-new"]
    assert [v.active for v in listed] == [False, False, True]


def test_activate_replaces_the_active_file(registry: ModelRegistry) -> None:
    add_version(registry, "v1", activate=True)
    add_version(registry, "v2")
    assert registry.active_version() == "v1"
    registry.activate("v2")
    assert registry.active_file.read_text() == "v2\n"
    assert registry.get("v2").active
    assert not [p for p in registry.data_dir.iterdir() if p.name.startswith(".")]


def test_add_refuses_a_version_name_in_use(registry: ModelRegistry) -> None:
    add_version(registry, "v1")
    with pytest.raises(VersionExists, match="choose another name"):
        add_version(registry, "v1")


@pytest.mark.parametrize(
    "name", ["../x", "..", ".hidden", "a/b", "", "-dash", "x" * 65, "a b", "v1\n"]
)
def test_bad_version_names_are_refused_everywhere(
    registry: ModelRegistry, name: str
) -> None:
    with pytest.raises(InvalidVersionName, match="letters, digits"):
        check_version_name(name)
    with pytest.raises(InvalidVersionName):
        registry.path_of(name)
    with pytest.raises(InvalidVersionName):
        registry.activate(name)
    with pytest.raises(InvalidVersionName):
        add_version(registry, name)
    assert not (registry.data_dir / "x").exists()


def test_corrupt_version_is_refused_and_the_active_one_kept(
    registry: ModelRegistry,
) -> None:
    add_version(registry, "good", activate=True)
    corrupt_vectors(add_version(registry, "bad"))
    with pytest.raises(ActivationRefused, match=r"vectors\.npy fails its SHA-256"):
        registry.activate("bad")
    assert registry.active_version() == "good"
    assert registry.active_file.read_text() == "good\n"


def test_activating_an_unknown_version_names_the_list_command(
    registry: ModelRegistry,
) -> None:
    with pytest.raises(VersionNotFound, match="wordvec models list"):
        registry.activate("nope")
    assert registry.active_version() is None


def test_delete_removes_a_version_but_refuses_the_active_one(
    registry: ModelRegistry,
) -> None:
    add_version(registry, "v1", activate=True)
    add_version(registry, "v2")
    with pytest.raises(VersionActive, match="activate another version first"):
        registry.delete("v1")
    registry.delete("v2")
    assert [v.version for v in registry.versions()] == ["v1"]
    assert sorted(p.name for p in registry.models_dir.iterdir()) == ["v1"]
    with pytest.raises(VersionNotFound):
        registry.delete("v2")


class DeletedWhileChecked(ModelRegistry):
    """A registry whose activation check is overtaken by another process
    deleting the version, the interleaving a lock must make harmless."""

    def check(self, version: str) -> None:
        super().check(version)
        ModelRegistry(self.data_dir).delete(version)


def test_a_version_deleted_during_its_activation_never_becomes_active(
    registry: ModelRegistry,
) -> None:
    add_version(registry, "v1", activate=True)
    add_version(registry, "v2")
    racing = DeletedWhileChecked(registry.data_dir)
    with pytest.raises(VersionNotFound):
        racing.activate("v2")
    assert registry.active_version() == "v1"
    assert [v.version for v in registry.versions()] == ["v1"]


def test_publish_moves_a_staged_bundle_into_place(registry: ModelRegistry) -> None:
    staging = registry.staging_path("v7")
    assert staging.parent == registry.staging_dir and not staging.exists()
    write_test_bundle(staging, version="v7")
    build_index(staging, SMALL_INDEX)
    info = registry.publish(staging, "v7")
    assert info.path == registry.models_dir / "v7"
    assert not staging.exists()
    assert not info.active
    registry.activate("v7")


def test_publish_refuses_a_bundle_without_index_and_leaves_it(
    registry: ModelRegistry,
) -> None:
    staging = write_test_bundle(registry.staging_path("v7"), version="v7")
    with pytest.raises(RegistryError, match="has no index; build one"):
        registry.publish(staging, "v7")
    assert staging.is_dir()
    assert not registry.path_of("v7").exists()


def test_publish_refuses_a_manifest_naming_another_version(
    registry: ModelRegistry,
) -> None:
    staging = write_test_bundle(registry.staging_path("v7"), version="other")
    build_index(staging, SMALL_INDEX)
    with pytest.raises(RegistryError, match="names version 'other', not 'v7'"):
        registry.publish(staging, "v7")


def test_publish_refuses_a_taken_name(registry: ModelRegistry) -> None:
    add_version(registry, "v7")
    staging = write_test_bundle(registry.staging_path("v7"), version="v7")
    build_index(staging, SMALL_INDEX)
    with pytest.raises(VersionExists):
        registry.publish(staging, "v7")
    assert read_manifest(registry.path_of("v7"))["version"] == "v7"


def test_crash_leftovers_are_skipped_by_list_and_removed_by_clean_staging(
    registry: ModelRegistry,
) -> None:
    add_version(registry, "v1", activate=True)
    # What crashes leave: a half-built job bundle, write_bundle's temporary
    # directory, a version renamed aside by an interrupted delete, and a
    # directory without a manifest.
    half_built = registry.staging_path("v2")
    half_built.mkdir()
    (half_built / "vectors.npy").write_bytes(b"partial")
    (registry.staging_dir / ".v3.tmp-0a1b2c3d").mkdir()
    deleted = registry.models_dir / ".v0.old-0a1b2c3d"
    write_test_bundle(deleted, version="v0")
    (registry.models_dir / "no-manifest").mkdir()
    (registry.data_dir / ".active.tmp-0a1b2c3d").write_text("v2\n")

    assert [v.version for v in registry.versions()] == ["v1"]
    removed = registry.clean_staging()

    assert {p.name for p in removed} == {
        ".active.tmp-0a1b2c3d",
        half_built.name,
        ".v3.tmp-0a1b2c3d",
        deleted.name,
    }
    assert list(registry.staging_dir.iterdir()) == []
    assert sorted(p.name for p in registry.models_dir.iterdir()) == [
        "no-manifest",
        "v1",
    ]
    registry.check("v1")


def test_models_commands_add_list_activate_and_refuse(
    registry: ModelRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_test_bundle(tmp_path / "source")
    data_dir = str(registry.data_dir)
    add = ["models", "add", str(source), "--data-dir", data_dir, "--index-kind", "flat"]
    assert main([*add, "--version", "v1", "--activate"]) == 0
    assert main([*add, "--version", "v2"]) == 0
    assert "added and activated version v1" in capsys.readouterr().out

    assert main(["models", "list", "--data-dir", data_dir, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {v["version"]: v["active"] for v in listed} == {"v1": True, "v2": False}
    assert {v["index_kind"] for v in listed} == {"flat"}

    corrupt_vectors(registry.path_of("v2"))
    assert main(["models", "activate", "v2", "--data-dir", data_dir]) == 2
    assert "failed its checks" in capsys.readouterr().err
    assert registry.active_version() == "v1"


def test_models_commands_read_the_data_dir_from_the_environment(
    registry: ModelRegistry,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    add_version(registry, "v1", activate=True)
    monkeypatch.setenv("WORDVEC_DATA_DIR", str(registry.data_dir))
    assert main(["models", "list"]) == 0
    assert "* v1" in capsys.readouterr().out.replace("  ", " ")
    monkeypatch.delenv("WORDVEC_DATA_DIR")
    assert main(["models", "list"]) == 2
    assert "give --data-dir DIR or set WORDVEC_DATA_DIR" in capsys.readouterr().err


def test_serve_needs_exactly_one_of_bundle_and_data_dir(
    registry: ModelRegistry,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("WORDVEC_DATA_DIR", raising=False)
    bundle = str(add_version(registry, "v1"))
    assert main(["serve"]) == 2
    assert (
        "nothing to serve: give a BUNDLE_DIR, or --data-dir" in capsys.readouterr().err
    )
    assert main(["serve", bundle, "--data-dir", str(registry.data_dir)]) == 2
    assert "not both" in capsys.readouterr().err
    assert "WORDVEC_DATA_DIR" not in os.environ


def test_watcher_waits_serves_keeps_the_old_version_and_backs_off(
    registry: ModelRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    holder = ModelHolder()
    watcher = ModelWatcher(holder, registry.data_dir, interval=0.1)
    watcher.poll()
    assert holder.state == "waiting"
    with pytest.raises(ModelNotReady) as raised:
        _ = holder.current
    assert raised.value.detail == NO_ACTIVE_VERSION

    add_version(registry, "v1", activate=True)
    watcher.poll()
    assert holder.current.version == "v1"

    # A bad version written straight into `active`: refused, v1 kept, and
    # not loaded again on the next poll (back-off).
    corrupt_vectors(add_version(registry, "v2"))
    registry.active_file.write_text("v2\n")
    with caplog.at_level(logging.INFO, logger="app.model_watcher"):
        watcher.poll()
        watcher.poll()
    assert holder.current.version == "v1"
    assert "fails its SHA-256" in (holder.last_load_error or "")
    assert sum("loading version v2" in r.getMessage() for r in caplog.records) == 1

    # Pointing back at the served version clears the stale error.
    registry.active_file.write_text("v1\n")
    watcher.poll()
    assert holder.last_load_error is None
    assert holder.current.version == "v1"


def test_a_starting_worker_serves_the_last_good_version_while_active_fails(
    registry: ModelRegistry,
) -> None:
    add_version(registry, "v1", activate=True)
    ModelWatcher(ModelHolder(), registry.data_dir, interval=0.1).poll()
    assert registry.last_good_version() == "v1"
    corrupt_vectors(add_version(registry, "v2"))
    registry.active_file.write_text("v2\n")

    # A worker started now (after a crash, a scale-up) has no model to keep.
    holder = ModelHolder()
    watcher = ModelWatcher(holder, registry.data_dir, interval=0.1)
    watcher.poll()
    assert holder.current.version == "v1"
    assert "fails its SHA-256" in (holder.last_load_error or "")
    assert registry.last_good_version() == "v1"

    # The active version repaired (re-published under a new name) is served.
    add_version(registry, "v3", activate=True)
    watcher.poll()
    assert holder.current.version == "v3" and holder.last_load_error is None
    assert registry.last_good_version() == "v3"


def test_without_a_last_good_version_a_damaged_active_one_serves_nothing(
    registry: ModelRegistry,
) -> None:
    corrupt_vectors(add_version(registry, "v1"))
    registry.active_file.write_text("v1\n")
    holder = ModelHolder()
    ModelWatcher(holder, registry.data_dir, interval=0.1).poll()
    assert holder.peek() is None and holder.state == "error"
    assert "fails its SHA-256" in (holder.last_load_error or "")


def test_a_damaged_index_file_is_refused_on_activation(
    registry: ModelRegistry,
) -> None:
    add_version(registry, "v1", activate=True)
    path = add_version(registry, "v2")
    lists = path / "index" / "neighbour_ids.npy"
    target = lists if lists.exists() else path / "index" / "normalised.npy"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(ActivationRefused, match="SHA-256"):
        registry.activate("v2")
    assert registry.active_version() == "v1"
