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
