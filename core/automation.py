"""Public face of `insync automate` for adapters and for policies written in Python.

>>> from insync.core.automation import AutomationConfig, Policy
>>> config = AutomationConfig({"raw": Policy(eager=True), "reports": Policy(eager=True, freshness="6h")})
"""

from ._automation import (
    OWNER_KEY,
    AutomationConfig,
    Decision,
    Launcher,
    LaunchRequest,
    Owner,
    Policy,
    claim,
    evaluate,
    load_config,
    owner_metadata,
    parse_duration,
    plan,
    release,
)

__all__ = [
    "OWNER_KEY",
    "AutomationConfig",
    "Decision",
    "LaunchRequest",
    "Launcher",
    "Owner",
    "Policy",
    "claim",
    "evaluate",
    "load_config",
    "owner_metadata",
    "parse_duration",
    "plan",
    "release",
]
