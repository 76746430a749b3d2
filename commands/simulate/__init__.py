"""Scenario engine (issue 6): a whole market generated from a seed and run through the registry.

`simulate(registry, "china-2021-2024", scale, seed)` builds China's national ETS from its first
compliance cycle to the 2024 expansion (docs/domain.md): power firms with unit types and outputs,
the steel, cement and aluminium firms of 2024, compliance periods opened with `year open`,
benchmark allocation with `allocate` (pre-allocation, then true-up), verified emissions, CCER
offsets, every trading day from 16 July 2021 to 31 December 2024, surrenders by each deadline
and, at `year close`, the penalties of the few firms that fall short.

Every decision comes from `random.Random(seed)`, and every event is recorded by
`Registry.execute_batch` running the same commands as the CLI and `import`: the simulator has
no side door into the store. It plays the participants, not the ledger: it reads the
registry's state (what a firm holds, what it owes) only to decide what the firm does next.
The trades are calibrated so that each calendar year's volume and value match the published figures (docs/domain.md) and
the daily closes (VWAP) pass through its price anchors."""

from commands.simulate.china import demo, simulate
from commands.simulate.figures import ANCHOR_CLOSES, DEMO_SCALE, OPEN_PRICE, PEAK_DATE, SCENARIOS, YEARS

__all__ = ["ANCHOR_CLOSES", "DEMO_SCALE", "OPEN_PRICE", "PEAK_DATE", "SCENARIOS", "YEARS", "demo", "simulate"]
