"""Issue 20, the command line: each input gives the right result or one line naming it (exit 1, no
traceback, no "internal error" for a user's mistake) and nothing half-written. These fail before any
model loads, so a model path that does not exist shows it."""
import subprocess
import sys

import pytest
from PIL import Image
from typer.testing import CliRunner

from unifashion.cli import app
from unifashion.errors import UnifashionError

runner = CliRunner()


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "unifashion", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def one_line_error(r, *named):
    """The run failed with exit 1 and one stderr line naming each of `named`."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    assert all(str(n) in lines[0] for n in named), r.stderr
    return lines[0]


def invoke_error(*args) -> str:
    """The UnifashionError a command raises (main() prints it as one line; run_cli checks that)."""
    result = runner.invoke(app, [str(a) for a in args])
    assert isinstance(result.exception, UnifashionError), (result.exception, result.output)
    return str(result.exception)


def test_generate_refuses_a_guidance_scale_or_steps_the_sampler_cannot_take(tmp_path):
    from unifashion.models.generator import MAX_GUIDANCE_SCALE, MAX_SAMPLING_STEPS

    out = tmp_path / "x.png"
    message = invoke_error("generate", "--model", tmp_path / "no-model", "--text", "a red dress", "--out", out,
                           "--guidance-scale", "inf")
    assert message.startswith("--guidance-scale inf:") and f"from 0 to {MAX_GUIDANCE_SCALE:g}" in message
    for value in ("1e30", "nan", "-1", str(MAX_GUIDANCE_SCALE + 1)):
        assert "--guidance-scale" in invoke_error("generate", "--model", tmp_path / "no-model", "--text", "x",
                                                  "--out", out, "--guidance-scale", value)
    assert f"--steps {MAX_SAMPLING_STEPS + 1}" in invoke_error("generate", "--model", tmp_path / "no-model", "--text",
                                                               "x", "--out", out, "--steps", MAX_SAMPLING_STEPS + 1)
    assert not out.exists()


def test_synth_into_an_existing_file_or_below_one_is_one_line(tmp_path):
    file = tmp_path / "taken"
    file.write_text("x")
    one_line_error(run_cli("synth", "--out", file, "--products", "3"), f"--out {file}", "not a folder")
    one_line_error(run_cli("synth", "--out", file / "world", "--products", "3"), f"--out {file / 'world'}",
                   f"{file} is a file")
    assert file.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


@pytest.mark.parametrize("name, magic", [("sheet.jpg", b"\xff\xd8\xff"), ("sheet.jpeg", b"\xff\xd8\xff"),
                                         ("sheet.webp", b"RIFF"), ("sheet.png", b"\x89PNG")])
def test_contact_sheet_is_written_in_the_format_its_suffix_names(small_world, tmp_path, name, magic):
    out = tmp_path / name
    result = runner.invoke(app, ["data", "contact-sheet", str(small_world[0]), "--out", str(out), "--n", "2"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(magic) and Image.open(out).format == {"jpg": "JPEG", "jpeg": "JPEG"}.get(
        out.suffix[1:], out.suffix[1:].upper())
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left


def test_contact_sheet_of_another_suffix_is_refused_before_drawing(small_world, tmp_path):
    from unifashion.data.contact_sheet import contact_sheet
    from unifashion.errors import DataError

    out = tmp_path / "sheet.gif"
    assert "--out" in invoke_error("data", "contact-sheet", small_world[0], "--out", out) and ".png" in str(
        invoke_error("data", "contact-sheet", small_world[0], "--out", out))
    with pytest.raises(DataError, match="sheet.tiff"):
        contact_sheet(small_world[0] / "catalog", tmp_path / "sheet.tiff")
    assert list(tmp_path.iterdir()) == []


def test_model_info_blames_the_set_override_or_the_config_files_line(tmp_path):
    message = invoke_error("model", "info", "--config", "tiny", "--set", "qformer.nope=3")
    assert message.startswith("--set qformer.nope=3: unknown key 'nope'") and "tiny.yaml" not in message
    bad = tmp_path / "bad.yaml"
    bad.write_text("qformer:\n  hidden_size: 3\n bad: [\n")
    assert invoke_error("model", "info", "--config", bad).startswith(f"{bad}:3:2: not valid YAML")


def test_index_build_refuses_two_images_of_one_stem_before_loading_the_model(tmp_path):
    for name in ("a.png", "a.jpg", "b.png"):
        (tmp_path / "images").mkdir(exist_ok=True)
        Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / "images" / name)
    out = tmp_path / "index"
    message = invoke_error("index", "build", "--model", tmp_path / "no-model", "--images", tmp_path / "images",
                           "--out", out)
    assert f"{tmp_path / 'images' / 'a.jpg'} and {tmp_path / 'images' / 'a.png'} would both be item 'a'" in message
    assert not out.exists()


def test_eval_json_is_a_flag_and_out_a_file(tmp_path):
    """--json prints to stdout (checked end to end in test_eval_cli); a file goes to --out, checked
    before the model loads."""
    import typer.main

    params = {o: p for p in typer.main.get_command(app).commands["eval"].params for o in p.opts}
    assert params["--json"].is_flag and not params["--out"].is_flag
    assert invoke_error("eval", "--model", tmp_path / "no-model", "--data", tmp_path, "--out", tmp_path).startswith(
        f"--out {tmp_path}: is a folder")


def test_every_result_command_takes_a_plain_json_flag():
    import typer.main

    command = typer.main.get_command(app)

    def leaves(group, path=()):
        for name, sub in group.commands.items():
            if hasattr(sub, "commands"):  # a group (typer vendors its own click)
                yield from leaves(sub, (*path, name))
            else:
                yield (*path, name), sub

    found = dict(leaves(command))
    assert ("tryon",) in found and ("eval",) in found
    for path, sub in found.items():
        flags = {o: p for p in sub.params for o in p.opts}
        if path == ("serve",):  # a server: no result to print
            assert "--json" not in flags
            continue
        assert "--json" in flags and flags["--json"].is_flag, path
