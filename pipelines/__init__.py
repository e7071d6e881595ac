"""KFP pipelines of quantrec: the daily training pipeline, local runs, compile, schedules."""
