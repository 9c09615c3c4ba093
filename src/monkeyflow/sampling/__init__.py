"""Sampling backends behind one interface (`monkeyflow.sampling.base.Backend`)."""

from monkeyflow.sampling.base import (
    BACKENDS,
    Backend,
    ModelSpec,
    SamplingParams,
    ShardRequest,
    get_backend,
    sample_seed,
)

__all__ = [
    "BACKENDS",
    "Backend",
    "ModelSpec",
    "SamplingParams",
    "ShardRequest",
    "get_backend",
    "sample_seed",
]
