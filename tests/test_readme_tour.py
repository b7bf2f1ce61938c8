"""README.md's "Python quick tour" runs as written (its python blocks, in order, in an empty folder) and gives
what its comments say."""
import ast
import contextlib
import io
import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Python quick tour"


def tour_code(text: str) -> str:
    """The python code blocks of the README's quick-tour section, joined."""
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start:end if end != -1 else len(text)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, f"no python block under {SECTION!r}"
    return "\n".join(blocks)


def test_the_python_quick_tour_runs_and_gives_what_it_says(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = tour_code(README.read_text(encoding="utf-8"))
    scope: dict = {"__name__": "readme_tour"}
    out = io.StringIO()
    torch.manual_seed(0)
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"{README.name}: {SECTION}", "exec"), scope)  # noqa: S102 - the README's own code
    printed = out.getvalue().splitlines()
    assert printed[0] == "('dress', 'coat', 'bag') (1, 3)"
    image, texts, scores, query, result = (scope[n] for n in ("image", "texts", "scores", "query", "result"))
    assert image.image_embeds.shape == (1, 32, 256) and image.query_output.shape == (1, 32, 384)
    assert texts.text_embeds.shape == (2, 256) and scores.shape == (1, 2)
    assert query.composed_embeds.shape == (1, 256)
    assert image.image_embeds.grad_fn is None  # eval mode: no autograd graph
    ranked = result.ranked()[0]
    assert printed[1] == str(ranked) and sorted(label for label, _ in ranked) == ["bag", "coat", "dress"]
    assert abs(sum(p for _, p in ranked) - 1) < 1e-5
    captions = ast.literal_eval(printed[2])  # the printed list of one caption
    assert isinstance(captions, list) and len(captions) == 1 and isinstance(captions[0], str)
    size = scope["model"].generator.config.image_size
    assert scope["picture"].size == (size, size) and (tmp_path / "shirt.png").is_file()
