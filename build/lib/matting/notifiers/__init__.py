"""Notifiers: ``matting.notifiers.webhook`` (run summaries to a webhook)."""
