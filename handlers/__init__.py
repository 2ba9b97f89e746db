"""HTTP handlers: thin functions that parse, call one store function, and encode."""
