"""Triggers (run in the triggerer): ``new_files`` (deferrable sensors) and ``s3_events`` (SQS)."""
