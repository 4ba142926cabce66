"""Trace-driven emulation: trace library, fast chunk-level simulator (the player's own `web/abr/`
rules under Node on a virtual clock), full runs of the real stack behind a shaped link, and
Puffer's metrics. See docs/emulation.md."""
