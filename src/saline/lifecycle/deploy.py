"""Plan and apply against the local stack: the glue between the planner, the records,
the journal, the engine and the stack runner.

* :func:`prepare`: the desired release of the model, what runs, and the plan;
* :func:`check_plan_file`: a saved plan is applied only if neither the model nor the
  stack moved since it was made;
* :func:`execute`: record the release, write the stack's files, run the steps with a
  journal, record the outcome; an unfinished journal of the same release is resumed;
* :func:`rollback_target`: which recorded release a rollback goes back to.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import images
from ..build.graph import Resolve
from ..errors import SalineError
from ..formulas import FormulaSet
from ..model import Model
from ..release import Instance, Release
from ..runtime.podman import Podman
from ..settings import Settings
from ..stack import (
    Stack,
    StepResult,
    check_stack,
    default_project,
    load_stack,
    up,
    write_stack,
)
from .apply import Engine, StepOutcome
from .desired import Desired, desired_release
from .journal import Journal
from .plan import Current, Plan, make_plan
from .records import RecordError, Records, observe
from .stack_runner import StackRunner
from .upgrade import described, plan_upgrades, releases_running

JOURNAL = "journal.jsonl"


class StalePlanError(SalineError):
    """A saved plan made against another model or another running state."""


class StackNotRunning(SalineError):
    """apply or rollback on a stack with no running instance."""


@dataclass
class Prepared:
    desired: Desired
    stack: Stack
    records: Records
    current: Current
    plan: Plan

    @property
    def journal_path(self) -> str:
        return os.path.join(self.stack.directory, JOURNAL)


def prepare(
    settings: Settings, model: Model, formulas: FormulaSet, source: dict[str, str] | None
) -> Prepared:
    """The model's release against what runs."""
    check_stack(model, formulas, settings.stack, settings.state_dir)
    resolve = images.package_resolver(settings)
    desired = desired_release(model, formulas, source, settings.cache_dir, resolve=resolve)
    return prepare_desired(settings, formulas, desired, resolve)


def prepare_recorded(
    settings: Settings, model: Model, formulas: FormulaSet, release_id: str
) -> Prepared:
    """A recorded release (a rollback) against what runs: its instances, images and
    pillars as recorded; ``model`` gives the stack's nodes and addresses."""
    project = settings.stack or default_project(model)
    records = Records(os.path.join(settings.state_dir, "stacks", project))
    release, pillars = records.load(release_id)
    if not pillars:
        raise RecordError(
            f"release {release_id} has no recorded pillars ({records.pillars}): saline "
            "cannot run it again; put the model back as it was and run `saline apply`"
        )
    return prepare_desired(settings, formulas, Desired(release, pillars, model, recorded=True))


def prepare_desired(
    settings: Settings, formulas: FormulaSet, desired: Desired, resolve: Resolve | None = None
) -> Prepared:
    model = desired.model
    stack = load_stack(
        model,
        formulas,
        settings.stack,
        settings.state_dir,
        desired.release,
        desired.pillars if desired.recorded else None,
        resolve=resolve or images.package_resolver(settings),
    )
    records = Records(stack.directory)
    current = observe(stack, records)
    if not current.digests:
        # apply changes a running cloud one instance at a time; a stopped one has nothing
        # to drain or to keep serving, and starting it is `saline up`'s job.
        raise StackNotRunning(
            f"stack {stack.plan.project} is not running: start it with `saline up` "
            "(apply and rollback change a running stack); nothing was changed"
        )
    plan = make_plan(desired.release, current, formulas, desired.pillars, desired.locate)
    return Prepared(desired, stack, records, current, plan)


def check_plan_file(data: Mapping[str, Any], prepared: Prepared, path: str) -> None:
    want = prepared.desired.release.id
    if data.get("desired_release") != want:
        raise StalePlanError(
            f"{path}: the plan is for release {data.get('desired_release')}, but the model now "
            f"gives release {want}: the model changed since the plan was made. Make a new "
            "plan (`saline plan --out FILE`)."
        )
    if data.get("base_fingerprint") != prepared.current.fingerprint():
        raise StalePlanError(
            f"{path}: what runs changed since the plan was made (it was planned against "
            f"{data.get('base')}). Make a new plan (`saline plan --out FILE`)."
        )


def unfinished(prepared: Prepared) -> Journal | None:
    """The journal of an apply that was stopped midway, if any. It must be the same
    release: resuming another would mix two rollouts."""
    journal = Journal.load(prepared.journal_path)
    if journal is not None and journal.release != prepared.desired.release.id:
        raise SalineError(
            f"an apply of release {journal.release} was stopped midway "
            f"({prepared.journal_path}), and the model now gives release "
            f"{prepared.desired.release.id}. Put the model back as it was (e.g. git "
            "checkout) and run `saline apply` to finish it; then apply the new change."
        )
    return journal


