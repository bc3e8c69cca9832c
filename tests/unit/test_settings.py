"""Settings: flags over the environment over saline.toml over defaults; bad files are one
message naming the file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from saline.errors import SettingsError
from saline.settings import (
    DEFAULT_DEBIAN_MIRROR,
    DEFAULT_REGISTRY,
    DebianMirrors,
    Settings,
    resolve,
)

NO_FLAGS: dict[str, object] = {}


def test_defaults_follow_home_and_xdg(tmp_path: Path) -> None:
    s = resolve(NO_FLAGS, {"HOME": "/home/op"}, str(tmp_path))
    assert s == Settings(
        model=None,
        registry=DEFAULT_REGISTRY,
        state_dir="/home/op/.local/state/saline",
        cache_dir="/home/op/.cache/saline/model-files",
        debian=DebianMirrors(),
    )
    env = {"HOME": "/h", "XDG_STATE_HOME": "/xs", "XDG_CACHE_HOME": "/xc"}
    s = resolve(NO_FLAGS, env, str(tmp_path))
    assert (s.state_dir, s.cache_dir) == ("/xs/saline", "/xc/saline/model-files")


def test_project_file_in_a_parent_with_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "saline.toml").write_text(
        'model = "site/model"\nformulas = ["f1", "f2"]\nregistry = "reg:5000"\n'
        'stack = "prod"\ndebian_mirror = "http://mirror/debian"\n'
    )
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    s = resolve(NO_FLAGS, {"HOME": "/h"}, str(deep))
    assert s.project_file == str(tmp_path / "saline.toml")
    assert s.model == str(tmp_path / "site" / "model")
    assert s.formulas == (str(tmp_path / "f1"), str(tmp_path / "f2"))
    assert (s.registry, s.stack) == ("reg:5000", "prod")
    assert s.debian == DebianMirrors(archive="http://mirror/debian")


def test_flags_beat_environment_beat_file(tmp_path: Path) -> None:
    (tmp_path / "saline.toml").write_text('model = "from-file"\nregistry = "file:1"\n')
    env = {"HOME": "/h", "SALINE_MODEL": "/from-env", "SALINE_REGISTRY": "env:2"}
    s = resolve(NO_FLAGS, env, str(tmp_path))
    assert (s.model, s.registry) == ("/from-env", "env:2")
    s = resolve({"model": "/from-flag", "registry": None}, env, str(tmp_path))
    assert (s.model, s.registry) == ("/from-flag", "env:2")
    s = resolve({"formulas": ("/ff",)}, {**env, "SALINE_FORMULAS": "/e1:/e2"}, str(tmp_path))
    assert s.formulas == ("/ff",)
    s = resolve(NO_FLAGS, {**env, "SALINE_FORMULAS": "/e1::/e2"}, str(tmp_path))
    assert s.formulas == ("/e1", "/e2")


def test_cache_switches_and_debug(tmp_path: Path) -> None:
    s = resolve(NO_FLAGS, {"HOME": "/h", "SALINE_CACHE_DIR": "/c"}, str(tmp_path))
    assert s.cache_dir == "/c/model-files"
    s = resolve(NO_FLAGS, {"HOME": "/h", "SALINE_NO_CACHE": "1"}, str(tmp_path))
    assert s.cache_dir is None
    s = resolve(NO_FLAGS, {"HOME": "/h", "SALINE_DEBUG": "1", "NO_COLOR": "1"}, str(tmp_path))
    assert s.debug and not s.color
    assert s.debian.archive == DEFAULT_DEBIAN_MIRROR


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('model = "m"\nmodle = "typo"\n', "saline.toml:2, key modle: unknown setting"),
        ('formulas = "one"\n', "saline.toml:1, key formulas: must be a list of folders"),
        ("registry = 5000\n", "saline.toml:1, key registry: must be HOST:PORT"),
        ('target = "nomad"\n', "saline.toml:1, key target: must be one of compose"),
        ('model = "m\n', "saline.toml: not valid TOML"),
    ],
)
def test_bad_project_file_is_one_located_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    (tmp_path / "saline.toml").write_text(text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError) as e:
        resolve(NO_FLAGS, {"HOME": "/h"}, str(tmp_path))
    assert str(e.value).startswith(expected), str(e.value)
    assert e.value.exit_code == 2


def test_unknown_target_from_environment(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="target 'nomad'"):
        resolve(NO_FLAGS, {"HOME": "/h", "SALINE_TARGET": "nomad"}, str(tmp_path))


def test_the_repository_ships_a_project_file_naming_the_example() -> None:
    root = Path(__file__).resolve().parents[2]
    s = resolve(NO_FLAGS, {"HOME": "/h"}, str(root / "docs"))
    assert s.project_file == str(root / "saline.toml")
    assert s.model == str(root / "examples" / "openstack")


# -- Kubernetes -----------------------------------------------------------------------------


def test_kubernetes_settings_flags_environment_file(tmp_path: Path) -> None:
    from saline.settings import KubeSettings

    assert resolve(NO_FLAGS, {"HOME": "/h"}, str(tmp_path)).kube == KubeSettings()
    (tmp_path / "saline.toml").write_text(
        'target = "kubernetes"\nkubeconfig = "cluster/admin.conf"\nkube_context = "prod"\n'
        'kube_namespace = "cloud"\nkube_registry = "reg.example:5000"\n'
        'kube_storage_class = "fast"\nkube_shared_access_mode = "ReadWriteOnce"\n'
    )
    s = resolve(NO_FLAGS, {"HOME": "/h", "KUBECONFIG": "/ambient"}, str(tmp_path))
    assert s.target == "kubernetes"
    # The project's file names its kubeconfig (relative to it): over the ambient one.
    assert s.kube == KubeSettings(
        kubeconfig=str(tmp_path / "cluster" / "admin.conf"),
        context="prod",
        namespace="cloud",
        registry="reg.example:5000",
        storage_class="fast",
        shared_access_mode="ReadWriteOnce",
    )
    env = {"HOME": "/h", "SALINE_KUBECONFIG": "/k", "SALINE_KUBE_NAMESPACE": "env-ns"}
    s = resolve(NO_FLAGS, env, str(tmp_path))
    assert (s.kube.kubeconfig, s.kube.namespace, s.kube.context) == ("/k", "env-ns", "prod")
    s = resolve({"kube_namespace": "flag-ns", "kubeconfig": "/f"}, env, str(tmp_path))
    assert (s.kube.kubeconfig, s.kube.namespace) == ("/f", "flag-ns")


def test_kubeconfig_from_kubeconfig_is_one_file(tmp_path: Path) -> None:
    s = resolve(NO_FLAGS, {"HOME": "/h", "KUBECONFIG": "/a/config"}, str(tmp_path))
    assert s.kube.kubeconfig == "/a/config"
    with pytest.raises(SettingsError, match="saline reads one kubeconfig file, not a list"):
        resolve(NO_FLAGS, {"HOME": "/h", "KUBECONFIG": "/a:/b"}, str(tmp_path))


def test_a_wrong_access_mode_is_one_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError, match="shared access mode 'RWX'"):
        resolve(NO_FLAGS, {"HOME": "/h", "SALINE_KUBE_SHARED_ACCESS_MODE": "RWX"}, str(tmp_path))
    (tmp_path / "saline.toml").write_text('kube_shared_access_mode = "RWX"\n')
    with pytest.raises(SettingsError) as e:
        resolve(NO_FLAGS, {"HOME": "/h"}, str(tmp_path))
    assert str(e.value).startswith("saline.toml:1, key kube_shared_access_mode: must be one of")
