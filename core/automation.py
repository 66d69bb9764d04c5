"""Public face of `insync automate` for adapters and for policies written in Python.

    >>> from insync.core.automation import AutomationConfig, Policy
    >>> config = AutomationConfig({"raw": Policy(eager=True), "reports": Policy(eager=True, freshness="6h")})
"""

from ._automation import *  # noqa: F403 - the public names are _automation's __all__
from ._automation import __all__ as __all__
