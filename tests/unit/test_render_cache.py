"""Rendering nodes once each with their pillar in memory, and the render cache.

With real Salt: the new path (``configs.render_nodes``: one session per call, one
HighState per node, the pillar in memory) gives byte for byte what the reference path
(``salt.runner.render_files``: a minion per service whose ext_pillar compiles the model)
gives, for every node of the example; a cache hit does no Salt work; a changed pillar
re-renders only its node; a corrupt entry is re-rendered and rewritten; entries are 0600
in 0700 folders.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from saline import configs
from saline.configs import ServiceConfigs, render_node, render_nodes
from saline.formulas import FormulaSet
from saline.model import Model, load_model
from saline.salt import rendercache
from saline.salt.rendercache import RenderCache, formulas_digest, render_key
from saline.salt.runner import RENDER_GRAINS, RenderedFile, RenderSession, render_files
from tools import EXAMPLE, FORMULAS


@pytest.fixture(scope="module")
def model_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example model and the shipped formulas, copied once (others may edit the
    checkout's while the tests run)."""
    root = tmp_path_factory.mktemp("render")
    shutil.copytree(EXAMPLE, root / "model")
    shutil.copytree(FORMULAS, root / "formulas")
    return root


def load_copy(root: Path) -> tuple[Model, FormulaSet]:
    return load_model(str(root / "model")), FormulaSet([str(root / "formulas")])


@pytest.fixture(scope="module")
def fresh(model_copy: Path) -> dict[str, list[ServiceConfigs]]:
    model, formulas = load_copy(model_copy)
    return render_nodes(model, formulas)


class Counter:
    """Counts Salt work done through configs: sessions started, nodes rendered."""

    def __init__(self) -> None:
        self.sessions = 0
        self.nodes: list[str] = []


@pytest.fixture
def salt_work(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter]:
    counter = Counter()

    class Counted(RenderSession):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            counter.sessions += 1
            super().__init__(*args, **kwargs)

        def render(self, node: str, *args: Any, **kwargs: Any) -> list[list[RenderedFile]]:
            counter.nodes.append(node)
            return super().render(node, *args, **kwargs)

    monkeypatch.setattr(configs, "RenderSession", Counted)
    yield counter


def small(rendered: dict[str, list[ServiceConfigs]]) -> str:
    """The node with the fewest services (the cheapest to render), first by name."""
    return min(sorted(rendered), key=lambda n: len(rendered[n]))


def as_data(rendered: dict[str, list[ServiceConfigs]]) -> dict[str, list[Any]]:
    return {n: [(sc.service.name, sc.files) for sc in scs] for n, scs in rendered.items()}


# -- the new path against the reference ----------------------------------------------------


def test_every_node_is_byte_identical_to_the_per_service_path(
    model_copy: Path, fresh: dict[str, list[ServiceConfigs]]
) -> None:
    model, formulas = load_copy(model_copy)
    assert list(fresh) == [
        n for n in model.node_names() if configs.node_services(model, formulas, n)
    ]
    assert len(fresh) > 1
    for node, services in fresh.items():
        want_services = configs.node_services(model, formulas, node)
        assert [sc.service.name for sc in services] == [s.name for s in want_services]
        for sc in services:
            states = sc.service.spec.configure
            want = render_files(node, model.root, formulas.dirs, states) if states else []
            assert sc.files == want, f"{node} {sc.service.name}"
            assert sc.files or not states


def test_render_node_keeps_its_answer(
    model_copy: Path, fresh: dict[str, list[ServiceConfigs]]
) -> None:
    model, formulas = load_copy(model_copy)
    node = sorted(fresh)[0]
    got = render_node(model, formulas, node)
    assert as_data({node: got}) == as_data({node: fresh[node]})
    first = fresh[node][0]
    only = render_node(model, formulas, node, first.service.name)
    assert [(sc.service.name, sc.files) for sc in only] == [(first.service.name, first.files)]


