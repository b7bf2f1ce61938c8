"""The one-minute soak (scripts/soak.py): `unifashion serve` in a subprocess under mixed load from four
clients for 60 s: no request fails (the deliberately bad ones get their 4xx) and the server's resident
memory grows by at most 10% between the end of the warm-up and the end. The full form is
`python scripts/soak.py --seconds 600`."""
import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "soak.py"


def load_script():
    spec = importlib.util.spec_from_file_location("soak", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_one_minute_soak(service_search, tmp_path):
    soak = load_script()
    model_dir = service_search.model.save_pretrained(tmp_path / "model")
    summary = soak.soak(model_dir, service_search.index.root, seconds=60, clients=4, workdir=tmp_path)
    soak.print_table(summary)
    assert summary["server_alive"]
    assert summary["errors"] == 0, summary["error_examples"]
    kinds = summary["per_endpoint"]
    assert set(kinds) >= {"health", "text", "image", "composed", "image+modify", "image-to-text", "classify",
                          "caption", "generate", "item-image", "bad-image", "unknown-item", "bad-k"}
    assert all(row["requests"] >= 2 for row in kinds.values()), kinds  # each kind also under load
    assert summary["requests"] >= 200, summary["requests"]
    assert summary["rss_growth_percent"] <= 10.0, summary["rss_samples_mib"]
    assert summary["ok"]
