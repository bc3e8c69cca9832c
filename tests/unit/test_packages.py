"""Package-exact images, the pure parts: the model's suites, the packages install states
ask for, and tags that follow the exact versions (apt itself: tests/integration/
test_packages.py)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from saline.build.graph import Recipe, plan_images
from saline.build.packages import (
    Package,
    PackageSet,
    Suites,
    install_packages,
    parse_suites,
    updates,
)
from saline.build.resolve import parse_label
from saline.cli import main
from saline.errors import FormulaError, ModelError
from saline.formulas import FormulaSet
from saline.images import image_suites
from saline.model import load_model
from saline.runtime.apt import parse_madison, status_file
from saline.settings import DebianMirrors
from tools import EXAMPLE, FORMULAS, fixed_packages

SECURITY = ("bookworm", "bookworm-updates", "bookworm-security")


# -- suites ------------------------------------------------------------------------------


def test_suites_are_one_release_and_its_updates_and_security() -> None:
    assert parse_suites(["bookworm"]).names == ("bookworm",)
    assert parse_suites(["bookworm", "bookworm-security", "bookworm-updates"]).names == SECURITY
    assert parse_suites(["trixie", "trixie-security"]).label == "trixie+security"
    sources = Suites(SECURITY).sources(DebianMirrors("http://a/debian", "http://s/sec"))
    assert sources == [
        "deb http://a/debian bookworm main",
        "deb http://a/debian bookworm-updates main",
        "deb http://s/sec bookworm-security main",
    ]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("bookworm", "must be a list of Debian suites"),
        ([], "must be a list of Debian suites"),
        (["bullseye"], "'bullseye' is not a Debian release the formulas support"),
        (["bookworm-security"], "is not a Debian release"),
        (["bookworm", "trixie-security"], "'trixie-security' is not a suite of bookworm"),
        (["bookworm", "bookworm-backports"], "is not a suite of bookworm"),
        (["bookworm", "bookworm-updates", "bookworm-updates"], "names a suite twice"),
    ],
)
def test_suites_that_are_not_are_refused(value: object, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_suites(value)


def _model(tmp_path: Path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(EXAMPLE, copy)
    return copy


def test_the_example_builds_from_bookworm_with_updates_and_security() -> None:
    suites = image_suites(load_model(str(EXAMPLE)), FormulaSet([str(FORMULAS)]))
    assert set(suites.values()) == {Suites(SECURITY)}


def test_a_service_may_use_other_suites_and_gets_its_own_base(tmp_path: Path) -> None:
    model = _model(tmp_path)
    node = model / "nodes" / "msg01.openstack.local.yml"
    node.write_text(
        node.read_text()
        + "  saline:\n    images:\n      services:\n        rabbitmq:\n"
        + "          suites: [bookworm]\n"
    )
    formulas = FormulaSet([str(FORMULAS)])
    suites = image_suites(load_model(str(model)), formulas)
    assert suites["rabbitmq"] == Suites(("bookworm",))
    assert suites["keystone"] == Suites(SECURITY)
    from saline.images import model_images

    specs = {s.name: s for s in model_images(load_model(str(model)), formulas, fixed_packages)}
    assert specs["rabbitmq"].parent == "salt-bookworm" and specs["keystone"].parent == "salt"
    assert (
        specs["base-bookworm"].parent is None and specs["salt-bookworm"].parent == "base-bookworm"
    )
    assert specs["base"].tag != specs["base-bookworm"].tag
    # Both bases are saline/base in the registry: the tag tells them apart.
    assert specs["base-bookworm"].repository() == specs["base"].repository() == "saline/base"


def test_a_bad_suite_names_the_file_and_key(tmp_path: Path) -> None:
    model = _model(tmp_path)
    cls = model / "classes" / "system" / "saline" / "images.yml"
    cls.write_text(cls.read_text().replace("-security", "-proposed-updates"))
    with pytest.raises(ModelError) as e:
        image_suites(load_model(str(model)), FormulaSet([str(FORMULAS)]))
    text = str(e.value)
    assert "classes/system/saline/images.yml" in text
    assert "saline:images:suites" in text
    assert "'bookworm-proposed-updates' is not a suite of bookworm" in text


def test_nodes_of_one_service_that_disagree_are_refused(tmp_path: Path) -> None:
    model = _model(tmp_path)
    node = model / "nodes" / "ctl02.openstack.local.yml"
    node.write_text(
        node.read_text()
        + "  saline:\n    images:\n      services:\n        keystone:\n"
        + "          ~suites: [bookworm, bookworm-security]\n"
    )
    with pytest.raises(ModelError) as e:
        image_suites(load_model(str(model)), FormulaSet([str(FORMULAS)]))
    text = str(e.value)
    assert "nodes/ctl02.openstack.local.yml" in text
    assert "saline:images:services:keystone:suites" in text
    assert "every node that runs a service runs the same image" in text


def test_a_list_joined_with_the_class_list_says_how_to_replace_it(tmp_path: Path) -> None:
    model = _model(tmp_path)
    node = model / "nodes" / "ctl02.openstack.local.yml"
    node.write_text(
        node.read_text()
        + "  saline:\n    images:\n      services:\n        keystone:\n"
        + "          suites: [bookworm]\n"
    )
    with pytest.raises(ModelError) as e:
        image_suites(load_model(str(model)), FormulaSet([str(FORMULAS)]))
    assert "names a suite twice" in str(e.value) and "write ~suites" in str(e.value)


def test_a_bad_suite_is_one_message_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(tmp_path)
    cls = model / "classes" / "system" / "saline" / "images.yml"
    cls.write_text(cls.read_text().replace("${_param:debian_release}\n", "buster\n", 1))
    code = main(["images", "--model", str(model)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: ") and "classes/system/saline/images.yml" in err
    assert "'buster' is not a Debian release" in err and "Traceback" not in err


# -- what install states install ---------------------------------------------------------


def test_install_states_give_their_packages() -> None:
    assert install_packages(str(FORMULAS / "keystone"), "keystone", ["keystone.install"]) == [
        "keystone",
        "uwsgi-core",
        "uwsgi-plugin-python3",
        "python3-pymysql",
        "python3-openstackclient",
    ]
    assert install_packages(str(FORMULAS / "rabbitmq"), "rabbitmq", ["rabbitmq.install"]) == [
        "rabbitmq-server"
    ]


def test_names_includes_and_jinja_in_install_states(tmp_path: Path) -> None:
    root = tmp_path / "f"
    root.mkdir()
    (root / "install.sls").write_text(
        "include: [f.more]\n"
        "curl:\n  pkg.installed: []\n"
        "tools:\n  pkg.installed:\n    - name: jq\n"
        "cfg:\n  file.managed:\n    - name: /etc/x\n"
    )
    (root / "more.sls").write_text("m:\n  pkg.installed:\n    - pkgs: [less, {vim: 2}]\n")
    assert install_packages(str(root), "f", ["f.install"]) == ["less", "vim", "curl", "jq"]
    (root / "more.sls").write_text("{% set x = 1 %}\nm:\n  pkg.installed: []\n")
    with pytest.raises(FormulaError) as e:
        install_packages(str(root), "f", ["f.install"])
    assert "more.sls" in str(e.value) and "no Jinja" in str(e.value)
    with pytest.raises(FormulaError, match=r"no missing\.sls"):
        install_packages(str(root), "f", ["f.missing"])


# -- exact versions in tags --------------------------------------------------------------


def _versions(version: str) -> Callable[[Recipe], PackageSet]:
    def resolve(recipe: Recipe) -> PackageSet:
        bumped = {"libc6": version}
        names = ["libc6"] if recipe.kind == "base" else list(recipe.names)
        return PackageSet([Package(n, bumped.get(n, "1.0"), "amd64") for n in names])

    return resolve


def test_a_new_package_version_gives_new_tags() -> None:
    services = dict(FormulaSet([str(FORMULAS)]).services)
    before = {s.name: s.tag for s in plan_images(services, _versions("2.36-9"))}
    after = {s.name: s.tag for s in plan_images(services, _versions("2.36-9+deb12u4"))}
    # libc6 is in the base: every image is new.
    assert all(before[n] != after[n] for n in before)

    def one(recipe: Recipe) -> PackageSet:
        version = "3.10.8-2" if recipe.image == "rabbitmq" else "1.0"
        return PackageSet([Package(n, version, "all") for n in recipe.names])

    again = {s.name: s.tag for s in plan_images(services, one)}
    same = {s.name: s.tag for s in plan_images(services, fixed_packages)}
    changed = {n for n in same if same[n] != again[n]}
    assert "rabbitmq" in changed
    assert "keystone" in changed  # "all" instead of "amd64": the architecture is in it


def test_a_service_image_pins_its_packages_and_lists_all_of_them() -> None:
    services = dict(FormulaSet([str(FORMULAS)]).services)
    spec = next(s for s in plan_images(services, fixed_packages) if s.name == "memcached")
    assert spec.generated["saline.pref"] == (
        "Package: memcached\nPin: version 1.0\nPin-Priority: 1001\n"
    )
    assert '"name": "python3"' in spec.generated["packages.json"]  # the base's too
    assert "COPY saline.pref /etc/apt/preferences.d/" in spec.generated["Containerfile"]
    assert spec.labels()["saline.packages"] == "memcached=1.0:amd64"


def test_the_label_round_trips_epochs_and_architectures() -> None:
    packages = PackageSet(
        [
            Package("erlang-base", "1:25.2.3+dfsg-1+deb12u4", "amd64"),
            Package("tzdata", "2026f", "all"),
        ]
    )
    assert parse_label(packages.label()) == packages


def test_updates_are_later_versions_by_dpkg_order() -> None:
    installed = PackageSet(
        [
            Package("libssl3", "3.0.15-1~deb12u1", "amd64"),
            Package("erlang-base", "1:25.2.3+dfsg-1+deb12u1", "amd64"),
            Package("tzdata", "2026f-0+deb12u1", "all"),
        ]
    )
    published = {
        "libssl3": [("3.0.15-1~deb12u1", "bookworm"), ("3.0.17-1~deb12u2", "bookworm-security")],
        # An older version in the security suite than the point release's: no update.
        "erlang-base": [
            ("1:25.2.3+dfsg-1+deb12u1", "bookworm"),
            ("1:25.2.3+dfsg-1", "bookworm-security"),
        ],
        "tzdata": [("2026f-0+deb12u1", "bookworm"), ("2026f-0+deb12u1", "bookworm-updates")],
    }
    found = updates(installed, published)
    assert [(u.name, u.candidate, u.suite, u.security) for u in found] == [
        ("libssl3", "3.0.17-1~deb12u2", "bookworm-security", True)
    ]


def test_a_status_file_keeps_the_archive_record_or_makes_a_minimal_one() -> None:
    text = status_file(
        [
            ("libc6", "2.36-9", "amd64", "Package: libc6\nVersion: 2.36-9\nStatus: x\nDepends: a"),
            ("gone", "1.0", "all", None),
        ]
    )
    assert text == (
        "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\nDepends: a\n\n"
        "Package: gone\nStatus: install ok installed\nVersion: 1.0\nArchitecture: all\n"
    )


def test_apt_cache_madison_columns_are_padded_any_width() -> None:
    text = (
        "       apt |      2.6.1 | http://deb.debian.org/debian bookworm/main amd64 Packages\n"
        "       apt |      2.6.2 | http://deb.debian.org/debian bookworm-updates/main amd64"
        " Packages\n"
        "libssl3 | 3.0.17-1~deb12u2 | http://deb.debian.org/debian-security"
        " bookworm-security/main amd64 Packages\n"
    )
    assert parse_madison(text) == {
        "apt": [("2.6.1", "bookworm"), ("2.6.2", "bookworm-updates")],
        "libssl3": [("3.0.17-1~deb12u2", "bookworm-security")],
    }
