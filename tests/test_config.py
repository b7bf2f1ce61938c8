"""Config loading: nested frozen dataclasses, unknown keys are errors, round trip through dicts."""
from dataclasses import dataclass, field
from typing import Literal

import pytest

from unifashion.config import from_dict, read_mapping, to_dict
from unifashion.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    width: int = 8
    channels: tuple[int, ...] = (1, 2)
    kind: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    inner: Inner = field(default_factory=Inner)
    rate: float = 0.5
    path: str | None = None
    extra: dict | None = None


def test_round_trip_and_defaults():
    cfg = from_dict(Outer, {"inner": {"width": 4, "channels": [3, 4, 5], "kind": "b"}, "rate": 1, "path": "x"})
    assert cfg == Outer(Inner(4, (3, 4, 5), "b"), 1.0, "x")
    assert from_dict(Outer, to_dict(cfg)) == cfg
    assert from_dict(Outer, {}) == Outer()


@pytest.mark.parametrize("data, message", [
    ({"inner": {"widht": 3}}, "unknown key 'widht'"),
    ({"rate": "fast"}, "config.rate"),
    ({"inner": {"kind": "c"}}, "config.inner.kind"),
    ({"inner": {"width": 2.5}}, "config.inner.width"),
    ({"inner": {"channels": 3}}, "config.inner.channels"),
    ({"inner": []}, "config.inner"),
])
def test_bad_configs_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        from_dict(Outer, data)


def test_read_mapping_json_and_yaml(tmp_path):
    (tmp_path / "a.json").write_text('{"rate": 2}')
    (tmp_path / "b.yaml").write_text("rate: 3\ninner:\n  width: 2\n")
    assert from_dict(Outer, read_mapping(tmp_path / "a.json")).rate == 2.0
    assert from_dict(Outer, read_mapping(tmp_path / "b.yaml")).inner.width == 2
    (tmp_path / "c.json").write_text("{broken")
    with pytest.raises(ConfigError, match="c.json"):
        read_mapping(tmp_path / "c.json")
    with pytest.raises(ConfigError, match="missing.yaml"):
        read_mapping(tmp_path / "missing.yaml")


def test_a_broken_config_file_names_its_line_and_column(tmp_path):
    (tmp_path / "bad.yaml").write_text("qformer:\n  hidden_size: 3\n bad: [\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:3:2: not valid YAML \(expected <block end>"):
        read_mapping(tmp_path / "bad.yaml")
    (tmp_path / "bad.json").write_text('{"a": 1,\n "b": }')
    with pytest.raises(ConfigError, match=r"bad\.json:2:7: not valid JSON \(Expecting value\)"):
        read_mapping(tmp_path / "bad.json")


def test_a_bad_override_is_named_as_the_override_not_the_file(tmp_path):
    from unifashion.models.model_config import load_config

    with pytest.raises(ConfigError, match=r"^--set qformer\.nope=3: unknown key 'nope' for QFormerConfig") as info:
        load_config("tiny", {"qformer": {"nope": 3}}, overrides_flag="--set")
    assert "tiny.yaml" not in str(info.value)
    with pytest.raises(ConfigError, match=r"^override generator\.image_size=big: expected int, got 'big'$"):
        load_config("tiny", {"qformer": {"dropout": 0.2}, "generator": {"image_size": "big"}})
    assert load_config("tiny", {"qformer": {"dropout": 0.2}}).qformer.dropout == 0.2
    (tmp_path / "c.yaml").write_text("qformer:\n  nope: 1\n")
    with pytest.raises(ConfigError, match=r"c\.yaml\.qformer: unknown key 'nope'"):  # the file's own mistake names it
        load_config(tmp_path / "c.yaml", {"qformer": {"dropout": 0.2}}, overrides_flag="--set")
