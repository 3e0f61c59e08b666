"""Which served model answers a request: the router over a deployment's arms.

One arm holds all the traffic unless a deployment (canary, A/B) adds arms with weights;
a shadow arm has weight 0: it is never picked, the deployment copies requests to it.
A request with a routing key (an entity id) always lands in the same arm for the same
weights. Arms are replaced as one tuple, so a request sees either the old set or the new
one, never a mixture.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from loopml.errors import NotFoundError
from loopml.serving.policies import bucket
from loopml.serving.served import ServedModel

__all__ = ["Arm", "NotReadyError", "Router"]


class NotReadyError(RuntimeError):
    """No model is loaded yet (or loading failed); ``reason`` says which."""


@dataclass(frozen=True)
class Arm:
    """A served model and its share of the traffic."""

    served: ServedModel
    weight: float = 1.0
    name: str = "stable"


class Router:
    """Picks the served model for each request among the arms of one model name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._arms: tuple[Arm, ...] = ()
        self.reason = "the model is loading"

    @property
    def arms(self) -> tuple[Arm, ...]:
        return self._arms

    @property
    def ready(self) -> bool:
        return bool(self._arms)

    def versions(self) -> list[ServedModel]:
        return [arm.served for arm in self._arms]

    def pick(self, version: str | None = None, key: str | None = None) -> tuple[ServedModel, Arm]:
        """The model for one request (of ``version`` when given: the OIP versions route;
        by ``key``'s stable bucket when given, else at random by weight).

        Raises:
            NotReadyError: nothing is loaded yet.
            NotFoundError: ``version`` is not being served.
        """
        arms = self._arms  # one read: a swap in between cannot mix two sets
        if not arms:
            raise NotReadyError(self.reason)
        if version is not None:
            for arm in arms:
                if arm.served.label == version:
                    return arm.served, arm
            serving = ", ".join(arm.served.label for arm in arms)
            raise NotFoundError(
                f"Version {version} of {self.name!r} is not served here (serving: {serving})."
            )
        if len(arms) == 1:
            return arms[0].served, arms[0]
        live = [arm for arm in arms if arm.weight > 0]
        total = sum(arm.weight for arm in live)
        point = (bucket(key) if key else random.random()) * total
        for arm in live:
            point -= arm.weight
            if point < 0:
                return arm.served, arm
        return live[-1].served, live[-1]

    def shadow(self) -> ServedModel | None:
        """The arm that gets copies of requests and answers none."""
        return next((arm.served for arm in self._arms if arm.name == "shadow"), None)

    def replace(self, arms: tuple[Arm, ...]) -> tuple[Arm, ...]:
        """Serves ``arms`` from now on; returns the arms they replace."""
        old, self._arms = self._arms, arms
        return old
