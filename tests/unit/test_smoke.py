"""saline smoke's bookkeeping with a fake cloud: a failing check is named, and what the
checks created is deleted anyway. The real checks run against the real stack in
tests/integration/test_stack.py."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from saline import smoke
from saline.smoke import SmokeError, run_smoke

ENV = {
    "OS_AUTH_URL": "http://10.0.0.1:5000/v3",
    "OS_USERNAME": "admin",
    "OS_PASSWORD": "pw",
    "OS_PROJECT_NAME": "admin",
}


class FakeIdentity:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def create_project(self, name: str, domain_id: str) -> Any:
        self.log.append("create project")
        return SimpleNamespace(id="p1", name=name)

    def create_user(self, **kw: Any) -> Any:
        self.log.append("create user")
        return SimpleNamespace(id="u1", name=kw["name"])

    def find_role(self, name: str, ignore_missing: bool) -> Any:
        return SimpleNamespace(id="r1", name=name)

    def assign_project_role_to_user(self, project: Any, user: Any, role: Any) -> None:
        self.log.append(f"assign {role.name}")

    def delete_user(self, user: Any) -> None:
        self.log.append("delete user")

    def delete_project(self, project: Any) -> None:
        self.log.append("delete project")


class BrokenImages:
    def create_image(self, **kw: Any) -> Any:
        raise RuntimeError("HTTP 503: glance   is\n down")


def fake_cloud(log: list[str], more: tuple[str, ...] = ()) -> Any:
    """A cloud whose catalog has identity, image and the ``more`` service types."""
    endpoints = {
        "identity": [{"url": "http://10.0.0.1:5000/v3"}],
        "image": [{"url": "http://10.0.0.1:9292"}],
        **{kind: [{"url": f"http://10.0.0.1/{kind}"}] for kind in more},
    }
    catalog = SimpleNamespace(get_endpoints=lambda interface: endpoints)
    # Every endpoint answers (the catalog check asks each, without a token).
    session = SimpleNamespace(
        get_token=lambda: "tok", get=lambda url, **kw: SimpleNamespace(status_code=300)
    )
    session.auth = SimpleNamespace(get_access=lambda s: SimpleNamespace(service_catalog=catalog))
    return SimpleNamespace(session=session, identity=FakeIdentity(log), image=BrokenImages())


def test_a_failing_check_is_named_and_everything_is_cleaned_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log: list[str] = []
    monkeypatch.setattr(smoke, "connect", lambda env, **kw: fake_cloud(log))
    lines: list[str] = []
    with pytest.raises(SmokeError) as e:
        run_smoke(ENV, lines.append)
    assert str(e.value) == (
        "smoke check 'image upload and download' failed: HTTP 503: glance is down"
    )
    assert log == [
        "create project",
        "create user",
        "assign member",
        "delete user",
        "delete project",
    ]
    assert [line.split()[1] for line in lines] == ["token", "catalog", "project", "cleanup"]


def test_a_missing_catalog_entry_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    cloud = fake_cloud([])
    cloud.session.auth = SimpleNamespace(
        get_access=lambda s: SimpleNamespace(
            service_catalog=SimpleNamespace(
                get_endpoints=lambda interface: {"identity": [{"url": "x"}]}
            )
        )
    )
    monkeypatch.setattr(smoke, "connect", lambda env, **kw: cloud)
    with pytest.raises(SmokeError, match="no public image endpoint \\(has identity\\)"):
        run_smoke(ENV, lambda line: None)


def test_endpoint_overrides_reach_openstacksdk() -> None:
    """openrc's OS_<TYPE>_ENDPOINT_OVERRIDE become the real openstacksdk's endpoints (no
    request is made: the endpoint is configuration); other services keep the catalog's."""
    env = {
        **ENV,
        "OS_IMAGE_ENDPOINT_OVERRIDE": "http://10.96.0.21:9292",
        "OS_IDENTITY_ENDPOINT_OVERRIDE": "http://10.96.0.20:5000/v3",
        "OS_ENDPOINT_OVERRIDE": "not a service's",
    }
    assert smoke.endpoint_overrides(env) == {
        "identity_endpoint_override": "http://10.96.0.20:5000/v3",
        "image_endpoint_override": "http://10.96.0.21:9292",
    }
    conn = smoke.connect(env)
    assert conn.config.get_endpoint("image") == "http://10.96.0.21:9292"
    assert conn.config.get_endpoint("identity") == "http://10.96.0.20:5000/v3"
    assert conn.config.get_endpoint("compute") is None
    assert smoke.connect(ENV).config.get_endpoint("image") is None


