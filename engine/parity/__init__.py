"""Parity of the backends (docs/parity.md): checks and tolerances (``checks``), the probe child (``probe``), the
refinement's checks (``refine``), level 3's ``pinnacle`` children (``level3``), the job (``job``) and its report
(``report``). The package itself re-exports the checks' public names; it imports no framework.
"""
from engine.parity.checks import (LEVELS, Check, cross_checks, given_gradients, level0_checks, level1_checks,
                                  level2_checks, level3_checks, reduction_length, verdict)

__all__ = ["LEVELS", "Check", "cross_checks", "given_gradients", "level0_checks", "level1_checks", "level2_checks",
           "level3_checks", "reduction_length", "verdict"]
