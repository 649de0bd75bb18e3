"""An example third-party node type: ``Shout`` upper-cases a string."""

from pydantic import BaseModel, ConfigDict, Field

import postgit


class ShoutParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=10_000)
    exclamations: int = Field(default=1, ge=0, le=10)


async def shout(ctx: postgit.StepContext, params: ShoutParams) -> dict[str, str]:
    ctx.logger.info("shouting %d characters", len(params.text))
    return {"text": params.text.upper() + "!" * params.exclamations}


@postgit.hookimpl
def postgit_node_types() -> list[postgit.NodeType]:
    return [
        postgit.NodeType(
            name="Shout",
            params=ShoutParams,
            handler=shout,
            description="Upper-case a string",
        )
    ]
