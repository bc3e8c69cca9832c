"""Package-exact images for real: apt on this machine resolves, mmdebstrap and the image
builds install exactly that, and `saline outdated` names what later suites offer.

* the base and a service image (memcached): the packages apt resolves for their tags are
  the ones dpkg lists in the built images (the build checks it too, and refuses an image
  that differs), and `saline images --format json` shows them;
* a patch, end to end, on tests/data/vip (two proxies: haproxy and keepalived sharing a
  virtual address) built from bookworm alone and brought up; the model then switched to
  bookworm with its updates and security suites: `saline outdated` names, for the running
  images, exactly the upgrades apt itself finds inside such an image with those suites
  (`apt-get --simulate dist-upgrade`), exit code 2 when there are any (0 when there are
  none: its own run says which); `saline plan` lists each instance's package changes;
  `saline apply` rolls them with a client asking through the virtual address.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from integration.clients import ProbeLoop, running
from integration.conftest import own_stack, saline_podman
from integration.test_stack import ok, saline
from saline.build.builder import Builder
from saline.build.graph import plan_images
from saline.build.packages import Suites
from saline.build.resolve import PackageResolver
from saline.formulas import FormulaSet
from saline.settings import resolve
from tools import EXAMPLE, FORMULAS, REPO, require_tools

pytestmark = pytest.mark.integration

VIP_MODEL = REPO / "tests" / "data" / "vip"
URL = "http://10.50.0.50:8404/healthz"  # haproxy's health page, at the virtual address
ALL = ("bookworm", "bookworm-updates", "bookworm-security")


def test_what_apt_resolves_is_what_the_images_hold(tmp_path: Path) -> None:
    require_tools("podman", "mmdebstrap", "apt-get")
    podman = saline_podman()
    settings = resolve({}, os.environ, os.getcwd())
    # refresh: apt itself, not an earlier record or image label.
    resolver = PackageResolver(str(tmp_path / "state"), podman, settings.debian, refresh=True)
    formulas = FormulaSet([str(FORMULAS)])
    specs = plan_images({"memcached": formulas.services["memcached"]}, resolver)
    assert {resolver.sources[s.recipe] for s in specs if s.kind != "salt"} == {"apt"}
    Builder(
        podman,
        None,
        lambda _line: None,
        apt_cache_dir=os.path.join(settings.state_dir, "apt-cache"),
        debian=settings.debian,
    ).ensure(specs)
    by_name = {s.name: s for s in specs}
    for name in ("base", "memcached"):
        spec = by_name[name]
        installed = podman.installed_packages(spec.ref(None))
        assert installed == {p.name: f"{p.version}:{p.arch}" for p in spec.all_packages.values()}, (
            name
        )
    base, memcached = by_name["base"], by_name["memcached"]
    assert "libc6" in base.packages and "memcached" in memcached.packages
    assert not set(base.packages) & set(memcached.packages)  # its own packages only
    assert all(p.suites for p in memcached.packages.values())  # where each version is
    # The same recipe again, without refresh: this machine's record, no apt.
    again = PackageResolver(str(tmp_path / "state"), podman, settings.debian)
    assert [s.tag for s in plan_images({"memcached": formulas.services["memcached"]}, again)] == [
        s.tag for s in specs
    ]
    assert set(again.sources.values()) == {"record"}
    # A fresh state folder finds the images' own record (their labels): no apt either.
    fresh = PackageResolver(str(tmp_path / "fresh"), podman, settings.debian)
    plan_images({"memcached": formulas.services["memcached"]}, fresh)
    assert set(fresh.sources.values()) == {"image"}

    # `saline images --format json`: each service's suites and exact packages.
    env = {**os.environ, "SALINE_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1"}
    listed = json.loads(ok(env, "images", "--model", str(EXAMPLE), "--format", "json").stdout)
    row = next(r for r in listed if r["service"] == "memcached")
    assert row["image"].endswith(":" + memcached.tag)
    assert row["suites"] == list(ALL)
    assert row["packages"]["memcached"] == memcached.packages["memcached"].version


def set_suites(model: Path, suites: tuple[str, ...]) -> None:
    """The model's images built from ``suites`` (a class every node includes)."""
    init = model / "classes" / "cluster" / "vip" / "init.yml"
    text = init.read_text()
    text = re.sub(r"\n  saline:\n    images:\n      suites: \[[^\]]*\]\n", "\n", text)
    init.write_text(
        text.replace(
            "parameters:\n",
            f"parameters:\n  saline:\n    images:\n      suites: [{', '.join(suites)}]\n",
            1,
        )
    )


