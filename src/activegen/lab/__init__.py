"""Lab protocols: the effective potential tabulated on a grid, its file and its replay;
a method's force tabulated once (docs/protocol.md)."""
