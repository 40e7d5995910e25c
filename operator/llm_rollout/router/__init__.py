"""The router: data plane and feedback collector. See docs/router.md."""

from llm_rollout.router.app import Router, RouterSettings
from llm_rollout.router.config import ServedDeployment, served_from_object
from llm_rollout.router.state import RouterState

__all__ = ["Router", "RouterSettings", "RouterState", "ServedDeployment", "served_from_object"]