def test_a_named_node_without_services_gets_nothing(model_copy: Path) -> None:
    model, formulas = load_copy(model_copy)
    (model_copy / "model" / "nodes" / "bare.yml").write_text("parameters: {}\n")
    try:
        model, formulas = load_copy(model_copy)
        assert render_nodes(model, formulas, ["bare"]) == {"bare": []}
        assert "bare" not in render_nodes(model, formulas, [])
    finally:
        (model_copy / "model" / "nodes" / "bare.yml").unlink()


# -- the cache ------------------------------------------------------------------------------


def test_a_cache_hit_does_no_salt_work(
    model_copy: Path, fresh: dict[str, list[ServiceConfigs]], salt_work: Counter, tmp_path: Path
) -> None:
    model, formulas = load_copy(model_copy)
    cache = str(tmp_path / "cache")
    cold = render_nodes(model, formulas, cache_dir=cache)
    assert salt_work.sessions == 1  # one Salt setup for every node
    assert sorted(salt_work.nodes) == sorted(fresh)  # each node rendered once
    assert as_data(cold) == as_data(fresh)

    salt_work.sessions, salt_work.nodes = 0, []
    model, formulas = load_copy(model_copy)  # a new process would load it again
    warm = render_nodes(model, formulas, cache_dir=cache)
    assert (salt_work.sessions, salt_work.nodes) == (0, [])
    assert as_data(warm) == as_data(fresh)


def test_a_changed_pillar_re_renders_only_its_node(
    model_copy: Path, salt_work: Counter, tmp_path: Path
) -> None:
    root = tmp_path / "changed"
    shutil.copytree(model_copy, root)
    model, formulas = load_copy(root)
    cache = str(tmp_path / "cache")
    before = render_nodes(model, formulas, cache_dir=cache)

    node = next(n for n in before if n.startswith("ctl"))
    path = root / "model" / "nodes" / f"{node}.yml"
    data = yaml.safe_load(path.read_text())
    data.setdefault("parameters", {}).setdefault("_param", {})["single_address"] = "10.10.0.99"
    path.write_text(yaml.safe_dump(data))

    old_pillars = {n: model.node(n).parameters for n in before}
    salt_work.sessions, salt_work.nodes = 0, []
    model, formulas = load_copy(root)
    after = render_nodes(model, formulas, cache_dir=cache)
    # The node, and those whose pillar holds its address (a proxy's backends, say).
    changed = [n for n in after if model.node(n).parameters != old_pillars[n]]
    assert node in changed and len(changed) < len(after)
    assert salt_work.nodes == changed
    for n in after:
        if n not in changed:
            assert as_data({n: after[n]}) == as_data({n: before[n]})
    for sc in after[node]:
        assert sc.files == render_files(node, model.root, formulas.dirs, sc.service.spec.configure)
    assert any(as_data({n: after[n]}) != as_data({n: before[n]}) for n in changed)


def test_a_formula_change_re_renders(model_copy: Path, salt_work: Counter, tmp_path: Path) -> None:
    root = tmp_path / "formula"
    shutil.copytree(model_copy, root)
    model, formulas = load_copy(root)
    cache = str(tmp_path / "cache")
    render_nodes(model, formulas, cache_dir=cache)
    template = root / "formulas" / "memcached" / "files" / "memcached.conf.j2"
    template.write_text(template.read_text() + "# edited\n")
    salt_work.nodes = []
    after = render_nodes(model, formulas, cache_dir=cache)
    assert sorted(salt_work.nodes) == sorted(after)  # every key covers every formula file
    memcached = [
        f for scs in after.values() for sc in scs for f in sc.files if "memcached" in f.path
    ]
    assert memcached and all(f.content.endswith("# edited\n") for f in memcached)


def entries(cache: str) -> list[Path]:
    return sorted(p for p in Path(cache).rglob("*.json"))