class FakeImages:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.made: dict[str, Any] = {}

    def create_image(self, **kw: Any) -> Any:
        image = SimpleNamespace(id=f"i{len(self.made)}", status="active", **kw)
        self.made[image.id] = image
        self.log.append(f"upload {kw['disk_format']}")
        return image

    def get_image(self, image: Any) -> Any:
        return image

    def download_image(self, image: Any) -> Any:
        return SimpleNamespace(content=image.data)

    def delete_image(self, image: Any) -> None:
        self.log.append(f"delete image {image.disk_format}")


class FailingCompute:
    """A server that nova puts in ERROR, with its fault."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def find_flavor(self, name: str, ignore_missing: bool) -> Any:
        return SimpleNamespace(id="f1", name=name)

    def create_server(self, **kw: Any) -> Any:
        self.log.append(f"create server on networks {kw['networks']}")
        return SimpleNamespace(id="s1", name=kw["name"], status="BUILD", fault=None)

    def get_server(self, server: Any) -> Any:
        fault = {"message": "No valid host was found. There are not enough hosts available."}
        return SimpleNamespace(id="s1", name=server.name, status="ERROR", fault=fault)

    def delete_server(self, server: Any) -> None:
        self.log.append("delete server")

    def wait_for_delete(self, server: Any, wait: int) -> None:
        self.log.append("server gone")


def test_a_server_that_fails_to_boot_is_reported_with_novas_fault(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import hashlib

    log: list[str] = []
    cloud = fake_cloud(log, ("compute",))
    images = FakeImages(log)
    # The image check's upload: checksum as glance computes it.
    monkeypatch.setattr(
        images,
        "create_image",
        lambda **kw: FakeImages.create_image(
            images, checksum=hashlib.md5(kw["data"]).hexdigest(), **kw
        ),
    )
    cloud.image, cloud.compute = images, FailingCompute(log)
    monkeypatch.setattr(smoke, "connect", lambda env, **kw: cloud)
    files: dict[str, str] = {}
    formats: dict[str, dict[str, Any]] = {}
    for role, fmt in (("kernel", "aki"), ("ramdisk", "ari"), ("disk", "ami")):
        (tmp_path / role).write_bytes(role.encode())
        files[role] = str(tmp_path / role)
        formats[role] = {"disk_format": fmt, "container_format": fmt}
    formats["disk"]["id_properties"] = {"kernel_id": "kernel", "ramdisk_id": "ramdisk"}
    server = smoke.Server(files, {"kernel_release": "6.1.0-1-amd64", "images": formats})
    with pytest.raises(SmokeError) as e:
        run_smoke(ENV, lambda line: None, ("identity", "image", "compute"), server)
    assert str(e.value) == (
        "smoke check 'server active' failed: server ERROR: No valid host was found. "
        "There are not enough hosts available."
    )
    # No network service: the server is booted without one; the machine image names its
    # kernel and ramdisk; everything goes again, the server first.
    assert "create server on networks none" in log
    disk = images.made["i3"]
    assert (disk.kernel_id, disk.ramdisk_id) == ("i1", "i2")
    cleaned = [
        "delete server",
        "server gone",
        "delete image ami",
        "delete image ari",
        "delete image aki",
        "delete user",
        "delete project",
    ]
    assert [line for line in log if line in cleaned] == cleaned


def test_a_model_with_nova_needs_a_guest(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    cloud = fake_cloud(log, ("compute",))
    cloud.image = FakeImages(log)
    monkeypatch.setattr(
        cloud.image,
        "create_image",
        lambda **kw: FakeImages.create_image(
            cloud.image, checksum=__import__("hashlib").md5(kw["data"]).hexdigest(), **kw
        ),
    )
    monkeypatch.setattr(smoke, "connect", lambda env, **kw: cloud)
    with pytest.raises(SmokeError, match="the model runs nova, but no guest was given"):
        run_smoke(ENV, lambda line: None, ("identity", "image", "compute"))


def test_the_catalog_check_waits_until_each_endpoint_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A balancer says 503 for a few seconds after a backend is healthy: the check waits
    (bounded) until each endpoint answers, and names the one that never does."""
    cloud = fake_cloud([])
    answers = {"http://10.0.0.1:5000/v3": [503, 503, 300], "http://10.0.0.1:9292": [503] * 99}
    asked: list[str] = []

    def get(url: str, **kw: Any) -> Any:
        asked.append(url)
        return SimpleNamespace(status_code=answers[url].pop(0))

    cloud.session.get = get
    monkeypatch.setattr(smoke, "connect", lambda env, **kw: cloud)
    monkeypatch.setattr(smoke, "ENDPOINT_TIMEOUT", 0.05)
    monkeypatch.setattr(time, "sleep", lambda s: None)
    with pytest.raises(SmokeError, match=r"the image endpoint http://10.0.0.1:9292: not within"):
        run_smoke(ENV, lambda line: None)
    assert asked.count("http://10.0.0.1:5000/v3") == 3


