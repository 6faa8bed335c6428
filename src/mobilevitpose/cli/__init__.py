"""Console scripts: thin composition roots over the library. Nothing imports them."""
