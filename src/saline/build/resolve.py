"""Which exact Debian packages each image installs: the versions its tag is made of.

For an image's recipe (:class:`.graph.Recipe`), in order:

1. this machine's record of the recipe's last resolution, ``STATE/packages/KEY.json``;
2. an image in podman's store built from the same recipe (label ``saline.recipe``; the
   newest), whose label ``saline.packages`` says what it installed;
3. apt (:mod:`saline.runtime.apt`) over the recipe's suites: the install simulated on the
   packages the image is built on. Recorded as in 1.

So an image keeps its tag until someone asks for newer packages (``refresh``: `saline
build --refresh`, after `saline outdated` said there are), a machine that has the images
knows their tags without the network, and a new suite in the model (a new recipe) is
resolved anew by itself.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

from ..runtime.apt import DEFAULT_KEYRING, AptArchive, AptError, status_file
from ..runtime.podman import Podman
from ..settings import DebianMirrors
from .graph import Recipe
from .packages import Package, PackageSet, Suites


class PackageResolver:
    """A :data:`.graph.Resolve` for this machine (see the module's docstring)."""

    def __init__(
        self,
        state_dir: str,
        podman: Podman | None,
        mirrors: DebianMirrors,
        *,
        refresh: bool = False,
        keyring: str = DEFAULT_KEYRING,
        progress: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self.records = os.path.join(state_dir, "packages")
        self.apt_root = os.path.join(state_dir, "apt")
        self.podman = podman
        self.mirrors = mirrors
        self.refresh = refresh
        self.keyring = keyring
        self.progress = progress
        self._built: dict[str, tuple[int, str]] | None = None
        self._archives: dict[Suites, AptArchive] = {}
        #: This run's answers: a command plans its images more than once (the release,
        #: the stack, the build), the answer is read or resolved once.
        self._answers: dict[str, PackageSet] = {}
        #: How each recipe was resolved this run (key -> "record" | "image" | "apt").
        self.sources: dict[str, str] = {}

    def __call__(self, recipe: Recipe) -> PackageSet:
        if recipe.key not in self._answers:
            self._answers[recipe.key] = self._answer(recipe)
        return self._answers[recipe.key]

    def _answer(self, recipe: Recipe) -> PackageSet:
        if not self.refresh:
            recorded = self._recorded(recipe.key)
            if recorded is not None:
                self.sources[recipe.key] = "record"
                return recorded
            built = self._from_image(recipe.key)
            if built is not None:
                self.sources[recipe.key] = "image"
                self._record(recipe, built)
                return built
        resolved = self._resolve(recipe)
        self.sources[recipe.key] = "apt"
        self._record(recipe, resolved)
        return resolved

    # -- 1. the record ------------------------------------------------------------------

    def _path(self, key: str) -> str:
        return os.path.join(self.records, f"{key}.json")

    def _recorded(self, key: str) -> PackageSet | None:
        try:
            with open(self._path(key)) as fh:
                return PackageSet.from_json(json.load(fh)["packages"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # none, or unreadable: resolved again

    def _record(self, recipe: Recipe, packages: PackageSet) -> None:
        os.makedirs(self.records, exist_ok=True)
        data = {
            "recipe": recipe.key,
            "image": recipe.image,
            "suites": list(recipe.suites.names),
            "resolved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "packages": packages.to_json(),
        }
        tmp = self._path(recipe.key) + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(data, fh, indent=1)
        os.replace(tmp, self._path(recipe.key))

    # -- 2. an image built from the recipe ----------------------------------------------

    def _from_image(self, key: str) -> PackageSet | None:
        if self.podman is None:
            return None
        if self._built is None:
            self._built = {}
            for image in self.podman.images_labelled("saline.recipe"):
                labels = image.get("Labels") or {}
                recipe, text = labels.get("saline.recipe"), labels.get("saline.packages")
                created = int(image.get("Created") or 0)
                if recipe and text is not None and created >= self._built.get(recipe, (-1, ""))[0]:
                    self._built[recipe] = (created, text)
        found = self._built.get(key)
        return None if found is None else parse_label(found[1])

    # -- 3. apt --------------------------------------------------------------------------

    def archive(self, suites: Suites) -> AptArchive:
        """apt over ``suites``, its lists fetched once per resolver."""
        if suites not in self._archives:
            sources = suites.sources(self.mirrors, self.keyring)
            archive = AptArchive(AptArchive.folder_for(self.apt_root, sources), sources)
            self.progress(f"packages: reading the lists of {', '.join(suites.names)}")
            archive.update()
            self._archives[suites] = archive
        return self._archives[suites]

    def _resolve(self, recipe: Recipe) -> PackageSet:
        archive = self.archive(recipe.suites)
        self.progress(f"packages: resolving {recipe.image} ({len(recipe.names)} asked for)")
        try:
            if recipe.kind == "base":
                names = [*archive.required(), "apt", *recipe.names]
                found = archive.simulate(names)
            else:
                installed = recipe.installed
                pairs = [(p.name, p.version) for p in installed.values()]
                records = archive.stanzas(pairs)
                status = os.path.join(archive.root, f"status.{recipe.key}")
                with open(status, "w") as fh:
                    fh.write(
                        status_file(
                            [
                                (p.name, p.version, p.arch, records.get((p.name, p.version)))
                                for p in installed.values()
                            ]
                        )
                    )
                try:
                    found = archive.simulate(recipe.names, status)
                finally:
                    os.remove(status)
        except AptError as e:
            raise AptError(f"image {recipe.image}: {e}") from None
        published = archive.published(r.name for r in found)
        return PackageSet(
            [
                Package(
                    r.name,
                    r.version,
                    r.arch,
                    tuple(s for v, s in published.get(r.name, []) if v == r.version),
                )
                for r in found
            ]
        )


def parse_label(text: str) -> PackageSet:
    """The packages of an image's ``saline.packages`` label (``name=version:arch ...``)."""
    out = []
    for item in text.split():
        name, _, rest = item.partition("=")
        version, _, arch = rest.rpartition(":")
        if name and version and arch:
            out.append(Package(name, version, arch))
    return PackageSet(out)
