"""Readers and writers of the datasets' release formats (one module each)."""

# the caption style each image-text format's texts are written in (paper Table 7): what the captioner is
# trained on and evaluated against
CAPTION_STYLE = {"fashiongen": "professional", "catalog": "professional", "fashion200k": "short"}
