"""How and when flows run: the operator CLI, the local stack and the deployment set-up.

Deployment names and the function that starts a run live in ``flows.trigger``, where the webhook
and the dashboard may import them too.
"""

__all__: list[str] = []
