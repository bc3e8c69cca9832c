"""The image pipeline for real: podman builds, Debian's docker-registry, the entrypoint.

The images are built once per machine (tags are digests: a second session finds them);
the first test here builds every image of the example model if it is missing.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.conftest import free_port, saline_podman
from saline.model import load_model
from saline.model.secrets import secret_values
from saline.runtime.process import Completed
from saline.runtime.registry import LocalRegistry
from tools import example, require_tools

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = str(REPO / "examples" / "openstack")
SALINE = str(Path(sys.executable).parent / "saline")
# Derived from the formulas and the model: a new formula changes no list here.
SERVICES = list(example().services)
IMAGES = list(example().images)  # base, salt, the shared layers, one per service


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_tools("docker-registry", "podman")
    address = f"127.0.0.1:{free_port()}"
    reg = LocalRegistry(address, str(tmp_path_factory.mktemp("registry")))
    reg.start()
    yield address
    reg.stop()


def saline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SALINE, *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def built(registry: str) -> list[dict[str, object]]:
    done = saline("build", "--model", EXAMPLE, "--registry", registry, "--push", "--format", "json")
    assert done.returncode == 0, done.stderr[-3000:]
    results: list[dict[str, object]] = json.loads(done.stdout)
    return results


def test_build_pushes_every_image(built: list[dict[str, object]], registry: str) -> None:
    names = [str(r["name"]) for r in built]
    # The base and Salt layers first, a formula's shared layers before its services.
    assert names[:2] == ["base", "salt"] and sorted(names) == sorted(IMAGES)
    assert names.index("nova-common") < names.index("nova-hypervisor") < names.index("nova-compute")
    assert all(r["pushed"] for r in built)
    with urllib.request.urlopen(f"http://{registry}/v2/_catalog") as r:
        repos = json.load(r)["repositories"]
    assert sorted(repos) == sorted(f"saline/{n}" for n in IMAGES)


def test_images_lists_what_was_built(built: list[dict[str, object]], registry: str) -> None:
    listed = json.loads(
        saline("images", "--model", EXAMPLE, "--registry", registry, "--format", "json").stdout
    )
    refs = {r["name"]: r["ref"] for r in built}
    assert [(r["service"], r["image"]) for r in listed] == [(s, refs[s]) for s in SERVICES]
    # Each with its suites and the exact packages it adds to its base.
    for row in listed:
        assert row["suites"] == ["bookworm", "bookworm-updates", "bookworm-security"]
        assert row["packages"] and row["package_count"] > len(row["packages"])


def test_a_second_build_builds_and_pushes_nothing(
    built: list[dict[str, object]], registry: str
) -> None:
    again = saline(
        "build", "--model", EXAMPLE, "--registry", registry, "--push", "--format", "json"
    )
    assert again.returncode == 0, again.stderr
    results = json.loads(again.stdout)
    assert {r["status"] for r in results} == {"cached"}
    assert not any(r["pushed"] for r in results)


def _blobs(
    registry: str, repo: str, tag: str, seen: set[str] | None = None
) -> Iterator[tuple[str, bytes]]:
    """The image's config and layers (media type, bytes); with ``seen``, only the blobs
    not in it, whose digests it then gets (images share their base and Salt layers)."""
    accept = (
        "application/vnd.oci.image.manifest.v1+json, "
        "application/vnd.docker.distribution.manifest.v2+json"
    )
    req = urllib.request.Request(
        f"http://{registry}/v2/{repo}/manifests/{tag}", headers={"Accept": accept}
    )
    with urllib.request.urlopen(req) as r:
        manifest = json.load(r)
    for desc in [manifest["config"], *manifest["layers"]]:
        if seen is not None:
            if desc["digest"] in seen:
                continue
            seen.add(desc["digest"])
        with urllib.request.urlopen(f"http://{registry}/v2/{repo}/blobs/{desc['digest']}") as r:
            yield desc["mediaType"], r.read()


def test_no_secret_of_the_model_is_in_any_image(
    built: list[dict[str, object]], registry: str
) -> None:
    secrets = set()
    model = load_model(EXAMPLE)
    for node in model.node_names():
        secrets |= secret_values(model.node(node).parameters)
    assert len(secrets) >= 5
    # One pattern for every secret: each file is read once.
    needles = re.compile(b"|".join(re.escape(s.encode()) for s in sorted(secrets)))
    scanned = 0
    seen: set[str] = set()  # a layer several images share is read once
    for r in built:
        repo, tag = str(r["ref"]).split("/", 1)[1].rsplit(":", 1)
        for media, blob in _blobs(registry, repo, tag, seen):
            data = gzip.decompress(blob) if "gzip" in media else blob
            if "tar" in media:
                with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                    for member in tar:
                        f = tar.extractfile(member) if member.isfile() else None
                        content = f.read() if f else b""
                        assert not needles.search(content), (
                            f"{r['name']}: a secret in {member.name}"
                        )
                        scanned += 1
            else:
                assert not needles.search(data), f"{r['name']}: a secret in the image config"
    assert scanned > 10000  # every file of every layer was read
    assert len(seen) > len(built)  # every image's config and its own layers at least


def test_the_container_configures_itself_from_the_mounted_pillar(
    built: list[dict[str, object]], tmp_path: Path
) -> None:
    image = next(str(r["ref"]) for r in built if r["name"] == "memcached").split("/", 1)[1]
    pillar = tmp_path / "pillar.json"
    pillar.write_text(json.dumps(load_model(EXAMPLE).node("ctl01.openstack.local").parameters))
    podman = saline_podman()
    name = f"saline-test-mc-{free_port()}"
    podman.run_detached(
        name, f"localhost/{image}", [], [], [f"{pillar}:/run/saline/pillar.json:ro,Z"]
    )
    try:
        deadline = time.monotonic() + 30
        while "exec" not in podman.logs(name) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "exec /bin/sh -c exec /usr/bin/memcached" in podman.logs(name)
        assert "-m 64" in podman.exec(name, ["cat", "/etc/memcached.conf"])
        # The service itself is PID 1 (signals reach it), running as memcache.
        status = podman.exec(name, ["cat", "/proc/1/status"])
        assert "Name:\tmemcached" in status
    finally:
        podman.remove(name)


def test_a_failing_install_state_stops_the_build_and_a_rerun_resumes(
    registry: str, tmp_path: Path
) -> None:
    formulas = tmp_path / "formulas"
    shutil.copytree(REPO / "formulas", formulas)
    install = formulas / "haproxy" / "install.sls"
    # A package the suites do not have: refused before anything is built (the packages
    # are resolved first), naming the image and the package.
    install.write_text(
        "haproxy_packages:\n  pkg.installed:\n    - pkgs: [haproxy, no-such-package-saline]\n"
    )
    unknown = saline(
        "build", "--model", EXAMPLE, "--formulas", str(formulas), "--registry", registry
    )
    assert unknown.returncode == 1
    assert "image haproxy: apt could not resolve" in unknown.stderr
    assert "Unable to locate package no-such-package-saline" in unknown.stderr
    assert "building" not in unknown.stderr and "Traceback" not in unknown.stderr
    # A state that fails while the image is built: the build stops, naming it.
    install.write_text(
        "haproxy_packages:\n  pkg.installed:\n    - pkgs: [haproxy]\n"
        'haproxy_broken:\n  cmd.run:\n    - name: "false"\n'
    )
    broken = saline(
        "build", "--model", EXAMPLE, "--formulas", str(formulas), "--registry", registry
    )
    assert broken.returncode == 1
    assert "image haproxy: install state failed: haproxy_broken:" in broken.stderr
    assert "Traceback" not in broken.stderr
    # A formula no earlier run built (a fresh comment), so this image really gets built.
    install.write_text(
        f"haproxy_packages:\n  pkg.installed:\n    - pkgs: [haproxy]\n# fixed {time.time_ns()}\n"
    )
    fixed = saline(
        "build",
        "--model",
        EXAMPLE,
        "--formulas",
        str(formulas),
        "--registry",
        registry,
        "--format",
        "json",
    )
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    status = {r["name"]: r["status"] for r in json.loads(fixed.stdout)}
    assert status["haproxy"] == "built"
    assert all(status[n] == "cached" for n in IMAGES if n != "haproxy")


def _ref(built: list[dict[str, object]], name: str) -> str:
    return "localhost/" + next(str(r["ref"]) for r in built if r["name"] == name).split("/", 1)[1]


def test_the_base_image_recipe(built: list[dict[str, object]]) -> None:
    podman = saline_podman()
    out = podman._run(
        [
            "run",
            "--rm",
            _ref(built, "base"),
            "sh",
            "-c",
            "cat /etc/apt/sources.list; /usr/sbin/policy-rc.d; echo policy=$?; echo PATH=$PATH;"
            " ls /var/lib/apt/lists | grep -c _Packages || true",
        ]
    ).stdout
    for suite in ("bookworm main", "bookworm-updates main", "bookworm-security main"):
        assert suite in out
    assert "policy=101" in out  # no package starts a service in a build
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in out
    assert out.strip().splitlines()[-1] == "0"  # apt indexes cleaned


def test_keystone_writes_the_models_keys_and_knows_its_tasks(
    built: list[dict[str, object]], tmp_path: Path
) -> None:
    """The Fernet keys come from the model (the same on every keystone instance), written
    by the configure states at start; a key the model no longer lists goes. A bootstrap
    task the image does not have is named, with those it has."""
    params = load_model(EXAMPLE).node("ctl01.openstack.local").parameters
    pillar = tmp_path / "pillar.json"
    pillar.write_text(json.dumps(params))
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "7").write_text("a key the model no longer has")

    def run(*args: str) -> Completed:
        return saline_podman()._run(
            [
                "run",
                "--rm",
                "-v",
                f"{pillar}:/run/saline/pillar.json:ro,Z",
                "-v",
                f"{keys}:/etc/keystone/fernet-keys:Z",
                _ref(built, "keystone"),
                *args,
            ],
            check=False,
        )

    out = run("configure")
    assert out.returncode == 0, out.stdout + out.stderr
    want = params["keystone"]["server"]["tokens"]["fernet_keys"]
    assert {p.name: p.read_text() for p in keys.iterdir()} == want
    unknown = run("bootstrap", "keys")
    assert unknown.returncode != 0
    assert "unknown bootstrap task 'keys' (tasks: db-sync, identity)" in unknown.stderr
