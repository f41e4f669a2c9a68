"""Database operations, one module per object family. Functions take a Session and never
commit: the caller (a route) commits once the whole operation succeeded."""
