"""Wake-ups reach the LLMDeployment's loop from any object's handlers, and the
operator's own status writes do not wake it again."""

from __future__ import annotations

import copy

import kopf

from llm_rollout.controller import handlers
from llm_rollout.controller.wakers import Wakers


class _Controller:
    def __init__(self) -> None:
        self.wakers = Wakers()
        self.specs: list[str] = []
        self.metrics = self

    def observe_spec(self, namespace: str, name: str, spec: object) -> None:
        self.specs.append(name)


def _body(generation: int, action: str = "", status: str = "") -> dict[str, object]:
    annotations = {"rollout.llmops.io/action": action} if action else {}
    return {
        "metadata": {"generation": generation, "annotations": annotations},
        "status": {"message": status},
    }


async def test_a_deployment_handler_finds_the_waker_of_its_llmdeployment() -> None:
    # kopf gives each object's handlers a shallow copy of the operator's memo.
    memo = kopf.Memo(controller=_Controller())
    llmd_memo, deployment_memo = copy.copy(memo), copy.copy(memo)
    waker = handlers._wakers(llmd_memo).register("team", "assistant")
    await handlers.wake_on_release_change(
        namespace="team", labels={"rollout.llmops.io/deployment": "assistant"}, memo=deployment_memo
    )
    assert waker.is_set()
    waker.clear()
    await handlers.wake_on_eval_run_change(
        namespace="team", spec={"deployment": "assistant"}, memo=copy.copy(memo)
    )
    assert waker.is_set()


async def test_only_spec_and_action_changes_wake_the_loop() -> None:
    memo = kopf.Memo(controller=_Controller())
    waker = handlers._wakers(memo).register("team", "assistant")

    async def event(body: dict[str, object], type: str = "MODIFIED") -> bool:
        waker.clear()
        await handlers.wake_on_change(
            namespace="team", name="assistant", memo=memo, spec={}, body=body, type=type
        )
        return waker.is_set()

    assert await event(_body(1))  # first sight
    assert not await event(_body(1, status="analysing"))  # the operator's status write
    assert await event(_body(2, status="analysing"))  # a new spec
    assert await event(_body(2, action="promote"))  # a manual action
    assert not await event(_body(2, action="promote", status="promoted"))
    assert not await event(_body(2), type="DELETED")