def apt_upgrades(image: str, suites: Suites) -> dict[str, str]:
    """What apt inside ``image`` upgrades once it reads ``suites``: name -> version."""
    podman = saline_podman()
    settings = resolve({}, os.environ, os.getcwd())
    sources = "\n".join(suites.sources(settings.debian)) + "\n"
    script = (
        f"printf '%s' '{sources}' > /etc/apt/sources.list && "
        "rm -f /etc/apt/sources.list.d/* && apt-get -qq update && "
        "apt-get --simulate -q dist-upgrade"
    )
    out = podman.cli(["run", "--rm", "--entrypoint", "sh", image, "-c", script], timeout=600)
    # Upgrades only: "Inst NAME [INSTALLED] (CANDIDATE ...)".
    return dict(re.findall(r"^Inst (\S+) \[[^\]]+\] \((\S+) ", out, re.M))


def test_a_patch_from_later_suites_is_outdated_planned_and_rolled_out(tmp_path: Path) -> None:
    """The issue's patching flow on a small stack: built from bookworm alone and running;
    the model switched to bookworm with its updates and security suites; `outdated` names
    exactly what apt would upgrade; `plan` shows each instance's package changes; `apply`
    rolls them one instance at a time while a client asks through the virtual address
    (no failure after one retry); `outdated` is then clean."""
    require_tools("podman", "docker-registry", "apt-get")
    with own_stack(tmp_path, VIP_MODEL, "saline-patch") as env:
        model = Path(env["SALINE_MODEL"])
        set_suites(model, ("bookworm",))
        ok(env, "up")
        # Nothing is later in the suites the images were built from.
        same = saline(env, "outdated", "--format", "json")
        assert same.returncode == 0, same.stdout + same.stderr
        assert json.loads(same.stdout)["outdated"] == 0

        set_suites(model, ALL)
        done = saline(env, "outdated", "--format", "json")
        assert done.returncode in (0, 2), done.stderr
        report = json.loads(done.stdout)
        rows = {r["service"]: r for r in report["images"]}
        assert set(rows) == {"haproxy", "keepalived"}
        upgrades = {}
        for service, row in rows.items():
            assert row["source"] == "running" and row["suites"] == list(ALL)
            found = {u["package"]: u["candidate"] for u in row["updates"]}
            assert found == apt_upgrades(row["image"], Suites(ALL)), service
            upgrades[service] = found
            for u in row["updates"]:
                assert u["security"] == u["suite"].endswith("-security")
        assert done.returncode == (2 if report["outdated"] else 0)
        print(f"\noutdated after switching to {'+'.join(ALL)}: {report['outdated']} packages")
        text = saline(env, "outdated")
        assert text.returncode == done.returncode
        if report["outdated"]:
            assert "package(s) outdated" in text.stdout

        # The plan: every instance's image is new (other suites: another base); each
        # change names the package versions that move, among them every upgrade above.
        plan = json.loads(ok(env, "plan", "--format", "json").stdout)
        changes = {c["key"]: c for c in plan["changes"]}
        assert {c["service"] for c in changes.values()} == {"haproxy", "keepalived"}
        for change in changes.values():
            assert change["action"] == "replace"
            moved = {p["name"]: p["after"] for p in change["packages"] if p["before"]}
            assert upgrades[change["service"]].items() <= moved.items(), change["key"]
        text_plan = ok(env, "plan").stdout
        assert "packages:" in text_plan or not report["outdated"]

        loop = ProbeLoop(URL)
        with running(loop):
            ok(env, "apply", "--yes")
        print(f"apply of the patch through the virtual address: {loop.outcome.report()}")
        assert loop.outcome.requests > 20 and loop.outcome.after_retry == []
        after = json.loads(ok(env, "outdated", "--format", "json").stdout)
        assert after["outdated"] == 0
        assert json.loads(ok(env, "plan", "--format", "json").stdout)["steps"] == []
