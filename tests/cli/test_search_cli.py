"""The catalog commands end to end on a tiny model: index build (resumable), info, search of every kind,
add/remove/compact, caption, generate, classify; JSON output and one-line errors."""
import json

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from unifashion.cli import app
from unifashion.errors import UnifashionError
from unifashion.models.unified import UniFashion

runner = CliRunner()


def invoke(*args):
    """(exit code, stdout, output); a user error raised past CliRunner (main() prints it as one line,
    test_cli checks that) is returned as its message."""
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        assert isinstance(result.exception, UnifashionError), repr(result.exception)
        return 1, result.stdout, str(result.exception)
    return result.exit_code, result.stdout, result.output


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("searchmodel") / "model"
    UniFashion.from_config("tiny").save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def built(model_dir, small_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("searchindex") / "index"
    code, stdout, output = invoke("index", "build", "--model", model_dir, "--data", small_world[0], "--split", "val",
                                  "--out", out, "--json")
    assert code == 0, output
    return out, json.loads(stdout)


@pytest.mark.parametrize("command", [["index"], ["index", "build"], ["index", "add"], ["index", "remove"],
                                     ["index", "compact"], ["index", "info"], ["search"], ["caption"], ["generate"],
                                     ["classify"], ["serve"]])
def test_help(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_build_info_and_search_kinds(built, small_world):
    out, summary = built
    from unifashion.data.formats import catalog

    val = catalog.load(small_world[0] / "catalog", "val")
    assert summary["items"] == len(val) and summary["captions"] and summary["segments"][0]["approximate"] is False
    code, stdout, _ = invoke("index", "info", out, "--json")
    assert code == 0 and json.loads(stdout)["items"] == len(val)

    code, stdout, output = invoke("search", "--index", out, "--text", "a red dress", "--k", "3", "--json")
    assert code == 0, output
    hits = json.loads(stdout)["hits"]
    assert len(hits) == 3 and [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert {h["item_id"] for h in hits} <= {p.item_id for p in val}

    image = val[0].image.path
    for extra, kind in (([], "image"), (["--modify", "in red"], "composed"), (["--to-text"], "image-to-text")):
        code, stdout, output = invoke("search", "--index", out, "--image", image, "--k", "2", *extra, "--json")
        assert code == 0, output
        assert json.loads(stdout)["kind"] == kind and len(json.loads(stdout)["hits"]) == 2
    code, stdout, output = invoke("search", "--index", out, "--item", val[0].item_id, "--modify", "in red", "--json")
    assert code == 0 and json.loads(stdout)["kind"] == "composed"
    category = val[0].category
    code, stdout, _ = invoke("search", "--index", out, "--text", "shoes", "--category", category, "--k", "50", "--json")
    assert code == 0 and {h["category"] for h in json.loads(stdout)["hits"]} == {category}


@pytest.mark.parametrize("args, message", [
    (["--text", "x", "--image", "y.png"], "exactly one query"),
    (["--item", "nope", "--modify", "red"], "no item 'nope'"),
    (["--item", "x"], "--item needs --modify"),
    (["--text", "x", "--category", "spacesuits"], "unknown category 'spacesuits'"),
    (["--text", "   "], "non-empty text"),
    (["--image", "missing.png"], "image file not found"),
])
def test_search_errors_are_one_line(built, args, message):
    code, _, output = invoke("search", "--index", built[0], *args)
    assert code != 0 and message in output, output


def test_add_remove_compact_round_trip(built, model_dir, small_world, tmp_path):
    import shutil

    out = tmp_path / "index"
    shutil.copytree(built[0], out)
    code, stdout, output = invoke("index", "add", "--index", out, "--data", small_world[0], "--split", "val", "--json")
    assert code != 0 and "already in the index" in output
    code, stdout, output = invoke("index", "add", "--index", out, "--data", small_world[0], "--split", "test", "--json")
    assert code == 0, output
    total = json.loads(stdout)["items"]
    assert total > built[1]["items"] and len(json.loads(stdout)["segments"]) == 2
    from unifashion.search.catalog_index import CatalogIndex

    victim = next(iter(CatalogIndex.open(out).items())).item_id
    code, stdout, _ = invoke("index", "remove", "--index", out, victim, "--json")
    assert code == 0 and json.loads(stdout)["items"] == total - 1
    code, stdout, _ = invoke("index", "compact", "--index", out, "--json")
    assert code == 0 and json.loads(stdout)["items"] == total - 1 and len(json.loads(stdout)["segments"]) == 1
    code, _, output = invoke("search", "--index", out, "--item", victim, "--modify", "red")
    assert code != 0 and f"no item '{victim}'" in output


def test_an_interrupted_build_resumes(model_dir, small_world, tmp_path, monkeypatch):
    from unifashion.search import index_build as build_module
    from unifashion.search.index_build import build_index, items_from_data

    model = UniFashion.from_pretrained(model_dir)
    items = items_from_data(small_world[0], "val")[:12]
    calls = []
    original = model.encode_image

    def counting(images):
        calls.append(len(images))
        if len(calls) == 2 and not hasattr(counting, "crashed"):
            counting.crashed = True
            raise KeyboardInterrupt
        return original(images)

    monkeypatch.setattr(model, "encode_image", counting)
    monkeypatch.setattr(build_module, "embed_items", _small_chunks(build_module.embed_items))
    with pytest.raises(KeyboardInterrupt):
        build_index(model, items, tmp_path / "idx", model_source="m", captions=False, batch_size=4)
    assert not (tmp_path / "idx" / "manifest.json").exists()
    assert (tmp_path / "idx" / ".build" / "chunk-000000.json").exists()
    calls.clear()
    index = build_index(model, items, tmp_path / "idx", model_source="m", captions=False, batch_size=4)
    assert sum(calls) == 12 - 4 and len(index) == 12  # the first chunk was not embedded again
    assert not (tmp_path / "idx" / ".build").exists()
    monkeypatch.undo()
    fresh = build_index(UniFashion.from_pretrained(model_dir), items, tmp_path / "fresh", model_source="m",
                        captions=False, batch_size=4)
    import numpy as np

    np.testing.assert_array_equal(np.asarray(index.segments[0].images.vectors),
                                  np.asarray(fresh.segments[0].images.vectors))


def _small_chunks(embed_items):
    def wrapper(*args, **kwargs):
        return embed_items(*args, **{**kwargs, "chunk": 4})
    return wrapper


def test_caption_generate_classify(model_dir, small_world, tmp_path):
    from unifashion.data.formats import catalog

    image = catalog.load(small_world[0] / "catalog", "val")[0].image.path
    code, stdout, output = invoke("caption", "--model", model_dir, image, "--style", "short", "--max-new-tokens", "4",
                                  "--json")
    assert code == 0, output
    assert json.loads(stdout)[0]["image"] == str(image) and isinstance(json.loads(stdout)[0]["caption"], str)

    png = tmp_path / "out.png"
    code, stdout, output = invoke("generate", "--model", model_dir, "--text", "a red dress", "--steps", "2",
                                  "--n", "2", "--out", png, "--json")
    assert code == 0, output
    written = json.loads(stdout)["images"]
    assert len(written) == 2 and all(Image.open(p).size == tuple(json.loads(stdout)["size"]) for p in written)

    code, stdout, output = invoke("classify", "--model", model_dir, image, "--labels", "dress, shirt ,jeans", "--json")
    assert code == 0, output
    labels = json.loads(stdout)[0]["labels"]
    assert {l["label"] for l in labels} == {"dress", "shirt", "jeans"}
    assert abs(sum(l["probability"] for l in labels) - 1) < 1e-5

    for args, message in ((["generate", "--model", model_dir, "--out", png], "give --text, --image or both"),
                          (["generate", "--model", model_dir, "--text", "x", "--out", tmp_path / "a.jpg"], ".png"),
                          (["classify", "--model", model_dir, image, "--labels", " , "], "comma-separated"),
                          (["caption", "--model", model_dir, image, "--style", "poetic"], "unknown caption style")):
        code, _, output = invoke(*args)
        assert code != 0 and message in output, output


def test_serve_answers_a_text_search_over_http(built):
    """`unifashion serve` as a user starts it: the model comes from the index's manifest."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "unifashion", "serve", "--index", str(built[0]), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    assert json.loads(r.read())["items"] == built[1]["items"]
                    break
            except OSError:
                assert time.monotonic() < deadline, "the server did not answer within 120 s"
                time.sleep(0.5)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/search/text", method="POST",
                                         data=json.dumps({"text": "a red dress", "k": 5}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            body = json.loads(r.read())
        assert body["kind"] == "text" and len(body["results"]) == 5
    finally:
        server.terminate()
        server.wait(20)


def test_serve_on_a_busy_port_is_one_line(built):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, _, output = invoke("serve", "--index", built[0], "--port", busy.getsockname()[1])
    assert code != 0 and "cannot listen on 127.0.0.1" in output


def test_an_empty_caption_is_indexed_as_the_empty_caption_mark(small_world, tmp_path, monkeypatch):
    """A model may say nothing about an image: the index keeps the empty caption and embeds "-"."""
    from unifashion.search.index_build import build_index, items_from_data
    from unifashion.models.captioner import EMPTY_CAPTION
    from unifashion.models.unified import UniFashion

    model = UniFashion.from_config("tiny")
    items = items_from_data(small_world[0])[:3]
    monkeypatch.setattr(model, "caption", lambda images, style, **kw: [""] * len(images))
    embedded = []
    original = model.encode_text
    monkeypatch.setattr(model, "encode_text", lambda texts: embedded.extend(texts) or original(texts))
    index = build_index(model, items, tmp_path / "idx", model_source="tiny", batch_size=4)
    assert len(index) == 3 and [it.caption for it in index.items()] == ["", "", ""]
    assert embedded == [EMPTY_CAPTION] * 3


def test_the_table_shows_category_and_subcategory_and_the_filter_takes_the_category(built, small_world):
    out = built[0]
    result = runner.invoke(app, ["search", "--index", str(out), "--text", "a dress", "--k", "3"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if "score" in line)
    assert [c.strip() for c in header.strip("┃ ").split("┃")][:5] == ["#", "item", "score", "category", "subcategory"]
    code, stdout, _ = invoke("search", "--index", out, "--text", "a dress", "--k", "3", "--json")
    first = json.loads(stdout)["hits"][0]
    row = next(line for line in result.stdout.splitlines() if first["item_id"] in line)
    assert [c.strip() for c in row.strip("│ ").split("│")][3:5] == [first["category"], first["subcategory"]]
    code, stdout, output = invoke("search", "--index", out, "--text", "a dress", "--category", first["category"],
                                  "--json")  # the value shown under "category" is one the filter takes
    assert code == 0 and {h["category"] for h in json.loads(stdout)["hits"]} == {first["category"]}, output


def test_index_add_of_items_already_there_is_refused_before_the_model_loads(built, small_world, tmp_path):
    code, _, message = invoke("index", "add", "--index", built[0], "--data", small_world[0], "--split", "val",
                              "--model", tmp_path / "no-model")  # refused before this path is read
    assert code == 1 and message.startswith(f"{built[1]['items']} of the {built[1]['items']} items are already in "
                                            "the index ('") and " more); use --replace" in message, message


def test_index_build_of_images_takes_every_decodable_format_and_lists_other_files(model_dir, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name, fmt in (("a.tiff", "TIFF"), ("b.gif", "GIF"), ("c.png", "PNG")):
        Image.new("RGB", (16, 16), (200, 20, 20)).save(images / name, format=fmt)
    (images / "readme.txt").write_text("x")
    code, stdout, output = invoke("index", "build", "--model", model_dir, "--images", images, "--out",
                                  tmp_path / "index", "--no-captions", "--json")
    assert code == 0, output
    summary = json.loads(stdout)
    assert summary["items"] == 3
    assert summary["skipped"] == [{"item": str(images / "readme.txt"), "reason": "not an image file (suffix '.txt')"}]


def test_a_loading_model_is_shown_on_stderr_and_never_on_stdout_with_json(model_dir, small_world):
    from unifashion.data.formats import catalog

    image = catalog.load(small_world[0] / "catalog", "val")[0].image.path
    result = runner.invoke(app, ["caption", "--model", str(model_dir), str(image), "--max-new-tokens", "2"])
    assert result.exit_code == 0 and f"loading model from {model_dir} ..." in result.stderr, result.output
    assert "loading" not in result.stdout
    result = runner.invoke(app, ["caption", "--model", str(model_dir), str(image), "--max-new-tokens", "2", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)[0]["image"] == str(image)  # stdout: JSON alone


def test_a_qdrant_index_works_with_every_catalog_command(built, model_dir, small_world, tmp_path):
    """index build --qdrant-edge: search (same hits as the built-in index), info, add, remove, compact."""
    built = built[0]
    out = tmp_path / "qindex"
    code, stdout, output = invoke("index", "build", "--model", model_dir, "--data", small_world[0], "--split", "val",
                                  "--out", out, "--qdrant-edge", tmp_path / "shard", "--json")
    assert code == 0, output
    summary = json.loads(stdout)
    code, info, output = invoke("index", "info", built, "--json")
    assert code == 0, output
    assert summary["backend"] == "qdrant" and summary["items"] == json.loads(info)["items"]
    for query in (["--text", "a red dress"], ["--item", summary_item(built), "--modify", "in blue"]):
        # the tiny random model ties many items, so the check is per hit: each one's built-in score
        everything = json.loads(invoke("search", "--index", built, *query, "--k", "100", "--json")[1])["hits"]
        score_of = {h["item_id"]: h["score"] for h in everything}
        got = json.loads(invoke("search", "--index", out, *query, "--k", "5", "--json")[1])["hits"]
        assert len(got) == 5
        assert all(abs(h["score"] - score_of[h["item_id"]]) < 1e-4 for h in got)
        assert all(abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(got, everything))
    first = summary_item(built)
    code, _, output = invoke("index", "remove", "--index", out, first)
    assert code == 0, output
    assert json.loads(invoke("index", "info", out, "--json")[1])["items"] == summary["items"] - 1
    code, _, output = invoke("index", "add", "--index", out, "--data", small_world[0], "--split", "val")
    assert code == 1 and "already in the index" in output  # the other items are still there
    code, _, output = invoke("index", "compact", "--index", out)
    assert code == 0, output
    code, _, output = invoke("index", "build", "--model", model_dir, "--data", small_world[0], "--split", "val",
                             "--out", tmp_path / "other", "--qdrant-url", "http://127.0.0.1:9")
    assert code == 1 and "cannot connect" in output and "Traceback" not in output


def summary_item(index_dir) -> str:
    from unifashion.search.index_folder import open_index

    return next(iter(open_index(index_dir).items())).item_id
