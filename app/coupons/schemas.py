"""Operator API shapes for coupon pools."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PoolStatus(BaseModel):
    pool: str
    total: int = Field(description="every code imported: free + assigned + expired")
    free: int = Field(description="not handed out and not expired: what messages can still get")
    assigned: int = Field(description="handed to a message (whether or not it was delivered)")
    redeemed: int = Field(description="assigned codes that an order has used")
    expired: int = Field(description="never handed out, and past their expires_at")


class CouponsStatus(BaseModel):
    pools: list[PoolStatus]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "pools": [
                        {
                            "pool": "BIRTHDAY",
                            "total": 500,
                            "free": 312,
                            "assigned": 180,
                            "redeemed": 41,
                            "expired": 8,
                        }
                    ]
                }
            ]
        }
    )
