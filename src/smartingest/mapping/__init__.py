"""Field mappings: compiled once per run, applied per Arrow batch."""

from smartingest.mapping.plan import MappedBatch, UserRecordPlan, compile_user_plan

__all__ = ["MappedBatch", "UserRecordPlan", "compile_user_plan"]