@pytest.mark.parametrize(
    "damage",
    [
        b"",  # truncated to nothing
        b'{"format": 1, "node": ',  # truncated JSON
        b"\x00\xff garbage",
        b'{"format": 1, "node": "x", "key": "y", "services": []}',  # another entry's
    ],
)
def test_a_corrupt_entry_is_re_rendered_and_rewritten(
    model_copy: Path,
    fresh: dict[str, list[ServiceConfigs]],
    salt_work: Counter,
    tmp_path: Path,
    damage: bytes,
) -> None:
    model, formulas = load_copy(model_copy)
    cache = str(tmp_path / "cache")
    node = small(fresh)
    render_nodes(model, formulas, [node], cache_dir=cache)
    (entry,) = entries(cache)
    entry.write_bytes(damage)

    salt_work.nodes = []
    again = render_nodes(model, formulas, [node], cache_dir=cache)
    assert salt_work.nodes == [node]
    assert as_data(again) == as_data({node: fresh[node]})
    assert entries(cache) == [entry]
    assert json.loads(entry.read_text())["node"] == node  # rewritten

    salt_work.nodes = []
    assert as_data(render_nodes(model, formulas, [node], cache_dir=cache)) == as_data(again)
    assert salt_work.nodes == []


def test_a_wrong_field_in_an_entry_is_a_miss(
    model_copy: Path, fresh: dict[str, list[ServiceConfigs]], salt_work: Counter, tmp_path: Path
) -> None:
    model, formulas = load_copy(model_copy)
    cache = str(tmp_path / "cache")
    node = small(fresh)
    render_nodes(model, formulas, [node], cache_dir=cache)
    (entry,) = entries(cache)
    data = json.loads(entry.read_text())
    data["services"][0][0]["content"] = 42
    entry.write_text(json.dumps(data))
    salt_work.nodes = []
    assert as_data(render_nodes(model, formulas, [node], cache_dir=cache)) == as_data(
        {node: fresh[node]}
    )
    assert salt_work.nodes == [node]


def test_cache_files_are_private(model_copy: Path, tmp_path: Path) -> None:
    model, formulas = load_copy(model_copy)
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o755)  # an existing folder is made private too
    render_nodes(model, formulas, cache_dir=str(cache))
    files = [p for p in cache.rglob("*") if p.is_file()]
    folders = [cache, *(p for p in cache.rglob("*") if p.is_dir())]
    assert files and len(folders) > 1
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    for d in folders:
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d


def test_old_entries_of_a_node_are_pruned(tmp_path: Path) -> None:
    cache = RenderCache(str(tmp_path), keep=2)
    files = [[RenderedFile("/etc/a", "secret", "0600", "a", "salt://a")]]
    for i in range(5):
        cache.put("n1", f"{i:064x}", files)
        os.utime(cache._entry("n1", f"{i:064x}"), ns=(i * 10**9, i * 10**9))
    cache.put("n2", "f" * 64, files)
    left = sorted(p.name for p in (tmp_path / rendercache._node_folder("n1")).iterdir())
    assert left == [f"{3:064x}.json", f"{4:064x}.json"]
    assert cache.get("n1", f"{4:064x}", 1) == files
    assert cache.get("n1", f"{0:064x}", 1) is None
    assert cache.get("n1", f"{4:064x}", 2) is None  # another service list
    assert cache.get("n2", "f" * 64, 1) == files


def test_an_unwritable_cache_only_costs_speed(
    model_copy: Path, fresh: dict[str, list[ServiceConfigs]], tmp_path: Path
) -> None:
    model, formulas = load_copy(model_copy)
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    node = small(fresh)
    got = render_nodes(model, formulas, [node], cache_dir=str(blocked / "cache"))
    assert as_data(got) == as_data({node: fresh[node]})


# -- the key ----------------------------------------------------------------------------------


