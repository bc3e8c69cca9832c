"""Mistakes that are about the model as a whole rather than one node."""

from __future__ import annotations

from pathlib import Path

import pytest

from saline.errors import ConfigError, DuplicateNodeError, ModelNotFoundError, NodeNotFoundError
from saline.model import Model


def make(root: Path, files: dict[str, str]) -> str:
    (root / "classes").mkdir(exist_ok=True)
    (root / "nodes").mkdir(exist_ok=True)
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return str(root)


def test_missing_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        Model(str(tmp_path / "nope"))


def test_missing_nodes_folder(tmp_path: Path) -> None:
    (tmp_path / "classes").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"no nodes folder \(nodes/\)"):
        Model(str(tmp_path))


def test_duplicate_node_names(tmp_path: Path) -> None:
    root = make(tmp_path, {"nodes/a/n.yml": "", "nodes/b/n.yml": ""})
    with pytest.raises(
        DuplicateNodeError,
        match=r"node 'n' is defined twice: in nodes/a/n\.yml and in nodes/b/n\.yml",
    ):
        Model(root)


def test_duplicate_class_names(tmp_path: Path) -> None:
    root = make(tmp_path, {"classes/a.yml": "", "classes/a/init.yml": ""})
    with pytest.raises(DuplicateNodeError, match="class 'a' is defined twice"):
        Model(root)


def test_unknown_node(tmp_path: Path) -> None:
    root = make(tmp_path, {"nodes/n.yml": ""})
    with pytest.raises(NodeNotFoundError, match="no node named 'm'"):
        Model(root).node("m")


def test_config_unknown_option(tmp_path: Path) -> None:
    root = make(tmp_path, {"reclass-config.yml": "ignore_class_not_found: true\n"})
    with pytest.raises(
        ConfigError, match=r"reclass-config\.yml, key ignore_class_not_found: unknown option"
    ):
        Model(root)


def test_config_wrong_type(tmp_path: Path) -> None:
    root = make(tmp_path, {"reclass-config.yml": "compose_node_name: yes please\n"})
    with pytest.raises(ConfigError, match="must be true or false"):
        Model(root)


def test_config_yaml_error_has_line(tmp_path: Path) -> None:
    root = make(tmp_path, {"reclass-config.yml": "a: 1\nb: [\n"})
    with pytest.raises(ConfigError, match=r"reclass-config.yml:3"):
        Model(root)


def test_config_paths_and_compose(tmp_path: Path) -> None:
    root = make(
        tmp_path,
        {
            "reclass-config.yml": (
                "nodes_uri: inv/nodes\nclasses_uri: inv/classes\ncompose_node_name: true\n"
            ),
            "inv/classes/c.yml": "parameters: {x: 1}",
            "inv/nodes/site/n.yml": "classes: [c]",
        },
    )
    model = Model(root)
    assert model.node_names() == ["site.n"]
    assert model.node("site.n").parameters["x"] == 1


def test_other_environments_mistakes_do_not_break_a_node(tmp_path: Path) -> None:
    root = make(
        tmp_path,
        {
            "nodes/good.yml": "environment: prod\nparameters: {peers: '$[ exports:ip ]'}",
            "nodes/broken.yml": "environment: dev\nclasses: [does.not.exist]",
        },
    )
    assert Model(root).node("good").parameters["peers"] == {}


def test_without_automatic_parameters_there_is_no_reclass_key(tmp_path: Path) -> None:
    root = make(
        tmp_path,
        {
            "reclass-config.yml": "automatic_parameters: false\n",
            "classes/c.yml": "parameters: {a: 1}",
            "nodes/n.yml": "classes: [c]",
            "nodes/m.yml": "classes: [c]",  # the same class list: the shared expansion
        },
    )
    model = Model(root)
    assert model.node("n").parameters == {"a": 1}
    assert model.node("m").parameters == {"a": 1}
