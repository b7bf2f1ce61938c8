"""UniFashion: one fashion vision-language model for retrieval, composed retrieval, captioning and generation."""

__version__ = "0.1.0"
