"""Small helpers with no product knowledge, shared by every floor: atomic writes, the
user-facing error base class, child-process supervision."""