def test_the_catalog_check_waits_where_openrc_overrides_an_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Kubernetes catalog names Services (http://glance-api:9292) this machine does
    not resolve: the check asks the override openrc gives, as the clients do."""
    cloud = fake_cloud([])
    asked: list[str] = []

    def get(url: str, **kw: Any) -> Any:
        asked.append(url)
        return SimpleNamespace(status_code=300)

    cloud.session.get = get
    monkeypatch.setattr(smoke, "connect", lambda env, **kw: cloud)
    env = {**ENV, "OS_IMAGE_ENDPOINT_OVERRIDE": "http://10.96.0.7:9292"}
    lines: list[str] = []
    # The fake glance fails the upload, after the catalog check passed.
    with pytest.raises(SmokeError, match="image upload"):
        run_smoke(env, lines.append)
    assert any(line.startswith("ok   catalog") for line in lines)
    assert "http://10.96.0.7:9292" in asked and "http://10.0.0.1:9292" not in asked
    assert "http://10.0.0.1:5000/v3" in asked


def test_keep_leaves_what_was_made_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """`saline smoke --keep`: a failed run leaves what it made (to look at) and says how
    to delete it; nothing is deleted."""
    log: list[str] = []
    monkeypatch.setattr(smoke, "connect", lambda env, **kw: fake_cloud(log))
    with pytest.raises(SmokeError) as e:
        run_smoke(ENV, lambda line: None, keep=True)
    assert str(e.value).splitlines() == [
        "smoke check 'image upload and download' failed: HTTP 503: glance is down",
        "left for inspection: project, user (`saline smoke --clean` deletes them)",
    ]
    assert not [entry for entry in log if entry.startswith("delete")]


class Listed:
    """One kind of resource a cloud lists, and what was deleted of it."""

    def __init__(self, kind: str, names: list[str], log: list[str]) -> None:
        self.items = [SimpleNamespace(id=f"{kind}-{n}", name=n, description=n) for n in names]
        self.kind, self.log = kind, log

    def listed(self, **kw: Any) -> list[Any]:
        return list(self.items)

    def delete(self, thing: Any, *args: Any, **kw: Any) -> None:
        self.log.append(f"delete {self.kind} {thing.name}")


def test_clean_deletes_every_leftover_of_smoke_and_nothing_else() -> None:
    """`saline smoke --clean`: what earlier runs left (saline-smoke-*), servers first,
    the router's interfaces before the router; a resource of another name stays."""
    log: list[str] = []
    names = ["saline-smoke-1a2b", "production-db"]
    kinds = {
        k: Listed(k, names, log)
        for k in ("server", "volume", "ip", "router", "group", "network", "image", "user", "p")
    }
    volume_states = iter(["in-use", "available"])
    cloud = SimpleNamespace(
        compute=SimpleNamespace(
            servers=kinds["server"].listed,
            delete_server=kinds["server"].delete,
            wait_for_delete=lambda vm, wait: log.append(f"waited {vm.name}"),
        ),
        block_storage=SimpleNamespace(
            volumes=kinds["volume"].listed,
            get_volume=lambda v: SimpleNamespace(status=next(volume_states)),
            delete_volume=kinds["volume"].delete,
            wait_for_delete=lambda v, wait: None,
        ),
        network=SimpleNamespace(
            ips=kinds["ip"].listed,
            delete_ip=kinds["ip"].delete,
            routers=kinds["router"].listed,
            ports=lambda **kw: [SimpleNamespace(id="port-1")],
            remove_interface_from_router=lambda r, port_id: log.append(f"unplug {port_id}"),
            delete_router=kinds["router"].delete,
            security_groups=kinds["group"].listed,
            delete_security_group=kinds["group"].delete,
            networks=kinds["network"].listed,
            delete_network=kinds["network"].delete,
        ),
        image=SimpleNamespace(images=kinds["image"].listed, delete_image=kinds["image"].delete),
        identity=SimpleNamespace(
            users=kinds["user"].listed,
            delete_user=kinds["user"].delete,
            projects=kinds["p"].listed,
            delete_project=kinds["p"].delete,
        ),
    )
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(smoke, "connect", lambda env, **kw: cloud)
        mp.setattr(time, "sleep", lambda s: None)
        report = smoke.clean_smoke(ENV, lines.append, ("compute", "volumev3", "network"))
    assert log == [
        "delete server saline-smoke-1a2b",
        "waited saline-smoke-1a2b",
        "delete volume saline-smoke-1a2b",
        "delete ip saline-smoke-1a2b",
        "unplug port-1",
        "delete router saline-smoke-1a2b",
        "delete group saline-smoke-1a2b",
        "delete network saline-smoke-1a2b",
        "delete image saline-smoke-1a2b",
        "delete user saline-smoke-1a2b",
        "delete p saline-smoke-1a2b",
    ]
    assert report.checks[0].detail.startswith("deleted 9: server saline-smoke-1a2b, ")
    assert len(lines) == 9
