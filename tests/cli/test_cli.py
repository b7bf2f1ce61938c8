"""The command line: help everywhere, JSON output, one-line errors with non-zero exit codes."""
import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from unifashion.cli import app

runner = CliRunner()


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "unifashion", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


@pytest.mark.parametrize("command", [[], ["synth"], ["data"], ["data", "inspect"], ["data", "contact-sheet"], ["train"],
                                     ["captions"], ["quickstart"], ["model"], ["model", "info"], ["eval"], ["ablate"]])
def test_help_everywhere(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_quickstart_help_states_the_real_defaults():
    from unifashion.recipes.quickstart import QuickstartConfig

    result = runner.invoke(app, ["quickstart", "--help"], env={"COLUMNS": "400"})
    text = " ".join(result.output.split())
    for name in ("products", "image_size", "batch_size", "vae_steps", "phase1a_steps", "phase1b_steps",
                 "diffusion_steps", "phase2_steps", "tryon_steps"):
        option = "--" + name.replace("_", "-")
        assert option in text
        shown = re.search(r"\[default: \(?(\d+)\)?\]", text.split(option, 1)[1])  # click writes a string default as (N)
        assert shown and int(shown.group(1)) == getattr(QuickstartConfig, name), name


def test_synth_then_inspect_json(tmp_path):
    out = tmp_path / "w"
    r = run_cli("synth", "--out", str(out), "--products", "12", "--seed", "2", "--image-size", "48", "--json")
    assert r.returncode == 0, r.stderr
    manifest = json.loads(r.stdout)
    assert manifest["counts"]["products"] == 12
    r = run_cli("data", "inspect", str(out / "fashioniq"), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["format"] == "fashioniq"
    n = sum(info["count"] for info in summary["splits"].values())
    assert n == manifest["counts"]["triplets"]
    r = run_cli("data", "inspect", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert [s["format"] for s in json.loads(r.stdout)["formats"]] == ["catalog", "fashiongen", "fashion200k", "fashioniq", "vitonhd"]
    sheet = tmp_path / "sheet.png"
    r = run_cli("data", "contact-sheet", str(out), "--out", str(sheet), "--n", "6", "--json")
    assert r.returncode == 0, r.stderr
    assert sheet.stat().st_size > 1000 and len(json.loads(r.stdout)["items"]) == 6


def test_errors_are_one_line_naming_the_input(tmp_path):
    missing = tmp_path / "nope"
    r = run_cli("data", "inspect", str(missing))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0] and "Traceback" not in r.stderr

    not_a_dataset = tmp_path / "empty"
    not_a_dataset.mkdir()
    r = run_cli("data", "inspect", str(not_a_dataset))
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and str(not_a_dataset) in r.stderr

    (not_a_dataset / "x").write_text("x")
    r = run_cli("synth", "--out", str(not_a_dataset), "--products", "3")
    assert r.returncode == 1 and "exists" in r.stderr and len(r.stderr.strip().splitlines()) == 1

    r = run_cli("synth", "--out", str(tmp_path / "o"), "--image-size", "5")
    assert r.returncode != 0 and "Traceback" not in r.stderr


def test_inspect_stops_at_a_bad_item_or_skips_and_reports_it(tmp_path):
    out = tmp_path / "w"
    assert run_cli("synth", "--out", str(out), "--products", "10", "--seed", "4", "--image-size", "32").returncode == 0
    images = sorted((out / "fashioniq" / "images").iterdir())
    images[0].unlink()  # a gallery image that triplets or splits refer to
    (out / "catalog" / "catalog.jsonl").open("a").write("{not json\n")
    r = run_cli("data", "inspect", str(out / "fashioniq"))
    assert r.returncode == 1 and images[0].name in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("data", "inspect", str(out / "catalog"))
    assert r.returncode == 1 and "catalog.jsonl" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("data", "inspect", str(out / "catalog"), "--skip-bad", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["skipped"] == 1 and "catalog.jsonl" in summary["skipped_examples"][0]

    truncated = sorted((out / "fashion200k").rglob("*.jpeg"))[0]
    truncated.write_bytes(truncated.read_bytes()[:100])
    assert run_cli("data", "inspect", str(out / "fashion200k")).returncode == 0  # no decode without the flag
    r = run_cli("data", "inspect", str(out / "fashion200k"), "--check-images")
    assert r.returncode == 1 and truncated.name in r.stderr
    r = run_cli("data", "inspect", str(out / "fashion200k"), "--check-images", "--skip-bad", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["skipped"] == 1


def test_ablate_help_states_the_real_defaults():
    from unifashion.recipes.ablation import AblationConfig

    result = runner.invoke(app, ["ablate", "--help"], env={"COLUMNS": "400"})
    text = " ".join(result.output.split())
    for name in ("phase1a_steps", "phase1b_steps", "vae_steps", "phase2_steps"):
        option = "--" + name.replace("_", "-")
        shown = re.search(r"\[default: \(?(\d+)\)?\]", text.split(option, 1)[1])
        assert shown and int(shown.group(1)) == getattr(AblationConfig, name), name
