"""Building the image graph with podman, and pushing it to a registry.

Walks the plan from :mod:`.graph` in order. An image whose tag exists locally is not
rebuilt; one that exists only in the registry is pulled (a service image needs its
parent locally). Builds write into fresh temporary contexts; a failed build leaves no tag
behind, so the next run resumes from the images that were built.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import SalineError
from ..runtime.podman import Podman
from ..runtime.process import run
from ..settings import DebianMirrors
from .graph import BASE_FILES, BASE_HOOKS, BASE_PACKAGES, PATH_ENV, SALT_REQUIREMENTS, ImageSpec
from .rootfs import build_rootfs

# Parts of Salt a masterless minion on Debian never loads (measured: 29 MB -> 26 MB).
_PRUNE_DIRS = ["cloud/clouds", "netapi", "spm"]
_PRUNE_PREFIXES = (
    "win_",
    "mac_",
    "darwin",
    "solaris",
    "aix",
    "freebsd",
    "openbsd",
    "netbsd",
    "smartos",
    "illumos",
    "napalm",
    "junos",
    "nxos",
    "cisco",
    "panos",
    "bigip",
    "vsphere",
    "esxi",
    "vmware",
    "boto",
    "azurearm",
)
_PRUNE_IN = ["modules", "states", "grains", "returners", "pillar"]
#: pip's time limit for fetching Salt and its dependencies (a few MB of wheels).
PIP_TIMEOUT = 900.0
_FAILED = re.compile(r"^SALINE-FAILED-STATE (.*)$", re.M)


class BuildError(SalineError):
    pass


@dataclass
class BuildResult:
    name: str
    ref: str
    status: str  # "cached" | "built" | "pulled"
    seconds: float
    size_mb: float
    pushed: bool = False


class Builder:
    """Builds (or pulls) the images of a plan, and pushes them.

    ``registry``: where images are pulled from and pushed to (None: local only);
    ``apt_cache_dir``: the host folder shared by service builds as apt's download cache;
    ``debian``: where the base image's packages are downloaded from.
    """

    def __init__(
        self,
        podman: Podman,
        registry: str | None,
        progress: Callable[[str], None],
        *,
        apt_cache_dir: str,
        debian: DebianMirrors,
    ) -> None:
        self.podman = podman
        self.registry = registry
        self.progress = progress
        self.apt_cache = apt_cache_dir
        self.debian = debian

    def ensure(self, specs: list[ImageSpec], push: bool = False) -> list[BuildResult]:
        # Local names do not depend on the registry (localhost/saline/NAME:DIGEST), so
        # naming another registry never rebuilds anything; pushes copy to REGISTRY/...
        by_name = {s.name: s for s in specs}
        results = []
        have = self.podman.local_images()  # one listing: a no-op build asks nothing else
        for spec in specs:
            local = spec.ref(None)
            remote = spec.ref(self.registry) if self.registry else local
            t = time.monotonic()
            in_registry: bool | None = None  # not asked yet
            if local in have:
                status = "cached"
            elif self.registry and (in_registry := self.podman.remote_exists(remote)):
                self.podman.pull(remote)
                self.podman.tag(remote, local)
                status = "pulled"
            else:
                parent = by_name[spec.parent].ref(None) if spec.parent else None
                self.progress(f"{spec.name:<12} building ...")
                self._build(spec, local, parent)
                status = "built"
            pushed = False
            if in_registry is None and push and self.registry:
                in_registry = self.podman.remote_exists(remote)
            if push and self.registry and not in_registry:
                self.podman.push(local, remote)
                pushed = True
            size = (have[local] if status == "cached" else self.podman.image_size(local)) / 1e6
            r = BuildResult(spec.name, remote, status, time.monotonic() - t, size, pushed)
            self.progress(
                f"{spec.name:<12} {status:<7} {r.seconds:6.1f}s {r.size_mb:7.1f} MB"
                + ("  pushed" if pushed else "")
                + f"  {remote}"
            )
            results.append(r)
        return results

    # -- one image each ---------------------------------------------------------------------

    def _build(self, spec: ImageSpec, ref: str, parent: str | None) -> None:
        with tempfile.TemporaryDirectory(prefix=f"saline-build-{spec.name}-") as ctx:
            if spec.kind == "base":
                tar = os.path.join(ctx, "rootfs.tar")
                pins = os.path.join(ctx, "saline.pref")
                with open(pins, "w") as fh:
                    fh.write(spec.packages.apt_pins())
                build_rootfs(
                    tar,
                    BASE_PACKAGES,
                    BASE_HOOKS,
                    BASE_FILES,
                    mirrors=self.debian,
                    suites=spec.suites,
                    pins=pins,
                )
                changes = [f"ENV PATH={PATH_ENV}", "LABEL saline.image=base"]
                changes += [f"LABEL {k}={json.dumps(v)}" for k, v in spec.labels().items()]
                self.podman.import_rootfs(tar, ref, changes)
                self._verify(spec, ref)
                return
            assert parent is not None
            for rel, src in spec.files.items():
                dest = os.path.join(ctx, rel)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                shutil.copyfile(src, dest)
            for rel, text in spec.generated.items():
                with open(os.path.join(ctx, rel), "w") as fh:
                    fh.write(text.replace("{parent}", parent))
            volumes: list[str] = []
            if spec.kind == "salt":
                self._salt_site(os.path.join(ctx, "site"))
            else:
                os.makedirs(self.apt_cache, exist_ok=True)
                volumes = [f"{self.apt_cache}:/var/cache/apt/archives"]
            labels = spec.labels() if spec.kind in ("service", "common") else {}
            done = self.podman.build(ctx, ref, volumes, labels=labels)
            if done.returncode != 0:
                output = done.output
                failed = _FAILED.findall(output)
                tail = "\n".join(output.strip().splitlines()[-25:])
                if failed:
                    raise BuildError(
                        f"image {spec.name}: install state failed: {failed[0]}\n"
                        f"Salt output (last lines):\n{tail}"
                    )
                raise BuildError(
                    f"image {spec.name}: podman build failed (exit {done.returncode}):\n{tail}"
                )
            if spec.kind in ("service", "common"):
                self._verify(spec, ref)

    def _verify(self, spec: ImageSpec, ref: str) -> None:
        """The image holds exactly the packages its tag says, or it goes: the archive
        changed between resolving and building, or something installed a package the
        resolver did not see."""
        want = {p.name: f"{p.version}:{p.arch}" for p in spec.all_packages.values()}
        have = self.podman.installed_packages(ref)
        if have == want:
            return
        self.podman.remove_image(ref)
        wrong = [
            f"{name} {want.get(name, 'not resolved')} -> {have.get(name, 'not installed')}"
            for name in sorted(set(want) | set(have))
            if want.get(name) != have.get(name)
        ]
        more = f" (and {len(wrong) - 10} more)" if len(wrong) > 10 else ""
        raise BuildError(
            f"image {spec.name}: its packages are not the ones resolved for its tag "
            f"(resolved -> installed): {'; '.join(wrong[:10])}{more}. The archive changed "
            "since they were resolved: `saline build --refresh` resolves them again"
        )

    @staticmethod
    def _salt_site(site: str) -> None:
        """Salt and its minimal dependencies for the image's python3 (Debian's 3.11: the
        same ABI as the Python 3.11 saline runs on, so the host's wheels fit)."""
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-compile",
            "--target",
            site,
            "-r",
            SALT_REQUIREMENTS,
        ]
        done = run(cmd, timeout=PIP_TIMEOUT, env={**os.environ, "PIP_NO_INPUT": "1"}, check=False)
        if done.returncode != 0:
            raise BuildError(f"pip could not fetch Salt for the image:\n{done.stderr[-2000:]}")
        shutil.rmtree(os.path.join(site, "bin"), ignore_errors=True)
        for entry in os.listdir(site):
            if entry.endswith(".dist-info"):
                shutil.rmtree(os.path.join(site, entry))
        # Unstripped extension modules (libyaml's binding alone: 2.6 MB -> 0.4 MB), test
        # suites, man pages and C sources never run in an image.
        for dirpath, _dirs, files in os.walk(site):
            for f in files:
                path = os.path.join(dirpath, f)
                if f.endswith(".so"):
                    run(["strip", "--strip-unneeded", path], timeout=60, check=False)
                elif f.endswith((".c", ".h", ".pyx")):
                    os.remove(path)
        for junk in ("tornado/test", "share", "salt/cloud/deploy"):
            shutil.rmtree(os.path.join(site, junk), ignore_errors=True)
        salt = os.path.join(site, "salt")
        for d in _PRUNE_DIRS:
            shutil.rmtree(os.path.join(salt, d), ignore_errors=True)
        for d in _PRUNE_IN:
            folder = os.path.join(salt, d)
            for f in os.listdir(folder):
                if f.startswith(_PRUNE_PREFIXES):
                    os.remove(os.path.join(folder, f))
