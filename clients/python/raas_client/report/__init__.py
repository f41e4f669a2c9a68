"""raas recordings for researchers: the MCAP file format (`format`), a reader that tolerates a
truncated file (`reader`, needs the `report` extra) and `raas report FILE` (`command`).

Importing this package is free of heavy dependencies; `format` has none at all, so the daemon's
recorder shares it (the file format is defined once, here, like the wire protocol)."""
