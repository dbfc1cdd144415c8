"""How and when flows run: deployment names, triggering, and the operator CLI."""

PROCESS_IMAGE_DEPLOYMENT = "process-image/default"
BACKFILL_DEPLOYMENT = "backfill/default"

__all__ = ["BACKFILL_DEPLOYMENT", "PROCESS_IMAGE_DEPLOYMENT"]
