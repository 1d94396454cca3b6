"""A faithful fake Responses upstream, for ``serve --mock``, the tests and the benchmarks."""