def test_the_key_sees_order_types_states_grains_and_formulas(tmp_path: Path) -> None:
    pillar = {"a": {"x": 1, "y": [1, "2"]}, "b": True}
    base = render_key("n", pillar, [["s.configure"]], RENDER_GRAINS, "f")
    assert render_key("n", copy.deepcopy(pillar), [["s.configure"]], RENDER_GRAINS, "f") == base
    variants = [
        ("m", pillar, [["s.configure"]], RENDER_GRAINS, "f"),
        ("n", {"b": True, "a": {"x": 1, "y": [1, "2"]}}, [["s.configure"]], RENDER_GRAINS, "f"),
        ("n", {"a": {"x": True, "y": [1, "2"]}, "b": True}, [["s.configure"]], RENDER_GRAINS, "f"),
        ("n", {"a": {"x": "1", "y": [1, "2"]}, "b": True}, [["s.configure"]], RENDER_GRAINS, "f"),
        ("n", {"a": {"x": 1.0, "y": [1, "2"]}, "b": True}, [["s.configure"]], RENDER_GRAINS, "f"),
        ("n", pillar, [["s.configure"], []], RENDER_GRAINS, "f"),
        ("n", pillar, [["s.configure", "s.more"]], RENDER_GRAINS, "f"),
        ("n", pillar, [["s.configure"]], {"noservices": False}, "f"),
        ("n", pillar, [["s.configure"]], RENDER_GRAINS, "g"),
    ]
    keys = {render_key(*v) for v in variants}
    assert base not in keys and len(keys) == len(variants)

    shutil.copytree(FORMULAS, tmp_path / "f")
    digest = formulas_digest([str(tmp_path / "f")])
    assert formulas_digest([str(tmp_path / "f")]) == digest
    (tmp_path / "f" / "memcached" / "files" / "extra.j2").write_text("x")
    assert formulas_digest([str(tmp_path / "f")]) != digest


def test_the_key_does_not_depend_on_object_sharing() -> None:
    shared = ["10.0.0.1"]
    a = {"x": shared, "y": shared, "z": "".join(["ab", "c"])}
    b = {"x": ["10.0.0.1"], "y": ["10.0.0.1"], "z": "abc"}
    assert render_key("n", a, [], {}, "f") == render_key("n", b, [], {}, "f")


# -- the in-memory pillar -----------------------------------------------------------------


def test_the_ext_pillar_takes_the_compiled_parameters_of_its_minion_only(
    model_copy: Path, tmp_path: Path
) -> None:
    from saline.salt.pillar.saline import ext_pillar

    params = {"keystone": {"server": {"enabled": True}}}
    got = ext_pillar("n1", {}, model=str(tmp_path / "none"), compiled={"n1": params})
    assert got == params and got is not params
    model, _ = load_copy(model_copy)
    node = model.node_names()[0]
    root = str(model_copy / "model")
    assert ext_pillar(node, {}, model=root, compiled={"n1": params}) == model.node(node).parameters


def test_a_pillar_compile_in_a_session_gets_the_parameters_in_memory(model_copy: Path) -> None:
    """Anything that compiles the pillar again inside a render (a refresh) gets the
    node's parameters from memory, through Salt's own pillar compile."""
    import salt.pillar

    model, formulas = load_copy(model_copy)
    node = model.node_names()[0]
    params = model.node(node).parameters
    with RenderSession(str(tmp_path_missing(model_copy)), formulas.dirs) as session:
        opts = session._node_opts(node, params, {})
        compiled = salt.pillar.get_pillar(opts, opts["grains"], node, "base").compile_pillar()
    assert json.loads(json.dumps(compiled)) == json.loads(json.dumps(params))


def tmp_path_missing(root: Path) -> Path:
    """A model folder that does not exist: the compile must not read the model."""
    return root / "no-model-here"


def test_each_node_gets_the_grains_salt_computes_for_it(tmp_path: Path) -> None:
    import salt.config
    import salt.loader

    from saline.salt.runner import minion_config, node_grains

    def grains(node: str) -> dict[str, Any]:
        opts = dict(salt.config.minion_config(None))
        opts.update(minion_config(node, "/m", [str(FORMULAS)], str(tmp_path), RENDER_GRAINS))
        return dict(salt.loader.grains(opts))

    a = grains("a.example")
    assert node_grains(a, "b.example") == grains("b.example")
    assert node_grains(a, "a.example") == a


def test_an_entry_others_could_write_is_not_read(tmp_path: Path) -> None:
    cache = RenderCache(str(tmp_path))
    files = [[RenderedFile("/etc/a", "secret", "0600", "a", "salt://a")]]
    cache.put("n", "k" * 64, files)
    entry = Path(cache._entry("n", "k" * 64))
    assert cache.get("n", "k" * 64, 1) == files
    entry.chmod(0o666)
    assert cache.get("n", "k" * 64, 1) is None
