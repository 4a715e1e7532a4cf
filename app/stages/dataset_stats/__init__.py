"""Dataset statistics: counts, box sizes and shapes against the anchors, problem boxes (bottom dock)."""

from app.stages.dataset_stats.controller import DatasetStatsStage

__all__ = ["DatasetStatsStage"]
