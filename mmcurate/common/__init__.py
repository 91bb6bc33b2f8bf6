"""Small shared helpers: atomic writes, hashing, the work directory, errors, console output."""
