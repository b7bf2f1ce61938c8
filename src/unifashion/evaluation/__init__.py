"""Evaluation: pure metrics (numpy in, numbers out) and the benchmark protocols built on them.

`generation` (Inception features, FID, KID, colour adherence) is imported on use: `from
unifashion.evaluation.generation_metrics import ...`.
"""
from unifashion.evaluation.metrics import caption_scores, recall_at_k
from unifashion.evaluation.protocols import (cmr_full, cmr_sample100, combine_scores, fashioniq_recall,
                                             fashioniq_summary, query_text)

__all__ = ["caption_scores", "recall_at_k", "cmr_full", "cmr_sample100", "combine_scores",
           "fashioniq_recall", "fashioniq_summary", "query_text"]