def execute(
    prepared: Prepared,
    settings: Settings,
    formulas: FormulaSet,
    steps: Sequence[Mapping[str, Any]],
    progress: Callable[[str], None],
    journal: Journal | None = None,
) -> list[StepOutcome]:
    """Run ``steps`` (or resume ``journal``); record the release and its outcome."""
    desired, stack, records = prepared.desired, prepared.stack, prepared.records
    release = desired.release
    if desired.recorded:
        _check_images(release, settings)
    else:
        images.build_images(desired.model, formulas, settings, push=False, progress=progress)
    records.save(release, desired.pillars)
    write_stack(stack, desired.model.root, point_instances=False)
    if journal is None:
        journal = Journal.start(prepared.journal_path, release.id, [dict(s) for s in steps])
    previous: dict[str, Instance] = {}
    if prepared.current.release is not None:
        previous = {i.key: i for i in prepared.current.release.instances}
    runner = StackRunner(stack, release, formulas, progress)
    engine = Engine(release, previous, runner, journal, progress, time.monotonic)
    try:
        outcomes = engine.run()
    except SalineError:  # ApplyFailed (restored) or a step that could not be done
        records.applied(release, "failed")
        journal.close("failed")
        raise
    records.applied(release, "applied")
    journal.close("applied")
    return outcomes


def _check_images(release: Release, settings: Settings) -> None:
    """A recorded release runs the images it was made with: they must still be here."""
    podman = Podman.for_state(settings.state_dir)
    refs = [f"localhost/{i.image}:{i.image_tag}" for i in release.instances]
    if release.node_image:
        refs.append(f"localhost/{release.node_image}")
    have = podman.local_images()
    missing = [r for r in dict.fromkeys(refs) if r not in have]
    if missing:
        raise SalineError(
            f"release {release.id} runs images that are no longer here: {', '.join(missing)}. "
            "Rebuild them from the model it came from (git checkout, then `saline build`)."
        )


def rollback_target(records: Records, wanted: str | None) -> str:
    """The release to go back to: ``wanted``, else the last one applied before the
    current one."""
    history = [e for e in records.history() if e.get("outcome") == "applied"]
    ids = [str(e.get("id")) for e in history]
    if wanted is not None:
        if wanted not in ids and not os.path.exists(
            os.path.join(records.releases, f"{wanted}.json")
        ):
            known = ", ".join(dict.fromkeys(reversed(ids))) or "none"
            raise RecordError(f"no release {wanted} was recorded (applied ones: {known})")
        return wanted
    current = records.current_id()
    earlier = [i for i in ids if i != current]
    if not earlier:
        raise RecordError("no earlier release to roll back to (`saline releases` lists them)")
    return earlier[-1]


def _refuse_release_change(
    stack: Stack, records: Records, desired: Desired, formulas: FormulaSet
) -> None:
    """``up`` starts what is missing; it does not move a running service to another
    OpenStack release (that takes a backup and the schema's phases: ``apply``)."""
    current = observe(stack, records)
    running = releases_running(current.release, current.digests, formulas, current.pillars)
    found = plan_upgrades(desired.release, running, formulas, desired.pillars, current.upgrades)
    if found:
        raise SalineError(
            f"the model moves running services to another OpenStack release: "
            f"{described(found)}. "
            "`saline up` does not upgrade: `saline plan` shows the upgrade (a backup, the "
            "schema's expand and contract around the instances), `saline apply` rolls it out"
        )


def start_stack(
    settings: Settings,
    model: Model,
    formulas: FormulaSet,
    source: dict[str, str] | None,
    progress: Callable[[str], None],
) -> tuple[Stack, list[StepResult]]:
    """``saline up``: start the model's release and record it (so `plan` and `apply`
    know what runs)."""
    check_stack(model, formulas, settings.stack, settings.state_dir)
    resolve = images.package_resolver(settings, progress=progress)
    desired = desired_release(model, formulas, source, settings.cache_dir, resolve=resolve)
    stack = load_stack(
        model, formulas, settings.stack, settings.state_dir, desired.release, resolve=resolve
    )
    records = Records(stack.directory)
    _refuse_release_change(stack, records, desired, formulas)
    records.save(desired.release, desired.pillars)
    try:
        results = up(stack, model, formulas, settings, progress, resolve)
    except SalineError:
        records.applied(desired.release, "failed")
        raise
    records.applied(desired.release, "applied")
    return stack, results
