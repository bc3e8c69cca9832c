"""Kubernetes: `saline manifests --target kubernetes --out DIR`."""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any

from ..errors import SalineError
from .common import (
    Context,
    add_format,
    add_formulas_option,
    add_model_option,
    add_registry_option,
    add_stack_option,
    command,
)

TARGETS = ("kubernetes",)


def cmd_manifests(args: argparse.Namespace, ctx: Context) -> int:
    from ..lifecycle.desired import desired_release, model_at
    from ..manifests.kubernetes import (
        FILES,
        SECRETS_FILE,
        KubeOptions,
        kubernetes_manifests,
        manifest_files,
        namespace_name,
    )

    model = ctx.model()
    name = namespace_name(ctx.settings.stack or os.path.basename(os.path.abspath(model.root)))
    options = KubeOptions(
        namespace=args.namespace or name,
        name=name,
        registry=ctx.settings.registry,
        storage_class=args.storage_class,
        shared_access_mode=args.shared_access_mode or ACCESS_MODES[0],
    )
    options.check()  # before anything is rendered: a typo costs nothing
    cache = ctx.settings.cache_dir
    with model_at(model.root, None, cache) as (model, source):
        formulas = ctx.formulas(model)
        desired = desired_release(model, formulas, source, cache)
    specs = {service: spec for service, (_, spec) in formulas.services.items()}
    objects = kubernetes_manifests(desired.release, desired.pillars, specs, options, desired.locate)
    files = manifest_files(objects)
    _write(args.out, files, set(FILES.values()), SECRETS_FILE)
    counts: dict[str, int] = {}
    for o in objects:
        counts[o["kind"]] = counts.get(o["kind"], 0) + 1
    if args.format == "json":
        ctx.emit(
            {
                "release": desired.release.id,
                "namespace": options.namespace,
                "out": os.path.abspath(args.out),
                "files": {
                    FILES[kind]: {"kind": kind, "objects": count}
                    for kind, count in sorted(counts.items(), key=lambda kc: FILES[kc[0]])
                },
                "objects": [
                    {"kind": o["kind"], "name": o["metadata"]["name"], "file": FILES[o["kind"]]}
                    for o in objects
                ],
            },
            "json",
        )
    else:
        for kind, count in sorted(counts.items(), key=lambda kc: FILES[kc[0]]):
            print(f"{os.path.join(args.out, FILES[kind])}: {count} {kind}", file=ctx.out)
        print(
            f"release {desired.release.id}: {len(objects)} objects for namespace "
            f"{options.namespace} (apply: kubectl apply --server-side -f {args.out})",
            file=ctx.out,
        )
    return 0


def _write(out: str, files: dict[str, str], ours: set[str], secret: str) -> None:
    """Write each file whole (a temporary file renamed over it), the Secrets' file 0600,
    and remove those of our file names that this model no longer has (a kind with no
    object left), never any other file."""
    try:
        os.makedirs(out, exist_ok=True)
        for name, text in sorted(files.items()):
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=out)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
                os.chmod(tmp, 0o600 if name == secret else 0o644)
                os.replace(tmp, os.path.join(out, name))
            except BaseException:
                os.unlink(tmp)
                raise
        for name in sorted(ours - set(files)):
            path = os.path.join(out, name)
            if os.path.isfile(path):
                os.remove(path)
    except OSError as e:
        where = e.filename or out
        raise SalineError(f"cannot write the manifests to {out}: {e.strerror}: {where}") from e


#: Kubernetes' access modes, the first the default (``manifests.kubernetes.ACCESS_MODES``;
#: a unit test keeps the two equal). Not imported from there: building the parser must not
#: load the manifests module, or every command would start 0.4 s slower.
ACCESS_MODES = ("ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")


def register(sub: Any) -> None:
    p = command(
        sub,
        "manifests",
        help="write the model's Kubernetes manifests",
        description="Compile the model, render every service's config with its formula, "
        "and write the release as Kubernetes objects: one YAML file per kind in DIR, "
        "numbered in the order to apply them (docs/kubernetes-manifests.md). Changes "
        "nothing else.",
        func=cmd_manifests,
    )
    p.add_argument(
        "--target",
        dest="manifest_target",
        choices=TARGETS,
        required=True,
        help="what the manifests are for",
    )
    p.add_argument("--out", metavar="DIR", required=True, help="folder to write them to")
    p.add_argument(
        "--namespace",
        metavar="NS",
        help="the namespace of every object (default: the stack's name, else the model folder's)",
    )
    p.add_argument(
        "--storage-class",
        metavar="NAME",
        help="StorageClass of every volume claim (default: the cluster's default class)",
    )
    p.add_argument(
        "--shared-access-mode",
        choices=ACCESS_MODES,
        help="access mode of a volume all replicas of a service mount, e.g. glance's "
        f"store (default: {ACCESS_MODES[0]}; ReadWriteOnce suffices on one node)",
    )
    add_model_option(p)
    add_formulas_option(p)
    add_registry_option(p)
    add_stack_option(p)
    add_format(p, ("text", "json"), "text")
