"""CPU and memory requests and limits of a container the operator renders (trainer, serving engine)."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from .base import ApiModel

Quantity = Annotated[str, StringConstraints(pattern=r"^[0-9.]+[a-zA-Z]*$")]


class Resources(ApiModel):
    """Extra CPU and memory for the container (accelerators are set from the accelerator section)."""

    requests: dict[str, Quantity] | None = None
    limits: dict[str, Quantity] | None = None
